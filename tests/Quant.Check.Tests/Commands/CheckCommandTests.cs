using System.Text.RegularExpressions;
using System.Xml.Linq;
using Quant.TestSupport;

namespace Quant.Check.Tests.Commands;

/// <summary><c>quant-check check</c> and <c>baseline update</c> as a build runs them: real cls model, committed samples.</summary>
public class CheckCommandTests
{
    private static readonly string Tool = Path.Combine(AppContext.BaseDirectory, "quant-check.dll");

    private static (int Code, string Stdout, string Stderr) QuantCheck(params string[] args) =>
        TestAssets.Run("dotnet", [Tool, .. args], TimeSpan.FromMinutes(5));

    /// <summary>Lines 1-9 configure the export; checks: starts at line 10.</summary>
    private static string Config(string dir, string checks)
    {
        var path = Path.Combine(dir, "cls.quant.yaml");
        File.WriteAllText(path,
            "model_config:\n  activation:\n    calibration_type: max\n" +
            $"inputs:\n  x:\n    data: \"{Path.Combine(TestAssets.Data("ppocr-cls"), "cls_*.npy").Replace('\\', '/')}\"\n" +
            "    scale: 1/255\n    mean: 0.5\n    std: 0.5\n" + checks);
        return path;
    }

    private static (string Dir, string Qat) Export(string checks)
    {
        var dir = TestAssets.TempDir("check-cli");
        var cfg = Config(dir, checks);
        var (code, _, stderr) = QuantCheck("export", TestAssets.ClsModel, "--config", cfg, "--out", Path.Combine(dir, "out"), "--name", "cls");
        Assert.True(code == 0, stderr);
        return (dir, Path.Combine(dir, "out", "cls.qat.onnx"));
    }

    private static string[] Diagnostics(string stderr) =>
        stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(l => l.Contains(" QB")).ToArray();

    [Fact]
    public void A_failing_threshold_is_a_positioned_error_and_exit_1_or_a_warning_with_warn_only()
    {
        // line 12: "    cosine: {min: 1.01}", the bound at column 19; line 13: "    l1: {max: 1}" passes.
        var (dir, qat) = Export("checks:\n  softmax:\n    cosine: {min: 1.01}\n    l1: {max: 1}\n");
        var cfg = Path.Combine(dir, "cls.quant.yaml");
        var outDir = Path.Combine(dir, "out");
        var (code, stdout, stderr) = QuantCheck("check", TestAssets.ClsModel, "--config", cfg, "--qat", qat, "--out", outDir, "--name", "cls");
        Assert.Equal(1, code);
        var line = Assert.Single(Diagnostics(stderr));
        Assert.Matches("^" + Regex.Escape($"{cfg}(12,19): error QB5001: cls: qat_vs_float output 'softmax_0.tmp_0' cosine min ") + @"(0\.9\d+|1) < 1\.01$", line);
        // The two rules, and runtime_vs_qat's default bound (ONNX Runtime agrees with the engine on cls).
        Assert.Contains("cls: 2 of 3 checks passed over 4 samples", stdout);
        Assert.Contains("ok  cls: runtime_vs_qat output 'softmax_0.tmp_0' cosine min", stdout);
        // Same models, samples and config as the export: float and qat were compared once, by the export.
        Assert.Contains("qat_vs_float: as the export measured it", stdout);
        var junit = XDocument.Load(Path.Combine(outDir, "cls.check.junit.xml"));
        Assert.Equal(3, junit.Descendants("testcase").Count());
        Assert.Single(junit.Descendants("failure"));

        (code, stdout, stderr) = QuantCheck("check", TestAssets.ClsModel, "--config", cfg, "--qat", qat, "--out", outDir, "--name", "cls", "--warn-only",
            "--stage", "qat_vs_float");
        Assert.Equal(0, code);
        Assert.StartsWith($"{cfg}(12,19): warning QB5001: cls: qat_vs_float output 'softmax_0.tmp_0' cosine min ", Assert.Single(Diagnostics(stderr)));
        Assert.Contains("cls: 1 of 2 checks passed over 4 samples", stdout);
    }

    [Fact]
    public void Baseline_update_then_check_passes_and_a_regression_is_QB5002_naming_both_values()
    {
        var (dir, qat) = Export("checks:\n  softmax:\n    cosine: {min: 0.5}\n");
        var cfg = Path.Combine(dir, "cls.quant.yaml");
        var outDir = Path.Combine(dir, "out");
        var baseline = Path.Combine(dir, "cls.baseline.json");
        var (code, stdout, stderr) = QuantCheck("baseline", "update", TestAssets.ClsModel, "--config", cfg, "--qat", qat, "--out", baseline);
        Assert.True(code == 0, stderr);
        Assert.Contains("baseline of 14 values over 4 samples", stdout); // 7 per stage pair: qat_vs_float and runtime_vs_qat
        var written = File.ReadAllText(baseline);

        (code, _, stderr) = QuantCheck("check", TestAssets.ClsModel, "--config", cfg, "--qat", qat, "--out", outDir, "--name", "cls", "--baseline", baseline);
        Assert.True(code == 0, stderr);
        Assert.Equal(written, File.ReadAllText(baseline)); // a check never rewrites the baseline

        // Accept a cosine 0.01 better than what the model reaches: the check must now report a regression.
        var m = Regex.Match(written, "\"cosine.min\": ([0-9.eE+-]+)");
        double current = double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        double accepted = Math.Round(current + 0.01, 6);
        // The first entry is qat_vs_float's (stages are sorted); runtime_vs_qat's may have the same text.
        File.WriteAllText(baseline, written[..m.Index] + $"\"cosine.min\": {accepted.ToString(System.Globalization.CultureInfo.InvariantCulture)}" + written[(m.Index + m.Length)..]);
        (code, _, stderr) = QuantCheck("check", TestAssets.ClsModel, "--config", cfg, "--qat", qat, "--out", outDir, "--name", "cls", "--baseline", baseline);
        Assert.Equal(1, code);
        var line = Assert.Single(Diagnostics(stderr));
        Assert.StartsWith($"{cfg}(12,19): error QB5002: cls: qat_vs_float output 'softmax_0.tmp_0' cosine min ", line);
        Assert.Contains($"regressed from baseline {accepted.ToString("G6", System.Globalization.CultureInfo.InvariantCulture)} by more than the tolerance 0.001", line);
    }

    [Fact]
    public void Help_lists_the_check_and_baseline_commands()
    {
        var (code, stdout, _) = QuantCheck("--help");
        Assert.Equal(0, code);
        Assert.Contains("check", stdout);
        Assert.Contains("baseline", stdout);
        (code, stdout, _) = QuantCheck("check", "--help");
        Assert.Equal(0, code);
        foreach (var o in new[] { "--config", "--qat", "--out", "--name", "--baseline", "--warn-only", "--stage" }) Assert.Contains(o, stdout);
    }
}
