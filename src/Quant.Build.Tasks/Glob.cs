using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;

namespace Quant.Build.Tasks;

/// <summary>
/// File globs as the tool reads them (<c>*</c>, <c>?</c> within a path segment, <c>**</c> across segments),
/// relative to a base directory. Used to notice a calibration file that was added or removed since the
/// last export, which no timestamp can show.
/// </summary>
internal static class Glob
{
    public static List<string> Expand(string baseDirectory, string pattern)
    {
        var full = Path.Combine(baseDirectory, pattern).Replace('\\', '/');
        var segments = full.Split('/');
        int firstWild = Array.FindIndex(segments, s => s.IndexOfAny(new[] { '*', '?' }) >= 0);
        if (firstWild < 0) return File.Exists(full) ? new List<string> { Path.GetFullPath(full) } : new List<string>();
        var root = string.Join("/", segments.Take(firstWild));
        if (root.Length == 0) root = "/";
        if (!Directory.Exists(root)) return new List<string>();
        var rest = segments.Skip(firstWild).ToArray();
        var regex = new Regex("^" + ToRegex(rest) + "$", RegexOptions.CultureInvariant);
        var option = rest.Length > 1 || rest[0] == "**" ? SearchOption.AllDirectories : SearchOption.TopDirectoryOnly;
        var rootFull = Path.GetFullPath(root);
        var result = new List<string>();
        foreach (var file in Directory.EnumerateFiles(rootFull, "*", option))
        {
            var relative = file.Substring(rootFull.Length).Replace('\\', '/').TrimStart('/');
            if (regex.IsMatch(relative)) result.Add(file);
        }
        result.Sort(StringComparer.Ordinal);
        return result;
    }

    private static string ToRegex(string[] segments)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < segments.Length; i++)
        {
            bool last = i == segments.Length - 1;
            if (segments[i] == "**")
            {
                sb.Append(last ? ".*" : "(?:[^/]+/)*");
                continue;
            }
            foreach (char c in segments[i])
                sb.Append(c == '*' ? "[^/]*" : c == '?' ? "[^/]" : Regex.Escape(c.ToString()));
            if (!last) sb.Append('/');
        }
        return sb.ToString();
    }
}
