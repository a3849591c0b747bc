using Quant.Core.DeploymentRuntime;
using Quant.Core.Passes;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Passes;

/// <summary>The real PaddleOCR models: the prepared model computes what the original computes, in our engine and in ONNX Runtime.</summary>
public class RealModelPreparationTests
{
    /// <summary>
    /// Cosine >= 0.999999 and max abs error <= 1e-5 x max|ref|, or, when larger, the error between two correct
    /// implementations of the original model (ONNX Runtime vs the engine): folding BatchNormalization rounds each
    /// folded weight once, which 60 layers of det amplify to ~4e-5 on its sigmoid map, below the ~9e-5 by which
    /// ONNX Runtime and the engine already differ on the unmodified model.
    /// </summary>
    private static void AssertSame(Tensor reference, Tensor actual, string what, double noiseFloor)
    {
        Assert.Equal(reference.Shape, actual.Shape);
        double cos = TensorAssert.Cosine(reference, actual);
        double err = TensorAssert.MaxAbsDiff(reference, actual), scale = TensorAssert.MaxAbs(reference);
        Assert.True(cos >= 0.999999, $"{what}: cosine {cos}");
        double bound = Math.Max(1e-5 * scale, noiseFloor);
        Assert.True(err <= bound, $"{what}: max abs error {err} > {bound} (1e-5 x {scale}, or ORT vs engine on the original {noiseFloor})");
    }

    private static PreparedModel CheckModel(string path, IReadOnlyList<Tensor> samples, int batchNorms, int foldedBatchNorms, int constants,
        PreparationOptions? options = null)
    {
        var original = OnnxModelReader.Load(path);
        var prepared = GraphPreparation.Prepare(original, options);
        var g = prepared.Model.Graph;

        Assert.Equal(batchNorms, original.Graph.Nodes.Count(n => n.OpType == "BatchNormalization"));
        Assert.Equal(foldedBatchNorms, prepared.FoldedBatchNorms.Count);
        Assert.Equal(batchNorms - foldedBatchNorms, g.Nodes.Count(n => n.OpType == "BatchNormalization"));
        Assert.Equal(constants, original.Graph.Nodes.Count(n => n.OpType == "Constant"));
        Assert.Equal(constants, prepared.ConstantNodesConverted);
        Assert.DoesNotContain(g.Nodes, n => n.OpType is "Constant" or "BatchNormalization" && foldedBatchNorms == batchNorms);
        // The original model is untouched.
        Assert.Equal(constants, original.Graph.Nodes.Count(n => n.OpType == "Constant"));
        Assert.Equal(original.Graph.Outputs.Select(o => o.Name), g.Outputs.Select(o => o.Name));

        var before = new InferenceSession(original);
        var after = new InferenceSession(prepared.Model);
        var dir = TestAssets.TempDir("prepared");
        try
        {
            var file = Path.Combine(dir, "prepared.onnx");
            OnnxModelWriter.Save(prepared.Model, file);
            var first = new Dictionary<string, Tensor> { [original.Graph.Inputs[0].Name] = samples[0] };
            var ortOriginal = OrtOracle.Run(path, first, optimization: OrtOptimization.Disabled).Outputs;
            var ortPrepared = OrtOracle.Run(file, first, optimization: OrtOptimization.Disabled).Outputs;
            var reference = before.Run(first);
            var floor = reference.ToDictionary(kv => kv.Key, kv => TensorAssert.MaxAbsDiff(ortOriginal[kv.Key], kv.Value));
            foreach (var (name, t) in ortOriginal)
                AssertSame(t, ortPrepared[name], $"{Path.GetFileName(path)} output '{name}' (ONNX Runtime, prepared vs original)", floor[name]);
            for (int i = 0; i < samples.Count; i++)
            {
                var feeds = new Dictionary<string, Tensor> { [original.Graph.Inputs[0].Name] = samples[i] };
                var expected = before.Run(feeds);
                var ours = after.Run(feeds);
                foreach (var (name, t) in expected) AssertSame(t, ours[name], $"{Path.GetFileName(path)} sample {i} output '{name}' (engine)", floor[name]);
            }
        }
        finally { Directory.Delete(dir, true); }
        return prepared;
    }

    /// <summary>All decomposed HardSwish became HardSwish nodes: no Clip 0..6 pieces are left and the opset has the op.</summary>
    private static void AssertHardSwishFused(PreparedModel p, int count)
    {
        Assert.Equal(count, p.Composites.Count(c => c is { OpType: "HardSwish", Fused: true }));
        Assert.Equal(count, p.Model.Graph.Nodes.Count(n => n.OpType == "HardSwish"));
        Assert.DoesNotContain(p.Model.Graph.Nodes, n => n.OpType == "Clip");
        Assert.True(p.Model.OpsetFor("") >= 14);
    }

    [Fact]
    public void Det_prepared_model_matches_original()
    {
        var p = CheckModel(TestAssets.DetModel, [OcrSamples.Det(OcrSamples.DetFiles[0]), OcrSamples.Det(OcrSamples.DetFiles[1], 320, 480)],
            batchNorms: 3, foldedBatchNorms: 3, constants: 342);
        // The third BatchNormalization follows ConvTranspose -> Add(bias [1,24,1,1]); the bias Add folds first.
        Assert.Contains(p.Folds, f => f is { Node: "p2o.Add.278", OpType: "Add", IntoNode: "p2o.ConvTranspose.0", Folded: true });
        Assert.Contains(p.FoldedBatchNorms, f => f is { Node: "p2o.BatchNormalization.2", IntoNode: "p2o.ConvTranspose.0" });
        Assert.Contains(p.FoldedBatchNorms, f => f is { Node: "p2o.BatchNormalization.1", IntoNode: "p2o.Conv.61", IntoOpType: "Conv" });
        // Folded nodes' outputs keep the BatchNormalization's output names.
        Assert.Equal("p2o.ConvTranspose.0", p.Model.Graph.Nodes.Single(n => n.Outputs[0] == "batch_norm_1.tmp_3").Name);
        Assert.Null(p.PreparedValueName("p2o.ConvTranspose.1"));
        Assert.Contains("p2o.Add.278", p.WhyVanished("p2o.ConvTranspose.1"));
        Assert.Equal("batch_norm_1.tmp_3", p.PreparedValueName("batch_norm_1.tmp_3"));
        // Fusion: ConvTranspose + Relu fuses once BN and bias are folded; Conv + HardSigmoid (SE gate) is not a fusible pair.
        Assert.Contains(p.Fusions, f => f is { ProducerNode: "p2o.ConvTranspose.0", Activation: "Relu", Fused: true });
        Assert.Contains(p.Fusions, f => f is { ProducerNode: "p2o.Conv.61", Activation: "Relu", Fused: true });
        Assert.All(p.Fusions.Where(f => f.Activation == "HardSigmoid"), f => Assert.Contains("not supported for fusion", f.Reason));
        Assert.Equal(10, p.Fusions.Count(f => f.Activation == "HardSigmoid"));
        Assert.Empty(p.DeadNodes);
        AssertHardSwishFused(p, 24);
        // PP-LCNetV3's learnable scale and shift (Conv -> Mul [1] -> Add [1] -> HardSwish) fold into the convolutions:
        // no Mul or Add of a constant reads a convolution's output any more, and every one of det's 24 HardSwish (asserted
        // above) sits right behind its conv, where the target runs it fused.
        var prepared = p.Model.Graph;
        Assert.DoesNotContain(prepared.Nodes, n => n.OpType is "Mul" or "Add" && n.Inputs.Count == 2
            && n.Inputs.Any(i => prepared.Nodes.FirstOrDefault(q => q.Outputs.Contains(i))?.OpType is "Conv" or "ConvTranspose")
            && n.Inputs.Any(prepared.Initializers.ContainsKey));
        Assert.Contains(p.Folds, f => f is { OpType: "Mul", Folded: true });
        Assert.Equal(24, p.Fusions.Count(f => f is { Activation: "HardSwish", Fused: true }));
    }

    [Fact]
    public void Rec_prepared_model_matches_original()
    {
        var p = CheckModel(TestAssets.RecModel, OcrSamples.RecFiles.Take(2).Select(OcrSamples.Rec).ToList(), batchNorms: 6, foldedBatchNorms: 6, constants: 325);
        Assert.Contains(p.FoldedBatchNorms, f => f is { Node: "p2o.BatchNormalization.0", IntoNode: "p2o.Conv.0" });
        // Shape(x) arithmetic depends on the runtime input and must stay.
        Assert.Equal(4, p.Model.Graph.Nodes.Count(n => n.OpType == "Shape"));
        AssertHardSwishFused(p, 28);
        // The SVTR neck's five LayerNorms (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add) are one op each.
        var ln = p.Composites.Where(c => c.OpType == "LayerNormalization").ToList();
        Assert.Equal(5, ln.Count);
        Assert.All(ln, c => Assert.True(c.Fused, c.ToString()));
        Assert.Equal(["p2o.ReduceMean.0", "p2o.Sub.0", "p2o.Pow.0", "p2o.ReduceMean.2", "p2o.Add.232", "p2o.Sqrt.0", "p2o.Div.28", "p2o.Mul.178", "p2o.Add.234"],
            ln[0].FromNodes);
        Assert.Equal(5, p.Model.Graph.Nodes.Count(n => n.OpType == "LayerNormalization"));
        Assert.DoesNotContain(p.Model.Graph.Nodes, n => n.OpType is "Pow" or "Sqrt" or "ReduceMean");
        Assert.Equal(17, p.Model.OpsetFor(""));
    }

    [Fact]
    public void Cls_prepared_model_matches_original()
    {
        var p = CheckModel(TestAssets.ClsModel, OcrSamples.ClsFiles.Take(2).Select(OcrSamples.Cls).ToList(), batchNorms: 35, foldedBatchNorms: 35, constants: 250);
        // Every decomposed HardSwish (Add 3, Clip 0..6, Mul, Div 6) became one HardSwish node named after its output.
        AssertHardSwishFused(p, 18);
        Assert.Contains(p.Composites, c => c is { Node: "hardswish_0.tmp_0", Input: "batch_norm_0.tmp_3", Fused: true }
            && c.FromNodes.SequenceEqual(["p2o.Add.0", "p2o.Clip.0", "p2o.Mul.0", "p2o.Div.0"]));
        // Conv + BN + HardSwish: the BN folds and the conv fuses with the one HardSwish node.
        var hs = p.Fusions.Where(f => f.Activation == "HardSwish").ToList();
        Assert.Contains(hs, f => f is { ProducerNode: "p2o.Conv.0", Fused: true, OutputValue: "hardswish_0.tmp_0" } && f.ActivationNodes.SequenceEqual(["hardswish_0.tmp_0"]));
        Assert.Contains(p.Fusions, f => f is { Activation: "Relu", Fused: true });
    }

    /// <summary>Which PaddleOCR pairs qualify for cross-layer equalization, and the equalized models still compute the same.</summary>
    /// <remarks>
    /// Expected counts from the original graphs: cls has 14 Conv(-BN)-Relu-Conv pairs, one Conv(-BN)-Conv and 9
    /// Conv(-BN)-HardSwish-Conv; det 12 through Relu (SE blocks and the head) and 5 direct (its HardSwish follow a
    /// learnable scale/shift, not the conv); rec 2 through Relu and one direct.
    /// </remarks>
    [Theory]
    [InlineData("cls", 35, 250, 15, 9)]
    [InlineData("det", 3, 342, 20, 0)]
    [InlineData("rec", 6, 325, 3, 0)]
    public void Equalized_models_match_original(string which, int batchNorms, int constants, int equalized, int throughHardSwish)
    {
        var (path, samples) = which switch
        {
            "cls" => (TestAssets.ClsModel, OcrSamples.ClsFiles.Take(1).Select(OcrSamples.Cls).ToList()),
            "det" => (TestAssets.DetModel, [OcrSamples.Det(OcrSamples.DetFiles[0])]),
            _ => (TestAssets.RecModel, OcrSamples.RecFiles.Take(1).Select(OcrSamples.Rec).ToList()),
        };
        var p = CheckModel(path, samples, batchNorms, batchNorms, constants, new PreparationOptions { Equalize = true });
        Assert.Equal(equalized, p.Equalizations.Count(e => e.Equalized));
        // Every equalized pair ends balanced channel by channel (within the iteration's stopping tolerance).
        Assert.All(p.Equalizations.Where(e => e.Equalized), e => Assert.True(e.ImbalanceAfter < 1.01 && e.ImbalanceBefore >= e.ImbalanceAfter, e.ToString()));
        Assert.Equal(throughHardSwish, p.Equalizations.Count(e => !e.Equalized && e.Activation == "HardSwish"));
    }
}
