using Quant.TestSupport;

namespace Quant.Check.Tests.Commands;

/// <summary><c>quant-check compare</c> as a user runs it on the fixture models (tests/data/compare), and its refusals, one line each.</summary>
public class CompareCommandTests
{
    private static readonly string Tool = Path.Combine(AppContext.BaseDirectory, "quant-check.dll");

    private static (int Code, string Stdout, string Stderr) QuantCheck(params string[] args) =>
        TestAssets.Run("dotnet", [Tool, .. args], TimeSpan.FromMinutes(5));

    private static string Fixture(params string[] parts) => TestAssets.Data(["compare", .. parts]);

    private static (string Dir, string Config, string Qat) Export(string model)
    {
        var dir = TestAssets.TempDir("compare-cli");
        var cfg = Path.Combine(dir, "q.yaml");
        File.WriteAllText(cfg, $"inputs:\n  x:\n    data: \"{Path.Combine(Fixture("calib"), "*.npy").Replace('\\', '/')}\"\n");
        var r = QuantCheck("export", model, "--config", cfg, "--out", dir, "--name", "m");
        Assert.True(r.Code == 0, r.Stderr);
        return (dir, cfg, Path.Combine(dir, "m.qat.onnx"));
    }

    [Fact]
    public void Compare_prints_the_worst_tensors_and_the_findings_and_writes_both_files()
    {
        var (dir, cfg, qat) = Export(Fixture("log_negative.onnx"));
        var probe = Path.Combine(Fixture("probe"), "*.npy");
        var r = QuantCheck("compare", Fixture("log_negative.onnx"), qat, "--config", cfg, "--data", probe, "-d", "1", "--out", dir, "--name", "m");
        Assert.True(r.Code == 0, r.Stderr);
        Assert.Contains("m: 4 tensors compared over 1 samples (float, qat)", r.Stdout);
        Assert.Matches(@"\| logged +\| Log_1 +\| Log", r.Stdout);
        Assert.Contains("[nonfinite] float: Log 'Log_1' is the first node to compute NaN from finite inputs", r.Stdout);
        Assert.True(File.Exists(Path.Combine(dir, "m.compare.json")));
        var text = File.ReadAllText(Path.Combine(dir, "m.compare.txt"));
        Assert.Contains("float: Log 'Log_1' -> 'logged' (nan, sample 0)", text);
    }

    [Fact]
    public void A_qat_model_of_another_float_model_is_refused_in_one_line()
    {
        var (dir, cfg, qat) = Export(Fixture("log_negative.onnx"));
        var r = QuantCheck("compare", Fixture("concat_ranges.onnx"), qat, "--config", cfg, "--out", dir);
        Assert.Equal(1, r.Code);
        var line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("error QB8042", line);
        Assert.Contains("not an export of this float model", line);
        Assert.False(File.Exists(Path.Combine(dir, "concat_ranges.compare.json")));
    }

    [Fact]
    public void Compare_without_data_or_with_zero_samples_is_refused_in_one_line()
    {
        var (dir, cfg, qat) = Export(Fixture("log_negative.onnx"));
        var r = QuantCheck("compare", Fixture("log_negative.onnx"), qat, "--out", dir);
        Assert.Equal(1, r.Code);
        Assert.Contains("--config Q.yaml (data and preprocessing) or --data GLOB", Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
        r = QuantCheck("compare", Fixture("log_negative.onnx"), qat, "--config", cfg, "-d", "0", "--out", dir);
        Assert.Equal(1, r.Code);
        Assert.Contains("error QB8044", Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
    }
}
