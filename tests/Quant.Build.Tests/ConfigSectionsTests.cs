using Quant.Build.Tasks;
using Quant.TestSupport;

namespace Quant.Build.Tests;

/// <summary>The in-process pieces the up-to-date checks rest on: the config split per stage and the data globs.</summary>
public class ConfigSectionsTests
{
    private const string Config = """
        inputs:
          x: {data: "calib/*.npy"}
        # a comment
        checks:
          r:
            cosine: {min: 0.99}
        quant_config:
          op_config:
            Softmax: {qtype: float16}
        """;

    [Fact]
    public void Checks_block_goes_to_the_check_stage_everything_else_to_export()
    {
        var (export, check) = ConfigSections.Split(Config);
        Assert.Equal("checks:\n  r:\n    cosine: {min: 0.99}\n", check);
        Assert.Equal("inputs:\n  x: {data: \"calib/*.npy\"}\nquant_config:\n  op_config:\n    Softmax: {qtype: float16}\n", export);
        // Comments, blank lines and trailing spaces change neither part.
        Assert.Equal((export, check), ConfigSections.Split(Config.Replace("# a comment", "\n   # another  ").Replace("0.99}", "0.99}   ")));
    }

    [Theory]
    [InlineData("{\"checks\": {}}")]          // JSON: read whole by both stages
    [InlineData("checks:\n  r: 1\nnot a key\n")] // not block YAML we understand
    public void Anything_unrecognised_counts_for_both_stages(string text)
    {
        var (export, check) = ConfigSections.Split(text);
        Assert.Equal(text, export);
        Assert.Equal(text, check);
    }

    [Fact]
    public void Globs_match_within_and_across_folders()
    {
        var dir = TestAssets.TempDir("glob");
        foreach (var f in new[] { "a/x1.npy", "a/x2.npz", "a/b/x3.npy", "c/x4.npy" })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(dir, f))!);
            File.WriteAllText(Path.Combine(dir, f), "");
        }
        string[] Rel(string pattern) => Glob.Expand(Path.Combine(dir, "c"), pattern).Select(p => Path.GetRelativePath(dir, p).Replace('\\', '/')).ToArray();
        Assert.Equal(["a/x1.npy"], Rel("../a/*.npy"));
        Assert.Equal(["a/b/x3.npy", "a/x1.npy"], Rel("../a/**/*.npy"));
        Assert.Equal(["a/x1.npy", "a/x2.npz"], Rel("../a/x?.np*"));
        Assert.Equal(["c/x4.npy"], Rel("x4.npy"));
        Assert.Empty(Rel("../missing/*.npy"));
    }
}
