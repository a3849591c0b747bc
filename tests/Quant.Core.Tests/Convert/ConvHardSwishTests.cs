using Quant.Core.Conversion;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Convert;

/// <summary>
/// A Conv + HardSwish with no quantization point between (what graph preparation's hard-swish fusion asks for)
/// becomes one QConv with <c>activation = "HardSwish"</c>: its output equals, bit for bit, the unfused lowering
/// QConv(to = float) → HardSwish → QuantizeLinear run by the same engine and by the compiled .qbm, and stays within one LSB of the qat model
/// run by ONNX Runtime.
/// </summary>
public class ConvHardSwishTests
{
    // Inputs over [-6, 6] with input scale 0.05 put conv outputs on both bends of HardSwish (−3 and +3) and beyond.
    private static Tensor Input(int seed)
    {
        var rng = new Random(seed);
        return Tensor.From(Enumerable.Range(0, TinyQat.C * TinyQat.H * TinyQat.W).Select(_ => (float)(rng.NextDouble() * 12 - 6)).ToArray(),
            1, TinyQat.C, TinyQat.H, TinyQat.W);
    }

    private static TinyQat Model() => new() { HardSwish = true, InputScale = 0.05f, OutputScale = 0.03f, OutputZeroPoint = -20, BiasValue = 1.1f };

    [Fact]
    public void Conv_and_hardswish_become_one_qconv_equal_to_the_unfused_chain()
    {
        var dir = TestAssets.TempDir("convert-hardswish");
        var qat = Model().Save(dir);
        var quantized = Path.Combine(dir, "tiny.quantized.onnx");
        var summary = ConvertStage.Run(qat, quantized);

        var conv = Assert.Single(summary.Nodes);
        Assert.Equal(["QConv"], conv.Became);
        Assert.Equal("hs", conv.Fused);
        var model = OnnxModelReader.Load(quantized);
        Assert.Equal(["QuantizeLinear", "QConv", "DequantizeLinear"], model.Graph.Nodes.Select(n => n.OpType));
        var q = model.Graph.Nodes[1];
        Assert.Equal("HardSwish", q.GetString("activation", ""));
        Assert.Equal(0.03f, q.GetFloat("y_scale", 0));
        Assert.Equal(-20, q.GetInt("y_zero_point", 0));

        // The unfused lowering by hand: the same QConv writing float, the engine's HardSwish, QuantizeLinear.
        var unfused = OnnxModelReader.Load(quantized);
        var g = unfused.Graph;
        var fq = g.Nodes[1];
        fq.Attributes.Remove("activation");
        fq.Attributes.Remove("y_scale");
        fq.Attributes.Remove("y_zero_point");
        fq.Set(AttributeValue.Of("to", (long)ElementType.Float));
        fq.Outputs[0] = "conv_float";
        g.Initializers["hs_y_scale"] = TensorData.FromFloats("hs_y_scale", [], [0.03f]);
        g.Initializers["hs_y_zp"] = TensorData.From("hs_y_zp", ElementType.Int8, [], new sbyte[] { -20 }.AsSpan());
        g.Nodes.Insert(2, new Node("hs", "HardSwish", "", ["conv_float"], ["hs_out"]));
        g.Nodes.Insert(3, new Node("hs_q", "QuantizeLinear", "", ["hs_out", "hs_y_scale", "hs_y_zp"], [q.Outputs[0]]));
        unfused.Opsets[""] = 14;

        var fusedRun = new InferenceSession(model);
        var unfusedRun = new InferenceSession(unfused);
        var compiled = Quant.Runtime.QbmModel.Load(Quant.Core.Compilation.CompileStage.Run(quantized, Path.Combine(dir, "tiny.qbm")).QbmPath);
        int bent = 0;
        foreach (var seed in Enumerable.Range(1, 20))
        {
            var feeds = new Dictionary<string, Tensor> { ["x"] = Input(seed) };
            var a = fusedRun.Run(feeds)["y"].ReadOnlySpan<float>().ToArray();
            var b = unfusedRun.Run(feeds)["y"].ReadOnlySpan<float>().ToArray();
            Assert.Equal(b, a);
            // The compiled program runs the same kernel: the same bits.
            Assert.Equal(a, compiled.Run(feeds)["y"].ReadOnlySpan<float>().ToArray());
            bent += a.Count(v => v < 0);
        }
        // The negative lobe of HardSwish (between −3 and 0) was reached, not just the identity part.
        Assert.True(bent > 0);
    }

    [Fact]
    public void Fused_qconv_stays_within_one_lsb_of_the_qat_model_under_onnx_runtime()
    {
        var dir = TestAssets.TempDir("convert-hardswish-ort");
        var qat = Model().Save(dir);
        var quantized = Path.Combine(dir, "tiny.quantized.onnx");
        ConvertStage.Run(qat, quantized);
        using var ort = new Quant.Core.DeploymentRuntime.OrtRunner(qat);
        var ours = new InferenceSession(OnnxModelReader.Load(quantized));
        int flips = 0, total = 0;
        foreach (var seed in Enumerable.Range(1, 10))
        {
            var feeds = new Dictionary<string, Tensor> { ["x"] = Input(seed) };
            var a = ort.Run(feeds)["y"].ReadOnlySpan<float>().ToArray();
            var b = ours.Run(feeds)["y"].ReadOnlySpan<float>().ToArray();
            for (int i = 0; i < a.Length; i++)
            {
                double d = Math.Abs(a[i] - b[i]) / 0.03;
                Assert.True(d < 1.0001, $"seed {seed}, element {i}: qat {a[i]}, quantized {b[i]} differ by {d} LSB");
                if (d > 0.5) flips++;
            }
            total += a.Length;
        }
        Assert.True(flips <= total / 20, $"{flips} of {total} outputs flipped");
    }
}
