using System.Text;

namespace Quant.Core.Diagnostics;

/// <summary>
/// Writes artifacts so that readers see either the old file or the complete new one, never a partial
/// write: a temporary file in the same folder, flushed, then renamed over the target.
/// </summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        var temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        try
        {
            using (var fs = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }
}

/// <summary>Text artifacts: UTF-8 without BOM, '\n' line ends, written atomically.</summary>
public static class AtomicText
{
    public static void Write(string path, string text)
    {
        var bytes = new UTF8Encoding(false).GetBytes(text.ReplaceLineEndings("\n"));
        AtomicFile.Write(path, s => s.Write(bytes));
    }
}
