using System.Text.Json;
using Quant.Core.Calibration;
using Quant.Core.Diagnostics;
using Quant.Core.Stages;
using Quant.Core.Tests.Stages;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Calibration;

/// <summary>
/// bias_correction through the real export stage on PaddleOCR rec (committed samples, all-int8 performance preset):
/// the corrected layers' per-channel mean output shift, measured layer by layer on the correction samples, is gone; the
/// report lists every layer; the export stays byte-identical; num_sample beyond the data is a positioned error.
/// </summary>
public class BiasCorrectionTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const string Correction = "  weight:\n    bias_correction: {metric: mse, num_sample: 2}\n";

    private static string Yaml(string weight) =>
        "preset: performance\nmodel_config:\n  activation:\n    calibration_type: max\n" + weight +
        $"inputs:\n  x:\n    data: \"{ExportConfigs.RecData}\"\n" + ExportConfigs.RecPreprocessing;

    [Fact]
    public void Corrected_rec_layers_lose_their_mean_shift_and_the_export_stays_deterministic()
    {
        var dir = TestAssets.TempDir("bias-correction");
        var cache = Path.Combine(dir, "cache");
        ExportResult Export(string label, string weight)
        {
            var cfg = Path.Combine(dir, label + ".yaml");
            File.WriteAllText(cfg, Yaml(weight));
            return ExportStage.Run(new ExportRequest { ModelPath = TestAssets.RecModel, ConfigPath = cfg, OutputDirectory = Path.Combine(dir, label), Name = "rec", CacheDirectory = cache });
        }
        var plain = Export("plain", "");
        var corrected = Export("corrected", Correction);
        var again = Export("again", Correction);
        Assert.Equal(File.ReadAllBytes(corrected.QatModelPath), File.ReadAllBytes(again.QatModelPath));
        Assert.Equal(File.ReadAllText(corrected.ModelCheckJsonPath), File.ReadAllText(again.ModelCheckJsonPath));

        using var report = JsonDocument.Parse(File.ReadAllText(corrected.ModelCheckJsonPath));
        var bc = report.RootElement.GetProperty("bias_correction");
        Assert.Equal("mse", bc.GetProperty("metric").GetString());
        Assert.Equal(2, bc.GetProperty("samples").GetInt32());
        var layers = bc.GetProperty("layers").EnumerateArray().ToList();
        var kept = layers.Where(l => l.GetProperty("applied").GetBoolean()).ToList();
        output.WriteLine($"{kept.Count} of {layers.Count} layers corrected");
        Assert.NotEmpty(kept);
        Assert.All(kept, l => Assert.True(l.GetProperty("after").GetDouble() < l.GetProperty("before").GetDouble()));
        Assert.Contains("== Bias correction ==", File.ReadAllText(corrected.ModelCheckTextPath));

        // Layer by layer on the two correction samples: the kept layers' per-channel mean shift is gone.
        var prepared = corrected.Prepared.Model;
        var floatSession = new InferenceSession(prepared);
        var outputs = kept.Select(l => prepared.Graph.Nodes.Single(n => n.Name == l.GetProperty("node").GetString()).Outputs[0]).ToHashSet(StringComparer.Ordinal);
        var samples = OcrSamples.RecFiles.Take(2).Select(f => new Dictionary<string, Tensor> { ["x"] = OcrSamples.Rec(f) }).ToList();
        Dictionary<string, double> MeanShift(ExportResult r)
        {
            var session = new InferenceSession(OnnxModelReader.Load(r.QatModelPath));
            var sums = new Dictionary<string, double[]>(StringComparer.Ordinal);
            var counts = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var s in samples)
                LayerwiseRun.Run(floatSession, session, s, outputs, (name, f, q) =>
                {
                    int channels = f.Shape[1], inner = f.Length / f.Shape[0] / channels;
                    var acc = sums.TryGetValue(name, out var a) ? a : sums[name] = new double[channels];
                    var fs = f.ReadOnlySpan<float>();
                    var qs = q.ReadOnlySpan<float>();
                    for (int i = 0; i < fs.Length; i++) acc[i / inner % channels] += (double)fs[i] - qs[i];
                    counts[name] = counts.GetValueOrDefault(name) + f.Length / channels;
                });
            return sums.ToDictionary(kv => kv.Key, kv => kv.Value.Average(v => Math.Abs(v / counts[kv.Key])), StringComparer.Ordinal);
        }
        var before = MeanShift(plain);
        var after = MeanShift(corrected);
        foreach (var o in outputs.Order(StringComparer.Ordinal))
        {
            output.WriteLine($"{o}: mean |channel shift| {before[o]:E3} -> {after[o]:E3}");
            Assert.True(after[o] <= before[o] * 0.01 + 1e-6, $"{o}: shift {before[o]} -> {after[o]}");
        }
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Num_sample_beyond_the_calibration_data_is_an_error_at_its_line()
    {
        var dir = TestAssets.TempDir("bias-correction-samples");
        var cfg = Path.Combine(dir, "q.yaml");
        File.WriteAllText(cfg, Yaml("  weight:\n    bias_correction:\n      num_sample: 9\n"));
        var e = Assert.Throws<QuantException>(() => ExportStage.Run(new ExportRequest { ModelPath = TestAssets.RecModel, ConfigPath = cfg, OutputDirectory = dir, Name = "rec" }));
        Assert.Equal(ErrorCode.ConfigInvalidValue, e.Code);
        Assert.Equal($"{cfg}(7,19): error QB1004: model_config.weight.bias_correction.num_sample: 9 samples asked for, but the calibration data has 4; use at most 4 or add samples",
            e.ToDiagnostic());
        Assert.False(File.Exists(Path.Combine(dir, "rec.qat.onnx")), "no qat model may be written when the config is wrong");
        Directory.Delete(dir, true);
    }
}
