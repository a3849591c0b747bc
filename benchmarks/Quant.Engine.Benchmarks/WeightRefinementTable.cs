using System.Globalization;
using System.Text;
using Quant.Core.Analysis;
using Quant.Core.Calibration;
using Quant.Core.DeploymentRuntime;
using Quant.Core.Stages;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

/// <summary>
/// What error compensation (node_config inputN: ec) and bias correction buy, on PaddleOCR v4 rec and det
/// (docs/config-reference.md, "Error compensation" and "Bias correction"). Per model: the export stage (max calibration)
/// on CALIB, measured on HELD_OUT samples:
/// <list type="bullet">
/// <item>per GEMM, the cosine of its output against float when it reads the float model's input (quantized as the qat
/// model quantizes it): int8 weight vs ec vs int16 weight, for the nodes where the int16 weight gains most;</item>
/// <item>end to end, the model output's cosine against float in ONNX Runtime (plain kernels) for base and performance,
/// with ec on every GEMM weight, int16 weights, and bias correction.</item>
/// </list>
/// Usage: build/measure-weights.sh DATASETS_DIR (the wrapper makes the calib/held-out folders).
/// </summary>
internal static class WeightRefinementTable
{
    public static int Run(string[] args)
    {
        if (args.Length != 4) { Console.Error.WriteLine("usage: weights REC_CALIB REC_HELDOUT DET_CALIB DET_HELDOUT (folders of .npy)"); return 2; }
        var work = TestAssets.TempDir("weights");
        try
        {
            if (args[0] != "-") Model("rec", TestAssets.RecModel, args[0], args[1], PresetTable.RecPreprocessing, work);
            if (args[2] != "-") Model("det", TestAssets.DetModel, args[2], args[3], PresetTable.DetPreprocessing, work);
            return 0;
        }
        finally
        {
            try { Directory.Delete(work, true); } catch (IOException) { }
        }
    }

    private static void Model(string which, string model, string calib, string heldOut, string preprocessing, string work)
    {
        var data = Path.Combine(Path.GetFullPath(calib), "*.npy").Replace('\\', '/');
        var probes = Directory.GetFiles(heldOut, "*.npy").Order(StringComparer.Ordinal)
            .Select(f => new Dictionary<string, Tensor> { ["x"] = OcrSamples.FromPath(which, f) }).ToList();
        ExportResult Export(string label, string preset, string extra)
        {
            var config = Path.Combine(work, $"{which}-{label}.yaml");
            File.WriteAllText(config, $"preset: {preset}\nmodel_config:\n  activation:\n    calibration_type: max\n{extra}inputs:\n  x:\n    data: \"{data}\"\n{preprocessing}");
            return ExportStage.Run(new ExportRequest
            {
                ModelPath = model, ConfigPath = config, OutputDirectory = Path.Combine(work, $"{which}-{label}"), Name = "m",
                CacheDirectory = Path.Combine(work, $"cache-{which}"),
            });
        }

        var plain = Export("base", "base", "");
        var gemms = plain.Plan.Nodes.Where(n => n.OpType is "Conv" or "ConvTranspose" or "MatMul" or "Gemm" &&
            n.Inputs.Any(i => i.Index == 1 && i.Role == Quant.Core.Precision.InputRole.Weight)).Select(n => n.Name).ToList();
        string NodeConfig(string setting)
        {
            var sb = new StringBuilder("node_config:\n");
            foreach (var g in gemms) sb.Append($"  \"{g}\": {{input1: {setting}}}\n");
            return sb.ToString();
        }
        var ec = Export("base-ec", "base", NodeConfig("ec"));
        var wide = Export("base-int16w", "base", NodeConfig("int16"));

        // Per node, local: each GEMM reads the float model's input.
        var floatSession = new InferenceSession(plain.Prepared.Model);
        var local = new[] { plain, ec, wide }.Select(r => LocalCosines(floatSession, r.QatModelPath, plain.Prepared.Model, gemms, probes)).ToList();
        Console.WriteLine($"\n{which}: GEMM output cosine vs float, each reading the float model's input (int8 activations, base preset, max calibration; {probes.Count} held-out samples), the 5 nodes int16 weights help most");
        Console.WriteLine("| node | int8 weight | ec (int8 high + int8 low) | int16 weight |");
        Console.WriteLine("|---|---|---|---|");
        foreach (var g in gemms.OrderByDescending(g => local[2][g] - local[0][g]).ThenBy(g => g, StringComparer.Ordinal).Take(5))
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {g} | {local[0][g]:F6} | {local[1][g]:F6} | {local[2][g]:F6} |"));

        var rows = new List<(string, ExportResult)> { ("base", plain), ("base, ec on every GEMM weight", ec), ("base, int16 weights everywhere", wide) };
        rows.Add(("base, bias_correction", Export("base-bc", "base", "  weight:\n    bias_correction: {metric: cosine, num_sample: 8}\n")));
        rows.Add(("performance", Export("performance", "performance", "")));
        rows.Add(("performance, bias_correction", Export("performance-bc", "performance", "  weight:\n    bias_correction: {metric: cosine, num_sample: 8}\n")));
        rows.Add(("performance, ec on every GEMM weight", Export("performance-ec", "performance", NodeConfig("ec"))));
        using var reference = new OrtRunner(model, OrtOptimization.Disabled);
        var expected = probes.Select(p => reference.Run(p)).ToList();
        Console.WriteLine($"\n{which}: model output cosine vs float in ONNX Runtime {OrtRunner.Version} (plain kernels), min / avg over {probes.Count} held-out samples");
        Console.WriteLine("| configuration | cosine min / avg | bias corrections kept |");
        Console.WriteLine("|---|---|---|");
        foreach (var (label, r) in rows)
        {
            using var ort = new OrtRunner(r.QatModelPath, OrtOptimization.Disabled);
            var cos = probes.Select((p, k) => ort.Run(p).Select(o => Similarity.Of(o.Value, expected[k][o.Key]).Cosine).Average()).ToList();
            string kept = r.Config.Model.Weight.BiasCorrection ? System.Text.Json.JsonDocument.Parse(File.ReadAllText(r.ModelCheckJsonPath))
                .RootElement.GetProperty("bias_correction").GetProperty("layers").EnumerateArray().Count(l => l.GetProperty("applied").GetBoolean()).ToString(CultureInfo.InvariantCulture) : "-";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {label} | {cos.Min():F6} / {cos.Average():F6} | {kept} |"));
        }
    }

    /// <summary>Cosine per GEMM output over the probes, with every float value of the qat run replaced by the float run's.</summary>
    private static Dictionary<string, double> LocalCosines(InferenceSession floatSession, string qatPath, OnnxModel prepared, List<string> gemms, List<Dictionary<string, Tensor>> probes)
    {
        var outputs = prepared.Graph.Nodes.Where(n => gemms.Contains(n.Name)).ToDictionary(n => n.Outputs[0], n => n.Name, StringComparer.Ordinal);
        var qat = new InferenceSession(OnnxModelReader.Load(qatPath));
        var acc = outputs.Values.ToDictionary(g => g, _ => new double[3], StringComparer.Ordinal);
        var watched = outputs.Keys.ToHashSet(StringComparer.Ordinal);
        foreach (var p in probes)
            LayerwiseRun.Run(floatSession, qat, p, watched, (name, f, q) =>
            {
                var a = acc[outputs[name]];
                var fs = f.ReadOnlySpan<float>();
                var qs = q.ReadOnlySpan<float>();
                for (int i = 0; i < fs.Length; i++) { a[0] += (double)fs[i] * qs[i]; a[1] += (double)fs[i] * fs[i]; a[2] += (double)qs[i] * qs[i]; }
            });
        return acc.ToDictionary(kv => kv.Key, kv => kv.Value[0] / Math.Sqrt(kv.Value[1] * kv.Value[2]), StringComparer.Ordinal);
    }
}
