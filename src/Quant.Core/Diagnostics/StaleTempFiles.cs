using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;

namespace Quant.Core.Diagnostics;

// Also compiled into the netstandard2.0 MSBuild task assembly (Quant.Build.Tasks links this file): the tool's and the
// tasks' atomic writers name their temporary files the same way, so one sweep serves both. netstandard2.0 APIs only.

/// <summary>
/// The temporary files atomic writers go through, <c>.FILE.PID.tmp</c> or <c>.FILE.PID.GUID.tmp</c> in the target's
/// folder, and the sweep that deletes those whose writer was killed (its process is gone). A live process's temporary
/// file is never touched: another build may be writing it.
/// </summary>
#if QUANT_BUILD_TASKS
internal
#else
public
#endif
static class StaleTempFiles
{
    private static readonly int ThisProcess = Process.GetCurrentProcess().Id;

    /// <summary>This process's temporary file for writing <paramref name="fullPath"/> (same folder, so the rename is atomic).</summary>
    public static string PathFor(string fullPath) =>
        Path.Combine(Path.GetDirectoryName(fullPath)!, "." + Path.GetFileName(fullPath) + "." + ThisProcess.ToString(CultureInfo.InvariantCulture) + ".tmp");

    /// <summary>
    /// Deletes the temporary files of dead writers in <paramref name="directory"/> for files whose name starts with
    /// <paramref name="namePrefix"/> (e.g. <c>cls.</c>); returns how many were deleted.
    /// </summary>
    public static int Sweep(string directory, string namePrefix)
    {
        if (!Directory.Exists(directory)) return 0;
        int deleted = 0;
        foreach (var file in Directory.EnumerateFiles(directory, "." + namePrefix + "*.tmp"))
        {
            if (WriterOf(Path.GetFileName(file)) is not int pid || IsRunning(pid)) continue;
            try { File.Delete(file); deleted++; }
            catch (IOException) { } // gone already, or held open: the next sweep gets it
            catch (UnauthorizedAccessException) { }
        }
        return deleted;
    }

    /// <summary>The writer's process id in <c>.FILE.PID.tmp</c> / <c>.FILE.PID.GUID.tmp</c>; null for any other name.</summary>
    private static int? WriterOf(string name)
    {
        if (!name.StartsWith(".", StringComparison.Ordinal) || !name.EndsWith(".tmp", StringComparison.Ordinal)) return null;
        var parts = name.Substring(1, name.Length - 1 - ".tmp".Length).Split('.');
        int last = parts.Length - 1;
        if (last >= 2 && parts[last].Length == 32 && IsLowerHex(parts[last])) last--;
        if (last < 1 || parts[last].Length == 0) return null;
        return int.TryParse(parts[last], NumberStyles.None, CultureInfo.InvariantCulture, out int pid) ? pid : null;
    }

    private static bool IsLowerHex(string s)
    {
        foreach (var c in s) if (!(c is >= '0' and <= '9' or >= 'a' and <= 'f')) return false;
        return true;
    }

    private static bool IsRunning(int pid)
    {
        if (pid == ThisProcess) return true;
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }
}
