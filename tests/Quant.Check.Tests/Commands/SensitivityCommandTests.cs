using Quant.TestSupport;

namespace Quant.Check.Tests.Commands;

/// <summary><c>quant-check sensitivity</c> as a user runs it: the real cls model and its committed samples.</summary>
public class SensitivityCommandTests
{
    private static readonly string Tool = Path.Combine(AppContext.BaseDirectory, "quant-check.dll");

    private static (int Code, string Stdout, string Stderr) QuantCheck(params string[] args) =>
        TestAssets.Run("dotnet", [Tool, .. args], TimeSpan.FromMinutes(5));

    private static string Config(string dir)
    {
        var path = Path.Combine(dir, "cls.quant.yaml");
        File.WriteAllText(path, $"""
            preset: performance
            model_config:
              activation:
                calibration_type: max
            inputs:
              x:
                data: "{Path.Combine(TestAssets.Data("ppocr-cls"), "cls_*.npy").Replace('\\', '/')}"
                scale: 1/255
                mean: 0.5
                std: 0.5
            """);
        return path;
    }

    [Fact]
    public void Sensitivity_prints_the_table_writes_json_csv_and_the_sweep_and_reuses_the_calibration_cache()
    {
        var dir = TestAssets.TempDir("sensitivity-cli");
        var cfg = Config(dir);
        var outDir = Path.Combine(dir, "out");
        string[] args = ["sensitivity", TestAssets.ClsModel, "--config", cfg, "--out", outDir, "--name", "cls", "-d", "2", "-m", "mse", "cosine",
            "-i", "p2o.Conv.0", "p2o.Conv.1", "p2o.Conv.2", "--sweep", "--to", "float16"];
        var (code, stdout, stderr) = QuantCheck(args);
        Assert.True(code == 0, stderr);
        Assert.Contains("calibration: collected", stdout);
        Assert.Contains("node sensitivity, mode alone, 2 samples, 3 candidates (worst first)", stdout);
        Assert.Matches(@"(?m)^\| # +\| name +\| op_type +\| qtype +\| mse +\| cosine +\|$", stdout);
        Assert.Matches(@"(?m)^\| 1 +\| p2o\.Conv\.[012] +\| Conv +\| int8 +\| ", stdout);
        Assert.Matches(@"(?m)^sensitivity: 3/3 \(100%\), \d+\.\d s$", stderr);
        Assert.Contains("threshold sweep: promote to float16", stdout);
        Assert.Matches(@"(?m)^\| \(config\) +\| 0 +\| 0\.0 % +\| ", stdout);
        Assert.DoesNotContain('\x1b', stdout + stderr);
        var json = File.ReadAllText(Path.Combine(outDir, "cls.sensitivity.json"));
        var csv = File.ReadAllText(Path.Combine(outDir, "cls.sensitivity.csv"));
        var sweep = File.ReadAllText(Path.Combine(outDir, "cls.sweep.json"));
        Assert.Contains("\"metrics\": [\n    \"mse\",\n    \"cosine\"\n  ]", json);
        Assert.StartsWith("name,node,op_type,qtype,mse,cosine\n", csv);
        Assert.Equal(4, csv.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Contains("\"to\": \"float16\"", sweep);

        // Again: the export's statistics cache is read, and the files are the same bytes.
        var (code2, stdout2, stderr2) = QuantCheck(args);
        Assert.True(code2 == 0, stderr2);
        Assert.Contains("calibration: statistics from cache", stdout2);
        Assert.Equal(json, File.ReadAllText(Path.Combine(outDir, "cls.sensitivity.json")));
        Assert.Equal(csv, File.ReadAllText(Path.Combine(outDir, "cls.sensitivity.csv")));
        Assert.Equal(sweep, File.ReadAllText(Path.Combine(outDir, "cls.sweep.json")));
    }

    [Fact]
    public void Bad_options_are_one_line_each()
    {
        var dir = TestAssets.TempDir("sensitivity-cli");
        var cfg = Config(dir);
        string[] common = ["sensitivity", TestAssets.ClsModel, "--config", cfg, "--out", Path.Combine(dir, "out")];
        foreach (var (extra, expected) in new (string[], string)[]
        {
            (["-d", "1", "-m", "cosin"], "error QB8003: unknown metric 'cosin'; the metrics are cosine, l1, l2, chebyshev, mse, mre, sqnr"),
            (["-d", "1", "-o", "softmax_9"], "error QB8001: -o 'softmax_9' is not a float output of the model; its float outputs are softmax_0.tmp_0"),
            (["-d", "1", "-i", "p2o.Conv.100"], "error QB8002: -i 'p2o.Conv.100' is not a node of the model"),
            (["-d", "9"], "error QB8004: 9 samples asked for, but the config's calibration data has 4; give a number from 1 to 4"),
            (["-d", "1", "-n", "weights"], "quant-check: error: -n 'weights': give node, weight or activation"),
        })
        {
            var (code, stdout, stderr) = QuantCheck([.. common, .. extra]);
            Assert.Equal(1, code);
            var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.Contains("error")).ToList();
            Assert.True(lines.Count == 1, stderr);
            Assert.Contains(expected, lines[0]);
            Assert.DoesNotContain("   at ", stderr + stdout);
        }
    }
}
