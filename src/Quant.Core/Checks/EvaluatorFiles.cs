using Quant.Core.Config;

namespace Quant.Core.Checks;

/// <summary>
/// The files an evaluator command names (<c>python3 eval/accuracy.py "{outputs}"</c> names <c>eval/accuracy.py</c>):
/// every word of the command that is an existing file, relative to the folder the command runs in (the config's).
/// A build re-runs the check when one of them changes, as it does when the command's text changes. A script the
/// command reaches only indirectly (imported by the named one) is not seen: name it, or touch the named one.
/// </summary>
public static class EvaluatorFiles
{
    public static IReadOnlyList<string> Of(ChecksConfig checks, string workDirectory)
    {
        var files = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var rule in checks.Rules)
            if (rule.Evaluator is { } e)
                foreach (var word in Words(e.Command))
                {
                    // Placeholders are the run's own folders; words with shell syntax are not paths we can follow.
                    if (word.Length == 0 || word.IndexOfAny(['{', '$', '*', '?', '|', '<', '>', ';', '&']) >= 0) continue;
                    string full;
                    try { full = Path.GetFullPath(Path.Combine(workDirectory, word)); }
                    catch (Exception ex) when (ex is ArgumentException or NotSupportedException or PathTooLongException) { continue; }
                    if (File.Exists(full)) files.Add(full);
                }
        return [.. files];
    }

    /// <summary>The command split at unquoted white space, quotes removed (enough to find the paths in it).</summary>
    private static IEnumerable<string> Words(string command)
    {
        var word = new System.Text.StringBuilder();
        char quote = '\0';
        foreach (var c in command)
        {
            if (quote != '\0')
            {
                if (c == quote) quote = '\0';
                else word.Append(c);
            }
            else if (c is '"' or '\'') quote = c;
            else if (char.IsWhiteSpace(c))
            {
                if (word.Length > 0) yield return word.ToString();
                word.Clear();
            }
            else word.Append(c);
        }
        if (word.Length > 0) yield return word.ToString();
    }
}
