using System.Globalization;
using System.IO;

namespace Quant.Core.Data;

// Also compiled into the netstandard2.0 MSBuild task assembly (Quant.Build.Tasks links this file): the tool writes
// these lines and the build compares them, so both use this one definition. netstandard2.0 APIs only.

/// <summary>
/// An input file's size and last write time, as <c>SIZE\tTICKS</c> (or <c>missing</c>): what a dependency file's
/// <c>stat PATH\tSTAT</c> line records when a command read the file. The build re-runs the stage when the file's
/// stat differs, which also catches a file replaced by an older one (<c>cp -p</c>, an unpacked archive) that a
/// newer-than-the-output test misses.
/// </summary>
#if QUANT_BUILD_TASKS
internal
#else
public
#endif
static class InputStat
{
    public static string Of(string path)
    {
        var info = new FileInfo(path);
        return info.Exists
            ? info.Length.ToString(CultureInfo.InvariantCulture) + "\t" + info.LastWriteTimeUtc.Ticks.ToString(CultureInfo.InvariantCulture)
            : "missing";
    }

    /// <summary>The dependency-file line for <paramref name="path"/>: <c>stat FULL-PATH\tSTAT</c>.</summary>
    public static string Line(string path) => "stat " + Path.GetFullPath(path) + "\t" + Of(path);
}
