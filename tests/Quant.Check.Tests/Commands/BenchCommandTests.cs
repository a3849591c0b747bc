using System.Globalization;
using System.Text.Json;
using Quant.TestSupport;

namespace Quant.Check.Tests.Commands;

/// <summary>
/// <c>quant-check bench</c> as a user runs it, on the real cls model and its qat model exported from the sample's
/// yaml: the table and the JSON carry every median and ratio, all positive. (No timing thresholds: the shared
/// test machine's speed is not ours to assert.)
/// </summary>
public class BenchCommandTests
{
    private static readonly string Tool = Path.Combine(AppContext.BaseDirectory, "quant-check.dll");
    private static readonly string Sample = Path.Combine(TestAssets.RepoRoot, "samples", "ppocr-cls");
    private static readonly string ClsModel = Path.Combine(Sample, "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx");

    private static (int Code, string Stdout, string Stderr) QuantCheck(params string[] args) =>
        TestAssets.Run("dotnet", [Tool, .. args], TimeSpan.FromMinutes(5));

    [Fact]
    public void Bench_times_float_and_qat_in_both_runtimes_and_writes_json()
    {
        var dir = TestAssets.TempDir("bench");
        var export = QuantCheck("export", ClsModel, "--config", Path.Combine(Sample, "models", "cls.quant.yaml"), "--out", dir, "--name", "cls", "--threads", "1");
        Assert.True(export.Code == 0, export.Stderr);
        var qat = Path.Combine(dir, "cls.qat.onnx");
        var json = Path.Combine(dir, "bench.json");

        var (code, stdout, stderr) = QuantCheck("bench", ClsModel, "--qat", qat, "--shape", "x=1x3x48x192", "--repeat", "4", "--threads", "1", "--json", json);
        Assert.True(code == 0, stderr);
        Assert.Matches(@"ONNX Runtime 1\.32\.\d+ \(optimizations all\) and the Quant.Build engine, 1 thread\(s\), median of 4 runs each in 4 alternating rounds; inputs x 1x3x48x192", stdout);
        Assert.Matches(@"(?m)^\| model +\| engine ms +\| ORT ms +\| engine / ORT +\|$", stdout);
        foreach (var row in new[] { "float", "qat" })
        {
            var m = System.Text.RegularExpressions.Regex.Match(stdout, $@"(?m)^\| {row} +\| (\S+) +\| (\S+) +\| (\S+) +\|$");
            Assert.True(m.Success, stdout);
            for (int g = 1; g <= 3; g++) Assert.True(double.Parse(m.Groups[g].Value, CultureInfo.InvariantCulture) > 0, m.Value);
        }
        Assert.Matches(@"qat speed-up in ONNX Runtime \(float ms / qat ms\): \d+\.\d\dx", stdout);

        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var root = doc.RootElement;
        Assert.StartsWith("1.32.", root.GetProperty("onnxruntime_version").GetString());
        Assert.Equal("all", root.GetProperty("onnxruntime_optimization").GetString());
        Assert.Equal(1, root.GetProperty("threads").GetInt32());
        Assert.Equal([1, 3, 48, 192], root.GetProperty("inputs").GetProperty("x").EnumerateArray().Select(e => e.GetInt32()));
        var models = root.GetProperty("models").EnumerateArray().ToList();
        Assert.Equal(["float", "qat"], models.Select(m => m.GetProperty("model").GetString()));
        Assert.Equal(qat, models[1].GetProperty("path").GetString());
        foreach (var m in models)
        {
            foreach (var key in new[] { "engine_median_ms", "onnxruntime_median_ms", "engine_over_onnxruntime" })
                Assert.True(m.GetProperty(key).GetDouble() > 0, key);
            foreach (var key in new[] { "engine_runs_ms", "onnxruntime_runs_ms" })
            {
                var runs = m.GetProperty(key).EnumerateArray().Select(e => e.GetDouble()).ToList();
                Assert.Equal(4, runs.Count);
                Assert.All(runs, t => Assert.True(t > 0));
            }
        }
        Assert.True(root.GetProperty("qat_speedup_onnxruntime").GetDouble() > 0);
        Assert.True(root.GetProperty("qat_speedup_engine").GetDouble() > 0);
    }

    [Fact]
    public void Bench_takes_input_files()
    {
        var input = Path.Combine(Sample, "inputs", "cls_0003.x.npy");
        var (code, stdout, stderr) = QuantCheck("bench", ClsModel, "--input", $"x={input}", "--repeat", "2");
        Assert.True(code == 0, stderr);
        Assert.Matches(@"(?m)^\| float +\| \d+\.\d\d +\| \d+\.\d\d +\| \d+\.\d\d +\|$", stdout);
        Assert.DoesNotContain("qat speed-up", stdout);
    }

    [Theory]
    [InlineData(new[] { "--repeat", "2" }, "input 'x' is [", "--shape x=")]
    [InlineData(new[] { "--shape", "x=1x4x48x192" }, "--shape x=1x4x48x192 does not fit", "'x'")]
    [InlineData(new[] { "--shape", "x=1x3xfoo" }, "'foo' is not a positive dimension", "1x3x640x640")]
    [InlineData(new[] { "--shape", "y=1x3x48x192" }, "no input 'y'", "x")]
    public void Bad_shapes_are_one_clear_error(string[] extra, string mention1, string mention2)
    {
        var (code, _, stderr) = QuantCheck(["bench", ClsModel, .. extra]);
        Assert.Equal(1, code);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, stderr);
        Assert.StartsWith("quant-check: error: ", lines[0]);
        Assert.Contains(mention1, lines[0]);
        Assert.Contains(mention2, lines[0]);
    }
}
