using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using Microsoft.Extensions.FileSystemGlobbing;
using Microsoft.Extensions.FileSystemGlobbing.Abstractions;

namespace Quant.Core.Data;

// Also compiled into the netstandard2.0 MSBuild task assembly (Quant.Build.Tasks links this file), which must see
// exactly the files the tool reads to notice one added or removed since the last export: netstandard2.0 APIs only.

/// <summary>
/// Calibration-data globs, with Microsoft.Extensions.FileSystemGlobbing's rules: <c>*</c> within a path segment,
/// <c>**</c> across segments; <c>?</c> and <c>[</c> are ordinary characters. A glob is relative to a base folder
/// and may climb with <c>..</c> or be absolute. Matches are full paths, sorted ordinally.
/// </summary>
#if QUANT_BUILD_TASKS
internal
#else
public
#endif
static class FileGlob
{
    private static readonly StringComparison PathComparison =
        RuntimeInformation.IsOSPlatform(OSPlatform.Windows) || RuntimeInformation.IsOSPlatform(OSPlatform.OSX)
            ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    public static bool IsWildcard(string segment) => segment.IndexOf('*') >= 0;

    /// <summary>
    /// The folder a glob starts from (its literal leading segments, made absolute; the matcher only walks
    /// downwards, so <c>..</c> must be resolved here) and the rest of it, '/'-separated. A glob without
    /// wildcards splits into the file's folder and its name.
    /// </summary>
    public static (string Root, string Pattern) Split(string baseDirectory, string glob)
    {
        var segments = glob.Replace('\\', '/').Split('/');
        int firstWild = Array.FindIndex(segments, IsWildcard);
        if (firstWild < 0) firstWild = segments.Length - 1;
        var prefix = string.Join("/", segments.Take(firstWild));
        // "/x" splits into "" and "x": the empty prefix of an absolute glob is the file-system root; "C:" is a drive.
        if (firstWild > 0 && prefix.Length == 0) prefix = "/";
        else if (prefix.EndsWith(":", StringComparison.Ordinal)) prefix += "/";
        var root = Path.GetFullPath(prefix.Length == 0 ? baseDirectory : Path.Combine(baseDirectory, prefix));
        return (root, string.Join("/", segments.Skip(firstWild)));
    }

    /// <summary>The files <paramref name="glob"/> matches under <paramref name="baseDirectory"/>, sorted ordinally.</summary>
    public static List<string> Expand(string baseDirectory, string glob)
    {
        var (root, pattern) = Split(baseDirectory, glob);
        if (!pattern.Split('/').Any(IsWildcard))
        {
            var file = Path.GetFullPath(Path.Combine(root, pattern));
            return File.Exists(file) ? new List<string> { file } : new List<string>();
        }
        if (!Directory.Exists(root)) return new List<string>();
        var matcher = new Matcher(PathComparison);
        matcher.AddInclude(pattern);
        var result = matcher.Execute(new DirectoryInfoWrapper(new DirectoryInfo(root)));
        return result.Files.Select(f => Path.GetFullPath(Path.Combine(root, f.Path))).Distinct(StringComparer.Ordinal)
            .OrderBy(f => f, StringComparer.Ordinal).ToList();
    }
}
