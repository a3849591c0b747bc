using Quant.Core.DeploymentRuntime;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Core.Tests.ForeignQdq;

/// <summary>
/// The foreign QDQ fixtures as they are: each holds the patterns its README claims (so the convert tests below
/// exercise what they say they do), and our engine runs each like ONNX Runtime 1.32 does, on the 4 real inputs.
/// </summary>
public class ForeignQdqRuntimeTests(ITestOutputHelper output)
{
    public static TheoryData<string> Good => [ForeignFixtures.TorchQat, ForeignFixtures.OrtStatic];

    public static TheoryData<string> Bad => [ForeignFixtures.QOperator, ForeignFixtures.PerChannelActivation, ForeignFixtures.AsymmetricWeight];

    /// <summary>An initializer, seen through the Identity nodes torch's exporter puts in front of shared constants.</summary>
    private static TensorData Constant(Graph g, string name)
    {
        var producers = g.Producers();
        while (!g.Initializers.ContainsKey(name) && producers.TryGetValue(name, out var p) && p.OpType == "Identity") name = p.Inputs[0];
        return g.Initializers.TryGetValue(name, out var t) ? t : throw new InvalidOperationException($"'{name}' is not a constant");
    }

    private static double[] Values(TensorData t) => TensorAssert.AsDoubles(Tensor.FromData(t));

    [Fact]
    public void Torch_qat_export_has_float_weights_through_QuantizeLinear_and_uint8_activations()
    {
        var g = ForeignFixtures.Load(ForeignFixtures.TorchQat).Graph;
        var producers = g.Producers();
        var gemms = g.Nodes.Where(n => n.OpType is "Conv" or "Gemm").ToList();
        Assert.Equal(["Conv", "Conv", "Conv", "Conv", "Conv", "Gemm"], gemms.Select(n => n.OpType));
        Assert.Contains(gemms, n => n.GetInt("group", 1) == 16);
        foreach (var n in gemms)
        {
            // P3: float initializer → QuantizeLinear(axis 0, int8 zero points 0) → DequantizeLinear → weight input.
            var dq = producers[n.Inputs[1]];
            var q = producers[dq.Inputs[0]];
            Assert.Equal(("DequantizeLinear", "QuantizeLinear"), (dq.OpType, q.OpType));
            Assert.Equal(ElementType.Float, g.Initializers[q.Inputs[0]].Type);
            Assert.Equal((0L, 0L), (q.GetInt("axis", 1), dq.GetInt("axis", 1)));
            var zp = Constant(g, q.Inputs[2]);
            Assert.Equal(ElementType.Int8, zp.Type);
            Assert.All(Values(zp), z => Assert.Equal(0, z));
            // P4: the bias is a float initializer.
            Assert.Equal(ElementType.Float, g.Initializers[n.Inputs[2]].Type);
            // PyTorch's symmetric scale is absmax/127.5, so -128 occurs in the quantized weights.
            var w = Values(g.Initializers[q.Inputs[0]]);
            var s = Values(g.Initializers[q.Inputs[1]]);
            int per = w.Length / s.Length;
            Assert.Contains(Enumerable.Range(0, w.Length), i => MathF.Round((float)w[i] / (float)s[i / per], MidpointRounding.ToEven) <= -128);
        }
        // Activations: uint8 per tensor, one pair per tensor; the input's and the signed tensors' zero points are not 0.
        var activationQs = g.Nodes.Where(n => n.OpType == "QuantizeLinear" && !g.Initializers.ContainsKey(n.Inputs[0])).ToList();
        Assert.Equal(9, activationQs.Count);
        var zeroPoints = activationQs.Select(n => Constant(g, n.Inputs[2])).ToList();
        Assert.All(zeroPoints, z => Assert.Equal(ElementType.UInt8, z.Type));
        Assert.All(activationQs, n => Assert.Equal(1, Constant(g, n.Inputs[1]).ElementCount));
        Assert.Equal([127, 0, 0, 0, 0], zeroPoints.Take(5).Select(z => Values(z)[0]));
        Assert.All(zeroPoints.Skip(5), z => Assert.InRange(Values(z)[0], 1, 254));
    }

    [Fact]
    public void Ort_static_layout_has_int8_weight_and_int32_bias_initializers_at_the_product_scale()
    {
        var g = ForeignFixtures.Load(ForeignFixtures.OrtStatic).Graph;
        var producers = g.Producers();
        var consumers = g.Consumers();
        foreach (var n in g.Nodes.Where(n => n.OpType is "Conv" or "Gemm"))
        {
            var x = producers[n.Inputs[0]];
            var w = producers[n.Inputs[1]];
            var b = producers[n.Inputs[2]];
            Assert.Equal(["DequantizeLinear", "DequantizeLinear", "DequantizeLinear"], new[] { x.OpType, w.OpType, b.OpType });
            // P2: int8 initializer, symmetric [-127, 127], zero points 0, axis 0.
            var wq = g.Initializers[w.Inputs[0]];
            Assert.Equal(ElementType.Int8, wq.Type);
            Assert.All(Values(wq), v => Assert.InRange(v, -127, 127));
            Assert.All(Values(g.Initializers[w.Inputs[2]]), z => Assert.Equal(0, z));
            Assert.Equal(0L, w.GetInt("axis", 1));
            // P4: int32 bias whose scale is the float32 product s_x * s_w[m], bit for bit (spec §3.3's exact case).
            Assert.Equal(ElementType.Int32, g.Initializers[b.Inputs[0]].Type);
            float sx = g.Initializers[x.Inputs[1]].As<float>()[0];
            var sw = g.Initializers[w.Inputs[1]].As<float>();
            var sb = g.Initializers[b.Inputs[1]].As<float>();
            Assert.Equal(sw.Length, sb.Length);
            for (int m = 0; m < sw.Length; m++) Assert.Equal(BitConverter.SingleToInt32Bits(sx * sw[m]), BitConverter.SingleToInt32Bits(sb[m]));
        }
        // Activations: uint8 with asymmetric zero points; one Q/DQ pair shared by both readers of down_out.
        var qs = g.Nodes.Where(n => n.OpType == "QuantizeLinear").ToList();
        Assert.All(qs, q => Assert.Equal(ElementType.UInt8, g.Initializers[q.Inputs[2]].Type));
        Assert.Contains(qs, q => g.Initializers[q.Inputs[2]].As<byte>()[0] is > 0 and < 255);
        Assert.Equal(2, consumers["down_out_DequantizeLinear_Output"].Count);
        // ORT removed every Relu: the Conv writes the Relu's name and range (zero point 0).
        Assert.DoesNotContain(g.Nodes, n => n.OpType == "Relu");
        // The graph output keeps its name: Gemm → logits_QuantizeLinear_Input → Q → DQ → logits.
        Assert.Equal("logits_QuantizeLinear_Input", g.Nodes.Single(n => n.OpType == "Gemm").Outputs[0]);
    }

    [Theory]
    [MemberData(nameof(Good))]
    public void Engine_runs_the_foreign_model_as_ONNX_Runtime_does(string file)
    {
        var path = ForeignFixtures.Path(file);
        var model = ForeignFixtures.Load(file);
        float lsb = ForeignFixtures.OutputScale(model, "logits");
        var engine = new InferenceSession(model, new SessionOptions { Threads = 1 });
        using var plain = new OrtRunner(path, OrtOptimization.Disabled);
        using var fused = new OrtRunner(path, OrtOptimization.All);
        foreach (var (feeds, i) in ForeignFixtures.Inputs().Select((f, i) => (f, i)))
        {
            var ours = engine.Run(feeds)["logits"];
            Assert.Equal([1, 10], ours.Shape);
            foreach (var (ort, what) in new[] { (plain, "plain kernels"), (fused, "all optimizations") })
            {
                var theirs = ort.Run(feeds)["logits"];
                double cosine = TensorAssert.Cosine(theirs, ours), diff = TensorAssert.MaxAbsDiff(theirs, ours);
                output.WriteLine($"{file} input {i}: engine vs ORT {what}: cosine {cosine:F9}, max |diff| {diff / lsb:F2} LSB, logits max |{TensorAssert.MaxAbs(theirs):F3}|");
                // A QDQ model: both sides quantize the same float values, so they differ only where a float sum lands
                // on the other side of a rounding tie in some tensor (then by 1 LSB there, and a little downstream).
                Assert.True(cosine >= 0.9999, $"{file} input {i}, ORT {what}: cosine {cosine}");
                Assert.True(diff <= 2 * lsb + 1e-6, $"{file} input {i}, ORT {what}: max |diff| {diff / lsb} LSB");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Bad))]
    public void The_unconvertible_fixtures_are_valid_models_ONNX_Runtime_runs(string file)
    {
        // Their rejection by convert is about our integer contract, not a malformed file: ORT loads and runs each.
        using var ort = new OrtRunner(ForeignFixtures.Path(file), OrtOptimization.Disabled);
        var outputs = ort.Run(ForeignFixtures.Inputs()[0]);
        var y = Assert.Single(outputs).Value;
        Assert.True(TensorAssert.MaxAbs(y) > 0, $"{file}: all-zero output");
        Assert.All(TensorAssert.AsDoubles(y), v => Assert.True(double.IsFinite(v)));
    }
}
