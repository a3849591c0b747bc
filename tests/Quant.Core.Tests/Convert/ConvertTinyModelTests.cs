using Quant.Core.Conversion;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Convert;

/// <summary>
/// Convert on a small qat model written with the Graph API: the Conv + Relu group becomes one QConv (Relu as its
/// clamp), Q/DQ nodes without readers are gone, the quant.build opset is imported, the report says what happened,
/// the artifacts are byte-identical run to run, and the engine's quantized run equals the qat run within one LSB
/// (ties only). uint8 activations (foreign encoding) are mapped onto int8 with the same real values.
/// </summary>
public class ConvertTinyModelTests
{
    private static Tensor Input(int seed)
    {
        var rng = new Random(seed);
        return Tensor.From(Enumerable.Range(0, TinyQat.C * TinyQat.H * TinyQat.W).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray(), 1, TinyQat.C, TinyQat.H, TinyQat.W);
    }

    private static (float[] Qat, float[] Quantized) RunBoth(string qat, string quantized, Tensor x)
    {
        var feeds = new Dictionary<string, Tensor> { ["x"] = x };
        var a = new InferenceSession(OnnxModelReader.Load(qat)).Run(feeds)["y"].ReadOnlySpan<float>().ToArray();
        var b = new InferenceSession(OnnxModelReader.Load(quantized)).Run(feeds)["y"].ReadOnlySpan<float>().ToArray();
        return (a, b);
    }

    private static void AssertWithinOneLsb(float[] qat, float[] quantized, float scale)
    {
        Assert.Equal(qat.Length, quantized.Length);
        int flips = 0;
        for (int i = 0; i < qat.Length; i++)
        {
            double d = Math.Abs(qat[i] - quantized[i]) / scale;
            Assert.True(d < 1.0001, $"element {i}: qat {qat[i]}, quantized {quantized[i]} differ by {d} LSB");
            if (d > 0.5) flips++;
        }
        // Flips only where the exact value lies near a tie (bias rounding ≤ 0.5·M LSB): a small share.
        Assert.True(flips <= qat.Length / 20, $"{flips} of {qat.Length} outputs flipped");
    }

    [Fact]
    public void Conv_and_relu_become_one_qconv_that_matches_the_qat_model()
    {
        var dir = TestAssets.TempDir("convert-tiny");
        var qat = new TinyQat().Save(dir);
        var quantized = Path.Combine(dir, "tiny.quantized.onnx");
        var summary = ConvertStage.Run(qat, quantized);

        Assert.Equal(1, summary.IntegerGroups);
        Assert.Equal(0, summary.FloatIslands);
        var conv = Assert.Single(summary.Nodes);
        Assert.Equal(["QConv"], conv.Became);
        Assert.Equal("relu", conv.Fused);
        var model = OnnxModelReader.Load(quantized);
        Assert.Equal(1, model.Opsets["quant.build"]);
        var g = model.Graph;
        // x → Q (float boundary, P8) → QConv → DQ (P7) → y: the input DQ, the weight DQ, Conv, Relu and y's Q are gone.
        Assert.Equal(["QuantizeLinear", "QConv", "DequantizeLinear"], g.Nodes.Select(n => n.OpType));
        var q = g.Nodes[1];
        Assert.Equal(["x_q", "w_q", "conv_bias_int32", "conv_multiplier", "conv_shift"], q.Inputs);
        Assert.Equal(["y_q"], q.Outputs);
        Assert.Equal(0, q.GetInt("clamp_min", -1)); // Relu: Q(0) = the zero point
        Assert.Equal(127, q.GetInt("clamp_max", -1));
        Assert.Equal(32, q.GetInt("acc_bits", -1));
        Assert.False(g.Initializers.ContainsKey("b"));

        var reportText = File.ReadAllText(summary.ReportPath);
        Assert.Equal(Path.Combine(dir, "tiny.convert.json"), summary.ReportPath);
        Assert.Contains("\"became\": [\n        \"QConv\"\n      ]", reportText);
        foreach (var seed in new[] { 1, 2, 3 })
        {
            var (a, b) = RunBoth(qat, quantized, Input(seed));
            AssertWithinOneLsb(a, b, 0.05f);
        }

        // Same input, same bytes.
        var modelBytes = File.ReadAllBytes(quantized);
        ConvertStage.Run(qat, quantized);
        Assert.Equal(modelBytes, File.ReadAllBytes(quantized));
        Assert.Equal(reportText, File.ReadAllText(summary.ReportPath));
    }

    [Fact]
    public void Uint8_activations_are_mapped_to_int8_with_the_same_values()
    {
        var dir = TestAssets.TempDir("convert-tiny");
        var qat = new TinyQat { ActivationType = ElementType.UInt8, InputZeroPoint = 128, OutputZeroPoint = 3 }.Save(dir);
        var quantized = Path.Combine(dir, "tiny.quantized.onnx");
        ConvertStage.Run(qat, quantized);
        var g = OnnxModelReader.Load(quantized).Graph;
        var q = g.Nodes.Single(n => n.OpType == "QConv");
        Assert.Equal(0, q.GetInt("x_zero_point", -1));
        Assert.Equal(3 - 128, q.GetInt("y_zero_point", 0));
        Assert.Equal(3 - 128, q.GetInt("clamp_min", 0));
        Assert.All(g.Initializers.Values.Where(t => t.Name.Contains("zero_point")), t => Assert.Equal(ElementType.Int8, t.Type));
        foreach (var seed in new[] { 4, 5 })
        {
            var (a, b) = RunBoth(qat, quantized, Input(seed));
            AssertWithinOneLsb(a, b, 0.05f);
        }
    }

    [Fact]
    public void A_conv_read_as_float_writes_its_float_output_from_the_accumulator()
    {
        var dir = TestAssets.TempDir("convert-tiny");
        var model = new TinyQat().Build();
        // The Relu's output goes straight to the graph output: no QuantizeLinear reader, a float reader.
        var g = model.Graph;
        g.Nodes.RemoveAll(n => n.Name is "y_q" or "y_dq");
        g.Outputs[0] = new ValueInfo("relu_out", ElementType.Float, [1, TinyQat.M, TinyQat.H, TinyQat.W]);
        var qat = Path.Combine(dir, "float.qat.onnx");
        OnnxModelWriter.Save(model, qat);
        var quantized = Path.Combine(dir, "float.quantized.onnx");
        var summary = ConvertStage.Run(qat, quantized);
        Assert.Equal(["QConv"], Assert.Single(summary.Nodes).Became);
        var q = OnnxModelReader.Load(quantized).Graph.Nodes.Single(n => n.OpType == "QConv");
        Assert.Equal((long)ElementType.Float, q.GetInt("to", 0));
        Assert.Equal(0f, q.GetFloat("clip_min", -1));
        // Spec §4.5: the float output is fl32(exact sum · S_m); it differs from the qat model's float32 sum by the int32
        // bias rounding (≤ 0.5·S_m, S_m = s_x·s_w ≤ 0.02·0.012) and qat's own float32 rounding.
        var feeds = new Dictionary<string, Tensor> { ["x"] = Input(7) };
        var a = new InferenceSession(OnnxModelReader.Load(qat)).Run(feeds)["relu_out"].ReadOnlySpan<float>().ToArray();
        var b = new InferenceSession(OnnxModelReader.Load(quantized)).Run(feeds)["relu_out"].ReadOnlySpan<float>().ToArray();
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 0.5 * 0.02 * 0.012 + 1e-6 * Math.Abs(a[i]), $"element {i}: {a[i]} vs {b[i]}");
        Assert.Contains(a, v => v > 0.5f);
    }

    [Fact]
    public void A_conv_with_float_weights_stays_a_float_island_with_its_reason()
    {
        var dir = TestAssets.TempDir("convert-tiny");
        var model = new TinyQat().Build();
        var g = model.Graph;
        // Float weights (a float32 node in the qat model): the weight DQ is replaced by a float initializer.
        var wq = g.Initializers["w_q"].As<sbyte>().ToArray();
        g.Initializers["w_float"] = TensorData.FromFloats("w_float", [TinyQat.M, TinyQat.C, 3, 3], wq.Select(v => v * 0.01f).ToArray());
        g.Nodes.Single(n => n.Name == "conv").Inputs[1] = "w_float";
        g.Nodes.RemoveAll(n => n.Name == "w_dq");
        var qat = Path.Combine(dir, "island.qat.onnx");
        OnnxModelWriter.Save(model, qat);
        var summary = ConvertStage.Run(qat, Path.Combine(dir, "island.quantized.onnx"));
        var conv = summary.Nodes.Single(n => n.Node == "conv");
        Assert.Equal("input 1 'w_float' is not quantized (no QuantizeLinear → DequantizeLinear before it)", conv.FloatIsland);
        Assert.Contains("\"float_island\": \"input 1 'w_float' is not quantized (no QuantizeLinear → DequantizeLinear before it)\"", File.ReadAllText(summary.ReportPath));
        // The island runs as the qat model has it: same outputs.
        var feeds = new Dictionary<string, Tensor> { ["x"] = Input(8) };
        Assert.Equal(new InferenceSession(OnnxModelReader.Load(qat)).Run(feeds)["y"].ReadOnlySpan<float>().ToArray(),
            new InferenceSession(OnnxModelReader.Load(Path.Combine(dir, "island.quantized.onnx"))).Run(feeds)["y"].ReadOnlySpan<float>().ToArray());
    }
}
