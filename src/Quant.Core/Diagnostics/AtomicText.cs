using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

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
public static partial class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        var temp = TempPathFor(full);
        SweepStale(Path.GetDirectoryName(full)!, Path.GetFileName(full) + ".");
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

    /// <summary>The temporary file a write of <paramref name="fullPath"/> goes through (same folder, so the rename is atomic).</summary>
    private static string TempPathFor(string fullPath) =>
        Path.Combine(Path.GetDirectoryName(fullPath)!, $".{Path.GetFileName(fullPath)}.{Environment.ProcessId}.tmp");

    /// <summary>
    /// Deletes the temporary files that killed writers left in <paramref name="directory"/> for files whose name starts
    /// with <paramref name="namePrefix"/> (e.g. <c>cls.</c>): those of processes no longer running. A live process's
    /// temporary file is never touched (another build may be writing it); returns how many were deleted.
    /// </summary>
    public static int SweepStale(string directory, string namePrefix)
    {
        if (!Directory.Exists(directory)) return 0;
        int deleted = 0;
        foreach (var file in Directory.EnumerateFiles(directory, "." + namePrefix + "*.tmp"))
        {
            var m = TempName().Match(Path.GetFileName(file));
            if (!m.Success || !int.TryParse(m.Groups["pid"].Value, out int pid) || IsRunning(pid)) continue;
            try { File.Delete(file); deleted++; }
            catch (IOException) { } // gone already, or held open: the next sweep gets it
            catch (UnauthorizedAccessException) { }
        }
        return deleted;
    }

    /// <summary><c>.FILE.PID.tmp</c> (this writer) and <c>.FILE.PID.GUID.tmp</c> (the model and calibration writers).</summary>
    [GeneratedRegex(@"^\..+\.(?<pid>[0-9]+)(\.[0-9a-f]{32})?\.tmp$")]
    private static partial Regex TempName();

    private static bool IsRunning(int pid)
    {
        if (pid == Environment.ProcessId) return true;
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
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
