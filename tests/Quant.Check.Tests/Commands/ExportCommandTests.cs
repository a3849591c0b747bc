using Quant.Engine;
using Quant.TestSupport;

namespace Quant.Check.Tests.Commands;

/// <summary><c>quant-check export</c> as a user runs it: real cls model, real samples, a J6-style yaml.</summary>
public class ExportCommandTests
{
    private static readonly string Tool = Path.Combine(AppContext.BaseDirectory, "quant-check.dll");
    private static readonly string ClsModel = Path.Combine(TestAssets.RepoRoot, "samples", "ppocr-cls", "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx");

    private static (int Code, string Stdout, string Stderr) QuantCheck(params string[] args) =>
        TestAssets.Run("dotnet", [Tool, .. args], TimeSpan.FromMinutes(5));

    internal static string WriteConfig(string dir, string body)
    {
        var path = Path.Combine(dir, "cls.quant.yaml");
        File.WriteAllText(path, body.Replace("DATA", Path.Combine(TestAssets.Data("ppocr-cls"), "cls_*.npy").Replace('\\', '/')));
        return path;
    }

    internal const string GoodConfig = """
        quant_config:
          model_config:
            all_node_type: int8
            activation:
              calibration_type: [max, percentile]
              max_percentile: 0.99995
          op_config:
            Softmax: {qtype: float16}
        inputs:
          x:
            data: "DATA"
            scale: 1/255
            mean: 0.5
            std: 0.5
        calibration:
          batch_size: 2
        """;

    [Fact]
    public void Export_writes_the_qat_model_reports_and_a_similarity_table()
    {
        var dir = TestAssets.TempDir("export-cli");
        var cfg = WriteConfig(dir, GoodConfig);
        var (code, stdout, stderr) = QuantCheck("export", ClsModel, "--config", cfg, "--out", Path.Combine(dir, "out"), "--name", "cls");
        Assert.True(code == 0, stderr);
        Assert.Contains("output similarity, float vs qat", stdout);
        Assert.Matches(@"last-bit stability \S+: cosine [01]\.\d{6} \(min of 8 runs", stdout);
        // Redirected output is plain: a Markdown table, progress lines with the time left, no terminal escapes.
        Assert.Matches(@"(?m)^\| softmax_0\.tmp_0 +\| (0\.9|1\.0)\d+ / (0\.9|1\.0)\d+ / ", stdout);
        Assert.Matches(@"(?m)^\| output +\| cosine +\| L1 +\| L2 +\| Chebyshev +\|$", stdout);
        Assert.DoesNotContain('\x1b', stdout + stderr);
        Assert.Matches(@"(?m)^calibration: 1/2 \(50%\), \d+\.\d s, about \d+\.\d s left$", stderr);
        Assert.Matches(@"(?m)^comparing float and qat: 4/4 \(100%\), \d+\.\d s$", stderr);
        Assert.Contains("candidate max", stdout);
        Assert.Contains("candidate percentile(0.99995)", stdout);
        foreach (var f in new[] { "cls.qat.onnx", "cls.model_check.txt", "cls.model_check.json", "cls.qconfig_changelogs.txt", "cls.calibration.qcs" })
            Assert.True(File.Exists(Path.Combine(dir, "out", f)), f);
        Assert.Contains("calibration: 0/2", stderr); // 4 samples in batches of 2
        // The exported model runs in ONNX Runtime and reads the rotated line as rotated.
        var x = OcrSamples.Cls("cls_0003.npy");
        var p = OrtOracle.Run(Path.Combine(dir, "out", "cls.qat.onnx"), new Dictionary<string, Tensor> { ["x"] = x }).Outputs["softmax_0.tmp_0"].ReadOnlySpan<float>();
        Assert.True(p[1] > p[0]);
    }

    /// <summary>
    /// A QDQ model made elsewhere (ONNX Runtime's quantize_static layout) under a config that asks for float16 where the
    /// model has int8: the export succeeds with the model's scales and prints each contradiction as a canonical warning
    /// line naming the model file and the nodes, which MSBuild shows as a warning.
    /// </summary>
    [Fact]
    public void A_qdq_input_model_exports_and_prints_contradictions_as_canonical_warnings()
    {
        var dir = TestAssets.TempDir("export-cli-qdq");
        var model = TestAssets.Data("foreign-qdq", "ort-static.onnx");
        var cfg = Path.Combine(dir, "m.quant.yaml");
        File.WriteAllText(cfg, $"preset: base\ninputs:\n  x:\n    data: \"{Path.Combine(TestAssets.Data("foreign-qdq"), "input_*.npy").Replace('\\', '/')}\"\n");
        var (code, stdout, stderr) = QuantCheck("export", model, "--config", cfg, "--out", Path.Combine(dir, "out"), "--name", "m");
        Assert.True(code == 0, stderr);
        Assert.Matches($@"(?m)^{System.Text.RegularExpressions.Regex.Escape(model)}: warning QB4022: the config puts float16 where the model has int8.*'/skip_add/Add'", stdout);
        Assert.Contains("QDQ input model", File.ReadAllText(Path.Combine(dir, "out", "m.model_check.txt")));
    }

    /// <summary>
    /// One positioned diagnostic, exit 1, no stack trace and no half-written model: schema mistakes, and malformed
    /// yaml (QB1001 where the parser stopped; a deeply nested file used to overflow the stack).
    /// </summary>
    [Theory]
    [InlineData("inputs:\n  x:\n    data: { \"DATA\"\n", "(4,1): error QB1001:", "not valid YAML/JSON")]
    [InlineData("inputs:\n  x:\n    data: [\"DATA\"\n", "(4,1): error QB1001:", "not valid YAML/JSON")]
    [InlineData("calibration:\n  batch_size: 2\n   samples: 4\n", "(3,11): error QB1001:", "not valid YAML/JSON")]
    [InlineData("calibration:\n\tbatch_size: 2\n", "(2,1): error QB1001:", "not valid YAML/JSON")]
    [InlineData("calibration:\n  batch_size: 2\n  batch_size: 4\n", "(3,3): error QB1001:", "not valid YAML/JSON")]
    [InlineData("inputs:\n  x:\n    data: \"DATA\n", "(3,11): error QB1001:", "not valid YAML/JSON")]
    [InlineData("--- ] } :\n", "(1,5): error QB1001:", "not valid YAML/JSON")]
    [InlineData("inputs: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n", "(1,72): error QB1001:", "more than 64 levels")]
    [InlineData("inputs:\n  x:\n    data: \"DATA\"\n    scael: 1\n", "(4,5): error QB1002:", "scale")]
    [InlineData("calibration:\n  batch_size: two\n", "(2,15): error QB1003:", "two")]
    [InlineData("node_config:\n  no_such_node: {qtype: int16}\ninputs:\n  x:\n    data: \"DATA\"\n", "(2,3): error QB1005:", "no_such_node")]
    [InlineData("inputs:\n  x:\n    data: \"nothing/*.npy\"\n", "(3,11): error QB2001:", "nothing/*.npy")]
    public void Bad_config_is_one_positioned_diagnostic(string yaml, string position, string mention)
    {
        var dir = TestAssets.TempDir("export-cli");
        var cfg = WriteConfig(dir, yaml);
        var (code, stdout, stderr) = QuantCheck("export", ClsModel, "--config", cfg, "--out", Path.Combine(dir, "out"));
        Assert.Equal(1, code);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.Contains(": 0/") && !l.StartsWith("calibration")).ToList();
        Assert.True(lines.Count == 1, stderr);
        Assert.StartsWith(cfg + position, lines[0]);
        Assert.Contains(mention, lines[0]);
        Assert.DoesNotContain("   at ", stdout + stderr);
        Assert.DoesNotContain("Exception", stdout + stderr);
        Assert.False(File.Exists(Path.Combine(dir, "out", "cls.qat.onnx")));
    }
}
