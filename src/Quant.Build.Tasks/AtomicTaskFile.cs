using System;
using System.IO;
using System.Text;
using Quant.Core.Diagnostics;

namespace Quant.Build.Tasks;

/// <summary>
/// The tasks' files (stamps, hash files, data.list) written as the tool writes its artifacts: into a temporary file in
/// the same folder, then renamed over the target, so a build killed mid-write leaves the old file or the whole new one.
/// (This netstandard2.0 assembly cannot use Quant.Core's AtomicFile; both name and sweep their temporary files
/// through the one linked StaleTempFiles.)
/// </summary>
internal static class AtomicTaskFile
{
    /// <summary>Writes <paramref name="content"/> (UTF-8, no BOM); with <paramref name="writeTimeUtc"/>, the file carries that time from the moment it appears.</summary>
    public static void Write(string path, string content, DateTime? writeTimeUtc = null)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var temp = StaleTempFiles.PathFor(full);
        StaleTempFiles.Sweep(dir, Path.GetFileName(full) + ".");
        try
        {
            using (var fs = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                var bytes = new UTF8Encoding(false).GetBytes(content);
                fs.Write(bytes, 0, bytes.Length);
                fs.Flush(flushToDisk: true);
            }
            if (writeTimeUtc is { } t) File.SetLastWriteTimeUtc(temp, t);
            Replace(temp, full);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>A rename over the target (File.Move cannot overwrite in netstandard2.0; File.Replace needs the target to exist).</summary>
    private static void Replace(string temp, string target)
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                if (File.Exists(target)) File.Replace(temp, target, null);
                else File.Move(temp, target);
                return;
            }
            // Another build deleted or created the target between our look and our rename (concurrent builds of one
            // project): look again, a few times.
            catch (IOException) when (attempt < 5) { }
        }
    }
}
