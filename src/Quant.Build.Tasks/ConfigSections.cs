using System;
using System.Collections.Generic;
using System.Text;
using System.Text.RegularExpressions;

namespace Quant.Build.Tasks;

/// <summary>
/// Splits a quantization config into what the check stage reads (the top-level <c>checks:</c> block) and
/// what the export stage reads (everything else), so that editing a threshold re-runs only the check.
/// Line-based on purpose: it runs in every build, in the MSBuild process, without a YAML parser. Blank
/// and comment-only lines are dropped, so reformatting comments re-runs nothing. A JSON config (or any
/// text that does not look like block YAML) is conservatively treated as read by both stages.
/// </summary>
internal static class ConfigSections
{
    private static readonly Regex TopLevelKey = new Regex(@"^(?:""(?<k>[^""]*)""|'(?<k>[^']*)'|(?<k>[A-Za-z_][\w\-]*))\s*:(?:\s|$)", RegexOptions.CultureInvariant);

    public static (string Export, string Check) Split(string text)
    {
        var trimmed = text.TrimStart();
        if (trimmed.StartsWith("{", StringComparison.Ordinal)) return (text, text);
        var export = new StringBuilder();
        var check = new StringBuilder();
        bool inChecks = false;
        foreach (var raw in text.Replace("\r\n", "\n").Split('\n'))
        {
            var line = raw.TrimEnd();
            var content = line.TrimStart();
            if (content.Length == 0 || content.StartsWith("#", StringComparison.Ordinal)) continue;
            if (line.Length == content.Length)
            {
                var m = TopLevelKey.Match(line);
                if (m.Success) inChecks = m.Groups["k"].Value == "checks";
                else if (content.StartsWith("-", StringComparison.Ordinal)) { /* a block sequence may sit at its key's indentation */ }
                else if (line != "---" && line != "...") return (text, text);
            }
            (inChecks ? check : export).Append(line).Append('\n');
        }
        return (export.ToString(), check.ToString());
    }
}
