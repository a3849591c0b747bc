using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Text;

namespace Quant.Build.Tasks;

/// <summary>
/// The tasks' files (stamps, hash files, data.list) written as the tool writes its artifacts: into a temporary file in
/// the same folder, then renamed over the target, so a build killed mid-write leaves the old file or the whole new one.
/// (This netstandard2.0 assembly cannot use Quant.Core's AtomicFile; the temporary name follows it, so the tool's sweep
/// of dead writers' files applies here too.)
/// </summary>
internal static class AtomicTaskFile
{
    private static readonly int ProcessId = Process.GetCurrentProcess().Id;

    /// <summary>Writes <paramref name="content"/> (UTF-8, no BOM); with <paramref name="writeTimeUtc"/>, the file carries that time from the moment it appears.</summary>
    public static void Write(string path, string content, DateTime? writeTimeUtc = null)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var temp = Path.Combine(dir, "." + Path.GetFileName(full) + "." + ProcessId + ".tmp");
        SweepStale(dir, Path.GetFileName(full));
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

    /// <summary>Deletes what writers of <paramref name="fileName"/> that were killed left (<c>.FILE.PID.tmp</c> of a process that is gone).</summary>
    private static void SweepStale(string dir, string fileName)
    {
        var prefix = "." + fileName + ".";
        foreach (var file in Directory.EnumerateFiles(dir, prefix + "*.tmp"))
        {
            var pidText = Path.GetFileName(file).Substring(prefix.Length);
            pidText = pidText.Substring(0, pidText.Length - ".tmp".Length);
            if (!int.TryParse(pidText, NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || IsRunning(pid)) continue;
            try { File.Delete(file); }
            catch (IOException) { } // held open or gone: the next write gets it
            catch (UnauthorizedAccessException) { }
        }
    }

    private static bool IsRunning(int pid)
    {
        if (pid == ProcessId) return true;
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
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
