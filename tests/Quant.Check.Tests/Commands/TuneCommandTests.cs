using System.Diagnostics;
using System.Text.Json;
using Quant.TestSupport;

namespace Quant.Check.Tests.Commands;

/// <summary><c>quant-check tune</c> on the real rec model and its four committed lines.</summary>
public class TuneCommandTests
{
    private static readonly string Tool = Path.Combine(AppContext.BaseDirectory, "quant-check.dll");

    [Fact]
    public void An_unreachable_target_ends_within_its_budget_with_the_best_config_written_and_one_clear_error()
    {
        var dir = TestAssets.TempDir("tune-cli");
        try
        {
            var config = Path.Combine(dir, "rec.yaml");
            // ec only fixes weights; int8 activations keep rec's softmax far below cosine 0.999999.
            File.WriteAllText(config,
                "preset: performance\nmodel_config:\n  activation:\n    calibration_type: max\n" +
                $"inputs:\n  x:\n    data: \"{Path.Combine(TestAssets.Data("ppocr-rec"), "calib_*.npy").Replace('\\', '/')}\"\n" +
                "    scale: 1/255\n    mean: 0.5\n    std: 0.5\n" +
                "tune:\n  targets:\n    softmax:\n      output: \"*\"\n      cosine: {min: 0.999999}\n");
            var budget = TimeSpan.FromSeconds(25);
            var clock = Stopwatch.StartNew();
            var (code, stdout, stderr) = TestAssets.Run("dotnet", [Tool, "tune", TestAssets.RecModel, "--config", config, "--out", Path.Combine(dir, "out"),
                "--name", "rec", "--candidates", "ec", "--budget", "25s", "--threads", "1"], TimeSpan.FromMinutes(5));
            clock.Stop();

            Assert.Equal(1, code);
            var errors = stderr.Split('\n').Where(l => l.Contains(" error ")).ToList();
            var error = Assert.Single(errors);
            Assert.StartsWith($"{config}(15,7): error QB8026: tune target softmax_11.tmp_0:cosine >= 0.999999 missed: best reached 0.", error);
            Assert.Contains("rec.tuned.yaml", error);
            Assert.Contains("try more candidates", error);
            // The budget bounds the search; the process also starts .NET, calibrates and measures the baseline once.
            Assert.True(clock.Elapsed < budget + TimeSpan.FromSeconds(60), $"took {clock.Elapsed}");

            Assert.Contains("Pareto", stdout);
            Assert.True(File.Exists(Path.Combine(dir, "out", "rec.tuned.yaml")));
            using var report = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "out", "rec.tune.json")));
            var root = report.RootElement;
            Assert.Equal("quant-tune/1", root.GetProperty("format").GetString());
            Assert.False(root.GetProperty("met").GetBoolean());
            // On a quiet machine the ec-only search can end before the budget does; either way the message says which.
            Assert.Equal(root.GetProperty("stopped_by_budget").GetBoolean(), error.Contains("the budget ran out: give more time (--budget)", StringComparison.Ordinal));
            Assert.Equal("rec.yaml", root.GetProperty("config").GetString());
            double best = root.GetProperty("best").GetProperty("values").GetProperty("softmax_11.tmp_0:cosine").GetDouble();
            double baseline = root.GetProperty("baseline").GetProperty("values").GetProperty("softmax_11.tmp_0:cosine").GetDouble();
            Assert.True(best >= baseline && best < 0.999999, $"best {best}, baseline {baseline}");
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }
}
