using Quant.Core.Calibration;
using Quant.Core.Config;
using Quant.Core.DeploymentRuntime;
using Quant.Core.Diagnostics;
using Quant.Core.Export;
using Quant.Core.Precision;
using Quant.Core.Tests.Precision;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Export;

/// <summary>
/// Error compensation as exported: node_config inputN: ec turns a GEMM into the high-part GEMM (its own name, its bias),
/// a NAME_split_low GEMM over the residual weight and an Add, all on ordinary int8 Q/DQ weights, so ONNX Runtime runs
/// it as written and the split weight is closer to the float weight than the int8 weight alone.
/// </summary>
public class ErrorCompensationExportTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static InputQType Ec(int line) => new(null, true, new SourcePosition("q.yaml", line, 7));

    [Fact]
    public void ConvTranspose_MatMul_and_Gemm_split_into_two_int8_gemms_and_an_add_that_ort_runs()
    {
        var m = SmallModels.Gemms();
        // int16 activations: what remains of the quantization error is the weights', which ec is about.
        var plainConfig = new QuantConfig { SourceFile = "q.yaml", Model = new ModelConfig { AllNodeType = QType.Int16 } };
        var ecConfig = new QuantConfig
        {
            SourceFile = "q.yaml", Model = new ModelConfig { AllNodeType = QType.Int16 },
            Nodes =
            {
                ["ct"] = new NodeConfig { NodeName = "ct", Inputs = { [1] = Ec(3) } },
                ["mm"] = new NodeConfig { NodeName = "mm", Inputs = { [1] = Ec(4) } },
                ["gm"] = new NodeConfig { NodeName = "gm", Inputs = { [1] = Ec(5) } },
            },
        };
        var x = m.Graph.Inputs[0];
        var feed = new Dictionary<string, Tensor> { [x.Name] = Tensor.From(SmallModels.RandomInput(3, 64), 1, 4, 4, 4) };
        var acts = ExportFixtures.AbsMaxActivations(m, [feed[x.Name]]);
        var plainPlan = PrecisionPlanner.Plan(m, plainConfig);
        var ecPlan = PrecisionPlanner.Plan(m, ecConfig);
        var weights = ExportFixtures.AbsMaxWeights(ecPlan);
        var plain = QdqExporter.Export(m, plainPlan, acts, weights);
        var ec = QdqExporter.Export(m, ecPlan, acts, weights);

        foreach (var (node, op, weight, output) in new[] { ("ct", "ConvTranspose", "wt", "u1"), ("mm", "MatMul", "bm", "u4"), ("gm", "Gemm", "bg", "out") })
        {
            var high = ec.Graph.Nodes.Single(n => n.Name == node);
            var low = ec.Graph.Nodes.Single(n => n.Name == node + "_split_low");
            var add = ec.Graph.Nodes.Single(n => n.Name == node + "_split_add");
            Assert.Equal((op, op, "Add"), (high.OpType, low.OpType, add.OpType));
            Assert.Equal(high.Inputs[0], low.Inputs[0]);
            Assert.Equal(weight + "_dq", high.Inputs[1]);
            Assert.Equal(weight + "_split_low_dq", low.Inputs[1]);
            Assert.Equal(ElementType.Int8, ec.Graph.Initializers[weight + "_q"].Type);
            Assert.Equal(ElementType.Int8, ec.Graph.Initializers[weight + "_split_low_q"].Type);
            // The high part is the plain int8 weight, bit for bit; the bias stays on the high part only.
            Assert.Equal(plain.Graph.Initializers[weight + "_q"].Raw.ToArray(), ec.Graph.Initializers[weight + "_q"].Raw.ToArray());
            Assert.Equal(2, low.Inputs.Count);
            Assert.Equal([high.Outputs[0], low.Outputs[0]], add.Inputs);
            Assert.Equal(output, add.Outputs[0]);
            foreach (var (k, v) in high.Attributes) Assert.Equal(v.ToString(), low.Attributes[k].ToString());
        }
        Assert.Equal(3, ecPlan.ChangeLog.Count(c => c.Reason.StartsWith("error compensation", StringComparison.Ordinal)));

        var dir = TestAssets.TempDir("ec-small");
        try
        {
            var path = Path.Combine(dir, "ec.qat.onnx");
            var plainPath = Path.Combine(dir, "plain.qat.onnx");
            OnnxModelWriter.Save(ec, path);
            OnnxModelWriter.Save(plain, plainPath);
            var reference = new InferenceSession(m).Run(feed)["out"];
            var ort = OrtOracle.Run(path, feed, optimization: OrtOptimization.Disabled).Outputs["out"];
            var ours = new InferenceSession(ec).Run(feed)["out"];
            var ortPlain = OrtOracle.Run(plainPath, feed, optimization: OrtOptimization.Disabled).Outputs["out"];
            double same = TensorAssert.Cosine(ort, ours), errEc = TensorAssert.MaxAbsDiff(reference, ort), errPlain = TensorAssert.MaxAbsDiff(reference, ortPlain);
            output.WriteLine($"ORT vs engine cosine {same:F7}; max |diff| vs float: ec {errEc:G4}, plain int8 weights {errPlain:G4}");
            Assert.True(same >= 0.99999, $"ORT vs engine cosine {same}");
            Assert.True(errEc < 0.5 * errPlain, $"ec (max |diff| {errEc}) is not clearly closer to float than plain int8 weights ({errPlain})");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void The_two_parts_carry_the_weight_to_about_fifteen_bits()
    {
        var m = SmallModels.Gemms();
        var w = m.Graph.Initializers["bg"];
        var p = WeightQuantizer.Params(Tensor.FromData(w), 0, QType.Int8);
        var split = ErrorCompensation.Of(w, p, "r");
        output.WriteLine($"relative weight error: int8 {split.HighError:E3}, ec {split.SplitError:E3}");
        // The residual is at most half a step; quantized with its own int8 scale it shrinks by roughly 2^7.
        Assert.InRange(split.SplitError, 0, split.HighError / 50);
        Assert.True(split.HighError > 1e-4, "an int8 weight that is exact tests nothing");
        var hi = ErrorCompensation.Dequantized(w.As<float>(), w.Dims, p);
        var r = split.Residual.As<float>();
        var wf = w.As<float>();
        for (int i = 0; i < wf.Length; i++) Assert.Equal(wf[i] - hi[i], r[i]);
    }
}
