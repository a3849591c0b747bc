using System.Text;

namespace Quant.Core.Diagnostics;

/// <summary>
/// Writes artifacts so that readers see either the old file or the complete new one, never a partial
/// write: a temporary file in the same folder, flushed, then renamed over the target.
/// </summary>
/// <remarks>
/// A process killed mid-write (SIGKILL, power loss) leaves its temporary file behind: <c>.FILE.PID[.GUID].tmp</c>.
/// Nothing ever reads one (no reader looks for a dot-file), and <see cref="SweepStale"/> deletes those of processes that
/// are gone: each write here for its own target, and each export for all of its model's files (whatever wrote them).
/// </remarks>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        var temp = StaleTempFiles.PathFor(full);
        StaleTempFiles.Sweep(Path.GetDirectoryName(full)!, Path.GetFileName(full) + ".");
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

    /// <summary>Deletes dead writers' temporary files for names starting with <paramref name="namePrefix"/> (<see cref="StaleTempFiles"/>).</summary>
    public static int SweepStale(string directory, string namePrefix) => StaleTempFiles.Sweep(directory, namePrefix);
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
