using System.Globalization;
using Quant.Core.Analysis;
using Quant.Core.DeploymentRuntime;
using Quant.Core.Stages;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

/// <summary>
/// Where a qat model departs from float, node by node: exports MODEL with YAML (the export stage in process), runs float
/// and qat on one .npy sample with every value kept, and prints the cosine of every GEMM-type node's output (same tensor
/// name in both models) in topological order. Usage: drift rec|det YAML (probe: the last committed sample)
/// </summary>
internal static class NodeDrift
{
    public static int Run(string[] args)
    {
        if (args.Length != 2) { Console.Error.WriteLine("usage: drift rec|det YAML"); return 2; }
        var (model, sample) = args[0] == "rec"
            ? (TestAssets.RecModel, OcrSamples.Rec(OcrSamples.RecFiles[^1]))
            : (TestAssets.DetModel, OcrSamples.Det(OcrSamples.DetFiles[^1]));
        var work = TestAssets.TempDir("drift");
        var result = ExportStage.Run(new ExportRequest { ModelPath = model, ConfigPath = args[1], OutputDirectory = work, Name = args[0],
            // The quality table's statistics cache (keyed by model, data and statistics settings): a rerun only re-derives scales.
            CacheDirectory = Path.Combine(TestAssets.RepoRoot, ".cache", "quality", "cache") });
        var prepared = result.Prepared.Model;
        var feeds = new Dictionary<string, Tensor> { [prepared.Graph.RuntimeInputs.First().Name] = sample };
        var fv = new ValueCache();
        var qv = new ValueCache();
        new InferenceSession(prepared).Run(feeds, new RunOptions { KeepValues = fv });
        new InferenceSession(OnnxModelReader.Load(result.QatModelPath)).Run(feeds, new RunOptions { KeepValues = qv });
        foreach (var n in prepared.Graph.TopologicalOrder())
        {
            if (n.OpType is not ("Conv" or "ConvTranspose" or "MatMul" or "Gemm")) continue;
            var o = n.Outputs[0];
            if (!fv.TryGet(o, out var f) || !qv.TryGet(o, out var q)) continue;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{n.Name,-30} {n.OpType,-8} {Similarity.Of(q, f).Cosine:F6}"));
        }
        var floatOut = new InferenceSession(prepared).Run(feeds);
        foreach (var opt in new[] { OrtOptimization.Disabled, OrtOptimization.All })
        {
            using var ort = new OrtRunner(result.QatModelPath, opt);
            foreach (var (name, o) in ort.Run(feeds))
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ORT {opt}: {name} cosine vs float {Similarity.Of(o, floatOut[name]).Cosine:F6}"));
        }
        foreach (var (name, s) in result.Similarity.Outputs.Select(o => (o, result.Similarity.Of(o, x => x.Cosine))))
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"output {name}: calib cosine avg {s.Avg:F6} ({result.ChosenMethod})"));
        return 0;
    }
}
