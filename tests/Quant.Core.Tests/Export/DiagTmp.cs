using Quant.Core.Config;
using Quant.Core.Export;
using Quant.Core.Precision;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Core.Tests.Export;

public class DiagTmp(ITestOutputHelper output)
{
    [Fact]
    public void Diag()
    {
        var model = ExportFixtures.Prepare(TestAssets.RecModel);
        var calib = OcrSamples.Rec(OcrSamples.RecFiles[0]);
        var acts = ExportFixtures.AbsMaxActivations(model, [calib]);
        var fused = ExportFixtures.FusedPairs(model);
        var feedC = new Dictionary<string, Tensor> { ["x"] = calib };
        var kf = new ValueCache();
        new InferenceSession(model).Run(feedC, new RunOptions { KeepValues = kf });
        var config = new QuantConfig { SourceFile = "q", Model = new ModelConfig { AllNodeType = QType.Float32 } };
        config.OpTypes["Conv"] = new OpTypeConfig { OpType = "Conv", QType = QType.Int8 };
        var plan = PrecisionPlanner.Plan(model, config, fused);
        var q = QdqExporter.Export(model, plan, acts, ExportFixtures.AbsMaxWeights(plan));
        var kq = new ValueCache();
        new InferenceSession(OnnxModelReader.Parse(OnnxModelWriter.ToBytes(q), "q", ".")).Run(feedC, new RunOptions { KeepValues = kq });
        int shown = 0;
        foreach (var n in model.Graph.TopologicalOrder())
        {
            var o = n.Outputs[0];
            if (!kf.TryGet(o, out var a) || a.Type != ElementType.Float || !kq.TryGet(o, out var b)) continue;
            var c = TensorAssert.Cosine(a, b);
            if (c < 0.995 && shown++ < 40) output.WriteLine($"{n.Name} {n.OpType} {o}: cos {c:F5} absmax {TensorAssert.MaxAbs(a):G4} scale {(acts.TryGetValue(n.Inputs[0], out var p) ? p.Scales[0] : 0):G4}");
        }
    }
}
