using Quant.Core.Analysis;
using Quant.Core.Calibration;
using Quant.Core.Config;
using Quant.Core.Conversion;
using Quant.Core.DeploymentRuntime;
using Quant.Core.Diagnostics;
using Quant.Core.Stages;
using Quant.Core.Tests.Stages;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Calibration;

/// <summary>
/// Asymmetric and per-channel activations, the search lists and the per-tensor choice on the real PaddleOCR models
/// (committed real samples): exported, run in ONNX Runtime, converted where the integer contract allows it.
/// </summary>
public class ActivationSearchRealModelTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static string ClsData => Path.Combine(TestAssets.Data("ppocr-cls"), "cls_*.npy").Replace('\\', '/');
    private static IReadOnlyList<Tensor> ClsSamples => OcrSamples.ClsFiles.Select(OcrSamples.Cls).ToList();

    private static ExportResult Export(string dir, string model, string glob, string method, string extra, string preset = "performance") =>
        ExportStage.Run(new ExportRequest
        {
            ModelPath = model, OutputDirectory = dir, Name = "m", SelectionSamples = 2,
            ConfigPath = WriteConfig(dir, glob, preset, method, extra),
        });

    /// <param name="extra">Lines inside model_config: activation keys indented by 4, model_config keys by 2.</param>
    private static string WriteConfig(string dir, string glob, string preset, string method, string extra)
    {
        Directory.CreateDirectory(dir);
        return ExportConfigs.Write(dir, $"preset: {preset}\nmodel_config:\n  activation:\n    calibration_type: {method}\n{extra}" +
            $"inputs:\n  x:\n    data: \"{glob}\"\n{ExportConfigs.RecPreprocessing}");
    }

    private static (Dictionary<string, Tensor> Scale, Dictionary<string, Tensor> ZeroPoint) Activations(string qatPath)
    {
        var g = OnnxModelReader.Load(qatPath).Graph;
        var scales = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var zps = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var n in g.Nodes.Where(n => n.OpType == "QuantizeLinear" && n.Name.EndsWith("_q", StringComparison.Ordinal)))
        {
            scales[n.Name[..^2]] = Tensor.FromData(g.Initializers[n.Inputs[1]]);
            zps[n.Name[..^2]] = Tensor.FromData(g.Initializers[n.Inputs[2]]);
        }
        return (scales, zps);
    }

    private static double MinCosine(string qatPath, string floatPath, IEnumerable<Tensor> inputs, OrtOptimization optimization)
    {
        double min = 1;
        foreach (var x in inputs)
        {
            var feeds = new Dictionary<string, Tensor> { ["x"] = x };
            var q = OrtOracle.Run(qatPath, feeds, optimization: optimization).Outputs;
            var f = OrtOracle.Run(floatPath, feeds, optimization: optimization).Outputs;
            foreach (var (name, t) in f) min = Math.Min(min, Similarity.Of(q[name], t).Cosine);
        }
        return min;
    }

    [Fact]
    public void Asymmetric_activations_give_non_negative_tensors_the_whole_int8_range_run_in_onnx_runtime_and_convert()
    {
        var dir = TestAssets.TempDir("asym");
        var export = Export(dir, TestAssets.ClsModel, ClsData, "max", "    asymmetric: true\n");
        var (scales, zps) = Activations(export.QatModelPath);
        // Relu outputs (>= 0) span [0, max]: zero point -128 and half the symmetric scale.
        var model = OnnxModelReader.Load(TestAssets.ClsModel);
        var reluOutputs = model.Graph.Nodes.Where(n => n.OpType == "Relu").Select(n => n.Outputs[0]).Where(zps.ContainsKey).ToList();
        Assert.NotEmpty(reluOutputs);
        Assert.All(reluOutputs, t => Assert.Equal(-128, (int)zps[t].ReadOnlySpan<sbyte>()[0]));
        Assert.Contains(zps.Values, z => z.ReadOnlySpan<sbyte>()[0] is not (0 or -128));

        // ONNX Runtime runs it as written and with its fused integer kernels; both close to float on real lines.
        double plain = MinCosine(export.QatModelPath, TestAssets.ClsModel, ClsSamples, OrtOptimization.Disabled);
        double fused = MinCosine(export.QatModelPath, TestAssets.ClsModel, ClsSamples, OrtOptimization.All);
        output.WriteLine($"cls asymmetric: ORT plain vs float min cosine {plain:F6}, ORT all {fused:F6}");
        Assert.True(plain >= 0.99 && fused >= 0.99, $"cosine vs float {plain} / {fused}");

        // The integer contract carries zero points everywhere: convert takes the model, and its integers match the qat run.
        var quantized = Path.Combine(dir, ConvertStage.FileName("m"));
        ConvertStage.Run(export.QatModelPath, quantized);
        var qat = new InferenceSession(OnnxModelReader.Load(export.QatModelPath));
        var integer = new InferenceSession(OnnxModelReader.Load(quantized));
        foreach (var x in ClsSamples)
        {
            var feeds = new Dictionary<string, Tensor> { ["x"] = x };
            var expected = qat.Run(feeds);
            foreach (var (name, t) in integer.Run(feeds)) Assert.True(Similarity.Of(t, expected[name]).Cosine >= 0.9999, $"quantized vs qat '{name}'");
        }
    }

    [Fact]
    public void Per_channel_activations_run_in_onnx_runtime_and_convert_rejects_them_with_the_fix()
    {
        var dir = TestAssets.TempDir("perchannel");
        var export = Export(dir, TestAssets.ClsModel, ClsData, "max", "    per_channel: true\n");
        var (scales, _) = Activations(export.QatModelPath);
        Assert.Contains(scales.Values, s => s.Rank == 1 && s.Shape[0] > 1);
        // ONNX Runtime runs the model as written. (With all graph optimizations, ONNX Runtime 1.32 fuses the
        // GlobalAveragePool group into QLinearGlobalAveragePool, whose kernel takes one input scale and fails:
        // docs/config-reference.md says so.)
        double plain = MinCosine(export.QatModelPath, TestAssets.ClsModel, ClsSamples, OrtOptimization.Disabled);
        output.WriteLine($"cls per-channel: ORT plain vs float min cosine {plain:F6}");
        Assert.True(plain >= 0.99, $"cosine vs float {plain}");
        var e = Assert.Throws<QuantException>(() => ConvertStage.Run(export.QatModelPath, Path.Combine(dir, ConvertStage.FileName("m"))));
        Assert.Equal(ErrorCode.ConvertPerChannelActivation, e.Code);
        Assert.Contains("per_channel: false", e.Message);
    }

    [Fact]
    public void With_sixteen_samples_a_quarter_is_held_out_and_both_statistics_are_cached()
    {
        var dir = TestAssets.TempDir("heldout");
        var data = Path.Combine(dir, "data");
        Directory.CreateDirectory(data);
        // 16 real lines: the 4 committed ones, each also mirrored left-right and/or flipped upside down.
        int k = 0;
        foreach (var f in OcrSamples.ClsFiles)
        {
            var u8 = Npy.Read(TestAssets.Data("ppocr-cls", f));
            foreach (var (flipX, flipY) in new[] { (false, false), (true, false), (false, true), (true, true) })
                Npy.Write(Path.Combine(data, $"s{k++:D2}.npy"), Flip(u8, flipX, flipY));
        }
        string glob = Path.Combine(data, "*.npy").Replace('\\', '/');
        var request = new ExportRequest
        {
            ModelPath = TestAssets.ClsModel, OutputDirectory = Path.Combine(dir, "out"), Name = "m",
            ConfigPath = WriteConfig(dir, glob, "performance", "default", ""),
        };
        var first = ExportStage.Run(request);
        Assert.False(first.CalibrationFromCache);
        Assert.True(File.Exists(Path.Combine(dir, "out", "m.calibration.fit.qcs")), "the statistics without the held-out samples are cached");
        Assert.Equal(4, first.Candidates.Count);
        var again = ExportStage.Run(request);
        Assert.True(again.CalibrationFromCache);
        Assert.Equal(first.Candidates, again.Candidates);
        Assert.Equal(File.ReadAllBytes(first.QatModelPath), File.ReadAllBytes(again.QatModelPath));
    }

    private static Tensor Flip(Tensor u8, bool x, bool y)
    {
        var src = u8.ReadOnlySpan<byte>();
        var result = Tensor.Zeros(u8.Type, u8.Shape);
        var dst = result.Span<byte>();
        int h = u8.Shape[2], w = u8.Shape[3];
        for (int c = 0; c < u8.Shape[1]; c++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                    dst[(c * h + i) * w + j] = src[(c * h + (y ? h - 1 - i : i)) * w + (x ? w - 1 - j : j)];
        return result;
    }

    [Fact]
    public void Every_entry_of_the_search_lists_is_a_scored_candidate_and_the_best_one_is_exported()
    {
        var dir = TestAssets.TempDir("lists");
        var export = Export(dir, TestAssets.ClsModel, ClsData, "[max, kl]",
            "    asymmetric: [false, true]\n    per_channel: [false, true]\n    num_bin: [1024, 512]\n");
        var labels = export.Candidates.Select(c => c.Method).ToList();
        output.WriteLine(string.Join("\n", export.Candidates.Select(c => $"{c.Method}: {c.Score:F6}")) + $"\nchosen: {export.ChosenMethod}");
        Assert.Equal(16, labels.Count);
        Assert.Equal(16, labels.Distinct().Count());
        Assert.Contains("kl asymmetric per_channel num_bin=512", labels);
        // The first best wins; the report names it.
        double best = export.Candidates.Max(c => c.Score);
        Assert.Equal(export.Candidates.First(c => c.Score == best).Method, export.ChosenMethod);
        Assert.Contains(export.ChosenMethod, File.ReadAllText(export.ModelCheckJsonPath));
        // Each histogram size has its own statistics (all samples and the fit part) in the cache.
        Assert.True(File.Exists(Path.Combine(dir, "m.calibration.qcs")) && File.Exists(Path.Combine(dir, "m.calibration.bin512.qcs")));
        // What was exported is what the label says: per-channel scales exactly when it says per_channel.
        var (scales, zps) = Activations(export.QatModelPath);
        Assert.Equal(export.ChosenMethod.Contains(" per_channel"), scales.Values.Any(s => s.Rank == 1 && s.Shape[0] > 1));
        Assert.Equal(export.ChosenMethod.Contains(" asymmetric"), zps.Values.Any(z => z.ReadOnlySpan<sbyte>().ToArray().Any(v => v != 0)));
    }

    [Fact]
    public void A_downstream_re_run_with_one_tensors_new_scale_equals_a_full_run_of_the_model_exported_with_it()
    {
        var dir = TestAssets.TempDir("downstream");
        // Float outputs: an int8 output would hide small changes in its last quantization step.
        var max = Export(Path.Combine(dir, "max"), TestAssets.ClsModel, ClsData, "max", "  model_output_type: float32\n");
        var kl = Export(Path.Combine(dir, "kl"), TestAssets.ClsModel, ClsData, "kl", "    asymmetric: true\n  model_output_type: float32\n");
        var model = OnnxModelReader.Load(max.QatModelPath);
        var (klScales, klZps) = Activations(kl.QatModelPath);
        var pairs = LayerwiseSearch.QuantizationPairs(model);
        // A tensor in the middle of the network whose parameters differ between the two exports.
        var differing = pairs.Where(p => klScales.ContainsKey(p.Tensor)
            && !Tensor.FromData(model.Graph.Initializers[p.Quantizers[0].Inputs[1]]).ReadOnlySpan<float>().SequenceEqual(klScales[p.Tensor].ReadOnlySpan<float>())).ToList();
        var (tensor, quantizers) = differing[differing.Count / 3];
        var p = new QuantParams(QType.Int8, klScales[tensor].ReadOnlySpan<float>().ToArray(), klZps[tensor].ReadOnlySpan<sbyte>().ToArray().Select(v => (int)v).ToArray(), null, "kl");
        var changed = LayerwiseSearch.Changes(model, quantizers, p);
        Assert.Equal(2, changed.Count);

        var session = new InferenceSession(model);
        var caches = new List<(Dictionary<string, Tensor> Feeds, ValueCache Cache, IReadOnlyDictionary<string, Tensor> Before, IReadOnlyDictionary<string, Tensor> Downstream)>();
        foreach (var x in ClsSamples)
        {
            var feeds = new Dictionary<string, Tensor> { ["x"] = x };
            var cache = new ValueCache();
            var before = session.Run(feeds, new RunOptions { KeepValues = cache });
            caches.Add((feeds, cache, before, session.RunDownstream(cache, changed)));
            Assert.True(session.LastRunNodeCount < session.PlannedNodes.Count, "only the downstream part re-ran");
        }

        foreach (var (name, value) in changed)
            model.Graph.Initializers[name] = TensorData.From(name, value.Type, value.Shape.Select(d => (long)d).ToArray(), value.Bytes());
        var exported = new InferenceSession(model);
        int moved = 0;
        foreach (var (feeds, _, before, downstream) in caches)
            foreach (var (name, t) in exported.Run(feeds))
            {
                Assert.Equal(t.ReadOnlySpan<float>().ToArray(), downstream[name].ReadOnlySpan<float>().ToArray());
                if (!before[name].ReadOnlySpan<float>().SequenceEqual(t.ReadOnlySpan<float>())) moved++;
            }
        Assert.True(moved > 0, "the new scale changes the output");
    }

    [Fact]
    public void The_per_tensor_choice_never_scores_below_the_model_wise_one_and_is_deterministic()
    {
        var dir = TestAssets.TempDir("layerwise");
        string extra = "    asymmetric: [false, true]\n  layerwise_search: {samples: 2}\n";
        var first = Export(Path.Combine(dir, "a"), TestAssets.ClsModel, ClsData, "[max, percentile, mse]", extra);
        var second = Export(Path.Combine(dir, "b"), TestAssets.ClsModel, ClsData, "[max, percentile, mse]", extra);
        var lw = first.Layerwise!;
        output.WriteLine($"cls layerwise: {lw.TensorsSearched} tensors, {lw.ReRuns} re-runs on {lw.Samples} samples, {lw.Elapsed.TotalSeconds:F1} s; " +
            $"score {lw.BaseScore:F6} -> {lw.FinalScore:F6}; {lw.Changes.Count} changed; chosen {first.ChosenMethod}");
        Assert.True(lw.TensorsSearched > 20, "cls has dozens of int8 activations");
        Assert.Equal(2, lw.Samples);
        Assert.True(lw.FinalScore >= lw.BaseScore);
        Assert.Equal(lw.Changes.Count > 0, first.ChosenMethod.Contains("per-tensor choice"));
        Assert.Equal(File.ReadAllBytes(first.QatModelPath), File.ReadAllBytes(second.QatModelPath));
    }
}
