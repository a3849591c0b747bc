using Quant.Core.Analysis;
using Quant.Core.Stages;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Stages;

/// <summary>
/// The export stage end to end on the real PaddleOCR models and the committed real samples: every
/// preset with every calibration type exports a QDQ model that ONNX Runtime runs, and ORT's outputs
/// on our qat.onnx match our engine's run of the same file.
/// </summary>
public class ExportStageTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const double EngineVsOrtMinCosine = 0.9999;
    /// <summary>Measured worst case: rec base/percentile, engine 0.99900 vs ORT's own 0.99986 (float summation order).</summary>
    private const double OrtSpreadTolerance = 0.002;

    public static readonly string[] Presets = ["performance", "base", "precision", "upper_bound"];
    public static readonly string[] Methods = ["max", "percentile", "kl", "mse", "default"];

    private static string Yaml(string dataGlob, string preset, string method, string preprocessing, string extra = "") =>
        $"preset: {preset}\n" +
        "model_config:\n" +
        "  activation:\n" +
        $"    calibration_type: {method}\n" +
        "inputs:\n" +
        "  x:\n" +
        $"    data: \"{dataGlob}\"\n" +
        preprocessing +
        extra + "\n";

    private const string RecPreprocessing = "    scale: 1/255\n    mean: 0.5\n    std: 0.5\n";

    private const string DetPreprocessing = "    scale: 1/255\n    mean: [0.485, 0.456, 0.406]\n    std: [0.229, 0.224, 0.225]\n";

    /// <summary>
    /// Ops whose float result depends on summation order or on how a transcendental function is approximated:
    /// the engine and ORT may differ in the last bits there, and only there. Every other op — QuantizeLinear,
    /// DequantizeLinear, Cast, elementwise arithmetic, Clip, data movement — must be bit-exact given the same inputs.
    /// </summary>
    private static readonly HashSet<string> RoundingDependentOps =
        ["Conv", "ConvTranspose", "MatMul", "Gemm", "GlobalAveragePool", "AveragePool", "ReduceMean", "ReduceSum", "Softmax", "Sigmoid", "Exp", "Tanh", "Erf"];

    /// <summary>Measured worst: 1.8e-6 (det GlobalAveragePool over 6,400 values); float32 epsilon is 1.2e-7.</summary>
    private const double RoundingDependentMaxRelativeError = 1e-5;

    [Fact]
    public void Rec_every_preset_and_calibration_type_runs_alike_in_onnx_runtime_and_the_engine() =>
        EveryPresetAndMethod(TestAssets.RecModel, Path.Combine(TestAssets.Data("ppocr-rec"), "calib_*.npy"), RecPreprocessing,
            OcrSamples.Rec(OcrSamples.RecFiles[2]), OcrSamples.Rec(OcrSamples.RecFiles[2]));

    [Fact]
    public void Det_every_preset_and_calibration_type_runs_alike_in_onnx_runtime_and_the_engine() =>
        EveryPresetAndMethod(TestAssets.DetModel, Path.Combine(TestAssets.Data("ppocr-det"), "*.npy"), DetPreprocessing,
            OcrSamples.Det(OcrSamples.DetFiles[0]), OcrSamples.Det(OcrSamples.DetFiles[1], 320, 320));

    /// <param name="probe">End-to-end input: ORT's and the engine's model outputs are compared.</param>
    /// <param name="lockstepProbe">Node-by-node input (det at 320x320: ORT writes every value of the run to disk).</param>
    private void EveryPresetAndMethod(string model, string glob, string preprocessing, Tensor probe, Tensor lockstepProbe)
    {
        var dir = TestAssets.TempDir("export");
        var cache = Path.Combine(dir, "cache");
        var failures = new List<string>();
        foreach (var preset in Presets)
        {
            var byMethod = new Dictionary<string, ExportResult>();
            foreach (var method in Methods)
            {
                var cfg = Path.Combine(dir, $"{preset}-{method}.yaml");
                File.WriteAllText(cfg, Yaml(glob.Replace('\\', '/'), preset, method, preprocessing));
                var result = ExportStage.Run(new ExportRequest
                {
                    ModelPath = model, ConfigPath = cfg, OutputDirectory = Path.Combine(dir, $"{preset}-{method}"), CacheDirectory = cache,
                    Name = "m", SelectionSamples = 2,
                });
                byMethod[method] = result;
                var feeds = new Dictionary<string, Tensor> { ["x"] = probe };
                var ours = new InferenceSession(OnnxModelReader.Load(result.QatModelPath)).Run(feeds);
                // ORT both as users run it (all graph optimizations: QDQ groups become integer kernels) and with
                // its plain kernels. Where the quantized model is numerically fragile, ORT's two modes disagree with
                // each other; the engine must then be as close to ORT as ORT is to itself.
                var ortAll = OrtOracle.Run(result.QatModelPath, feeds).Outputs;
                var ortPlain = OrtOracle.Run(result.QatModelPath, feeds, optimization: "disabled").Outputs;
                foreach (var (name, reference) in ortAll)
                {
                    double ortSelf = Similarity.Of(ortPlain[name], reference).Cosine;
                    double cos = Math.Max(Similarity.Of(ours[name], reference).Cosine, Similarity.Of(ours[name], ortPlain[name]).Cosine);
                    // Where ORT agrees with itself to 0.9999 the engine must too; where it does not (int8 rounding
                    // flips amplified through a fragile graph), the engine may diverge from ORT by at most
                    // OrtSpreadTolerance more than ORT's two modes diverge from each other.
                    double required = Math.Min(EngineVsOrtMinCosine, ortSelf - OrtSpreadTolerance);
                    output.WriteLine($"{Path.GetFileName(model)} {preset}/{method} ({result.ChosenMethod}): engine vs ORT {cos:F7}, " +
                        $"ORT all vs ORT plain {ortSelf:F7}; float vs qat avg cosine {result.Similarity.Of(name, x => x.Cosine).Avg:F6}");
                    if (!(cos >= required)) failures.Add($"{preset}/{method} '{name}': engine vs ORT cosine {cos:F6} < {required:F6}");
                }
                failures.AddRange(LockstepFailures(result.QatModelPath, lockstepProbe).Select(f => $"{preset}/{method}: {f}"));
            }
            // `default` keeps one candidate: its model and its float-vs-qat table are that method's own, sample by sample.
            var chosen = byMethod["default"];
            var same = byMethod[chosen.ChosenMethod.Split('(')[0]];
            if (!File.ReadAllBytes(chosen.QatModelPath).AsSpan().SequenceEqual(File.ReadAllBytes(same.QatModelPath)))
                failures.Add($"{preset}/default chose {chosen.ChosenMethod} but its qat model differs from that method's");
            foreach (var o in same.Similarity.Outputs)
                if (!chosen.Similarity.Samples(o).Select(x => x.Cosine).SequenceEqual(same.Similarity.Samples(o).Select(x => x.Cosine)))
                    failures.Add($"{preset}/default: float-vs-qat cosines per sample differ from {chosen.ChosenMethod}'s");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>
    /// Every node of the qat model, computed by the engine from ORT's values of its inputs, against ORT's value of
    /// its output: bit-exact, except the rounding-dependent ops, which must agree to a few float32 ulps.
    /// </summary>
    private List<string> LockstepFailures(string qatModel, Tensor probe)
    {
        var results = OrtLockstep.Run(qatModel, new Dictionary<string, Tensor> { ["x"] = probe });
        var failures = new List<string>();
        foreach (var r in results)
        {
            bool ok = RoundingDependentOps.Contains(r.Node.OpType) && r.Type == ElementType.Float
                ? r.RelativeError <= RoundingDependentMaxRelativeError
                : r.BitExact;
            if (!ok) failures.Add($"lockstep: {r}");
        }
        // Not vacuous: every QuantizeLinear of an activation was compared.
        var graph = OnnxModelReader.Load(qatModel).Graph;
        var compared = results.Select(r => r.Output).ToHashSet(StringComparer.Ordinal);
        foreach (var q in graph.Nodes.Where(n => n.OpType == "QuantizeLinear" && !graph.Initializers.ContainsKey(n.Inputs[0])))
            if (!compared.Contains(q.Outputs[0])) failures.Add($"lockstep: QuantizeLinear '{q.Name}' was not compared");
        var inexact = results.Where(r => !r.BitExact).GroupBy(r => r.Node.OpType)
            .Select(g => $"{g.Key} {g.Count()} (worst {g.Max(r => r.RelativeError):E1})");
        output.WriteLine($"  lockstep: {results.Count} values, {results.Count(r => r.BitExact)} bit-exact; last-bit differences: {string.Join(", ", inexact)}");
        return failures;
    }

    [Fact]
    public void Changing_one_node_config_entry_re_exports_from_cached_calibration()
    {
        var dir = TestAssets.TempDir("export");
        var glob = Path.Combine(TestAssets.Data("ppocr-rec"), "calib_*.npy").Replace('\\', '/');
        var cfg = Path.Combine(dir, "q.yaml");
        File.WriteAllText(cfg, Yaml(glob, "performance", "max", RecPreprocessing));
        var request = new ExportRequest { ModelPath = TestAssets.RecModel, ConfigPath = cfg, OutputDirectory = Path.Combine(dir, "out"), Name = "rec" };
        var first = ExportStage.Run(request);
        Assert.False(first.CalibrationFromCache);
        var firstQat = File.ReadAllBytes(first.QatModelPath);

        // The same config again: identical bytes (deterministic export from the cached statistics).
        var again = ExportStage.Run(request);
        Assert.True(again.CalibrationFromCache);
        Assert.Equal(firstQat, File.ReadAllBytes(again.QatModelPath));

        // One node to int16: calibration is not re-run, the model changes.
        var node = first.Plan.Nodes.First(n => n.OpType == "Conv").Name;
        File.WriteAllText(cfg, Yaml(glob, "performance", "max", RecPreprocessing, $"node_config:\n  {node}: {{qtype: int16}}"));
        var changed = ExportStage.Run(request);
        Assert.True(changed.CalibrationFromCache);
        Assert.NotEqual(firstQat, File.ReadAllBytes(changed.QatModelPath));
        Assert.Equal(Core.Config.QType.Int16, changed.Plan.ByName(node)!.Compute);

        // Adding a calibration file invalidates the cache.
        var data2 = Path.Combine(dir, "data");
        Directory.CreateDirectory(data2);
        foreach (var f in OcrSamples.RecFiles.Take(2)) File.Copy(TestAssets.Data("ppocr-rec", f), Path.Combine(data2, f));
        File.WriteAllText(cfg, Yaml(Path.Combine(data2, "*.npy").Replace('\\', '/'), "performance", "max", RecPreprocessing));
        Assert.False(ExportStage.Run(request).CalibrationFromCache);
    }

    [Fact]
    public void Reports_list_fallbacks_fusions_dtypes_layers_and_similarity()
    {
        var dir = TestAssets.TempDir("export");
        var cfg = Path.Combine(dir, "q.yaml");
        File.WriteAllText(cfg, Yaml(Path.Combine(TestAssets.Data("ppocr-rec"), "calib_*.npy").Replace('\\', '/'), "base", "max", RecPreprocessing));
        var r = ExportStage.Run(new ExportRequest { ModelPath = TestAssets.RecModel, ConfigPath = cfg, OutputDirectory = dir, Name = "rec" });
        var text = File.ReadAllText(r.ModelCheckTextPath);
        foreach (var section in new[] { "== Unsupported ops and float fallbacks ==", "== Fusions ==", "== Dead and removed nodes ==",
                     "== Shared tensors with different ranges (shared-module risk) ==", "== Input/output dtypes per op type ==",
                     "== Layers ==", "== Output similarity, float vs qat", "== Change log ==" })
            Assert.Contains(section, text);
        // base preset: GEMM-type ops int8, the rest float16 — both must show up in the per-op-type table.
        var convRow = text.Split('\n').First(l => l.StartsWith("Conv ", StringComparison.Ordinal));
        Assert.Matches(@"^Conv\s+\d+\s+\d+/0/\d+/0", convRow);
        Assert.Contains("float16", text);
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(r.ModelCheckJsonPath));
        Assert.True(json.RootElement.GetProperty("layers").GetArrayLength() > 100);
        Assert.Equal("softmax_11.tmp_0", json.RootElement.GetProperty("similarity")[0].GetProperty("output").GetString());
        var cos = json.RootElement.GetProperty("similarity")[0].GetProperty("cosine").GetProperty("avg").GetDouble();
        Assert.InRange(cos, 0.9, 1.0);
    }
}
