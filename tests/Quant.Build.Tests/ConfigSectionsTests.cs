using Quant.Build.Tasks;
using Quant.TestSupport;

namespace Quant.Build.Tests;

/// <summary>The in-process pieces the up-to-date checks rest on: the config split per stage (the data globs: FileGlobTests).</summary>
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
}
