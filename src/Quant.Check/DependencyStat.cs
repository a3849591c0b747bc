using System.Globalization;

namespace Quant.Check;

/// <summary>
/// <c>stat PATH\tSIZE\tTICKS</c> lines of a dependency file: each file's size and last write time when the command
/// read it. The build compares them with the files now and re-runs the stage when one differs, which also catches a
/// file replaced by an older one (<c>cp -p</c>, an unpacked archive) that a newer-than-the-output test misses.
/// </summary>
internal static class DependencyStat
{
    public static string Line(string path)
    {
        var info = new FileInfo(path);
        return info.Exists
            ? $"stat {info.FullName}\t{info.Length.ToString(CultureInfo.InvariantCulture)}\t{info.LastWriteTimeUtc.Ticks.ToString(CultureInfo.InvariantCulture)}"
            : $"stat {info.FullName}\tmissing";
    }
}
