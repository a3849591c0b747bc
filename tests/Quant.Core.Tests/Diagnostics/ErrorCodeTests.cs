using System.Text.RegularExpressions;
using Quant.Core.Diagnostics;
using Quant.TestSupport;

namespace Quant.Core.Tests.Diagnostics;

/// <summary>
/// The error-code enum is the one source of codes: every QB code the sources, build files and docs mention
/// exists in it, docs/error-codes.md lists every member under its own name, and no code is spelled as a string
/// literal in code (the MSBuild tasks compile the enum in).
/// </summary>
public class ErrorCodeTests
{
    private static readonly string[] Folders = ["src", "build", "docs"];
    private static readonly string[] Extensions = [".cs", ".md", ".props", ".targets", ".csproj", ".sh", ".yaml", ".json", ".txt"];

    private static IEnumerable<string> RepoFiles() =>
        Folders.Select(f => Path.Combine(TestAssets.RepoRoot, f)).Where(Directory.Exists)
            .SelectMany(d => Directory.EnumerateFiles(d, "*", SearchOption.AllDirectories))
            .Where(f => Extensions.Contains(Path.GetExtension(f)))
            .Where(f => !f.Split(Path.DirectorySeparatorChar).Any(p => p is "bin" or "obj"));

    private static readonly Dictionary<string, ErrorCode> Enum = System.Enum.GetValues<ErrorCode>().ToDictionary(c => c.Text());

    [Fact]
    public void Every_code_mentioned_in_src_build_and_docs_is_in_the_enum()
    {
        var unknown = new List<string>();
        int seen = 0;
        foreach (var file in RepoFiles())
            foreach (Match m in Regex.Matches(File.ReadAllText(file), @"\bQB\d{4}\b"))
            {
                seen++;
                if (!Enum.ContainsKey(m.Value)) unknown.Add($"{Path.GetRelativePath(TestAssets.RepoRoot, file)}: {m.Value}");
            }
        Assert.True(seen > 40, $"only {seen} mentions found: is the repository root right?");
        Assert.True(unknown.Count == 0, "codes not in ErrorCode.cs: " + string.Join("; ", unknown));
    }

    [Fact]
    public void Error_codes_doc_lists_every_member_under_its_name_and_nothing_else()
    {
        var doc = File.ReadAllText(Path.Combine(TestAssets.RepoRoot, "docs", "error-codes.md"));
        var rows = Regex.Matches(doc, @"^\| (QB\d{4}) \| (\w+) \|", RegexOptions.Multiline).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
        foreach (var (text, code) in Enum)
        {
            Assert.True(rows.TryGetValue(text, out var name), $"docs/error-codes.md has no row for {text} ({code})");
            Assert.Equal(code.ToString(), name);
        }
        Assert.Empty(rows.Keys.Except(Enum.Keys));
    }

    [Fact]
    public void No_code_is_a_string_literal_in_the_sources()
    {
        var literals = RepoFiles().Where(f => f.EndsWith(".cs", StringComparison.Ordinal))
            .SelectMany(f => Regex.Matches(File.ReadAllText(f), "\"QB\\d{4}").Select(m => $"{Path.GetRelativePath(TestAssets.RepoRoot, f)}: {m.Value}"))
            .ToList();
        Assert.True(literals.Count == 0, "use ErrorCode.X.Text() instead of: " + string.Join("; ", literals));
    }

    [Fact]
    public void Text_is_QB_and_four_digits() =>
        Assert.Equal(["QB1001", "QB6006"], new[] { ErrorCode.ConfigSyntax.Text(), ErrorCode.BuildToolNotFound.Text() });
}
