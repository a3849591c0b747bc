using Quant.Core.DeploymentRuntime;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;
using static Quant.Engine.Tests.Kernels.ElementwiseReference;

namespace Quant.Engine.Tests.Kernels;

public class ActivationsTests
{
    private static AttributeValue F(string n, float v) => AttributeValue.Of(n, v);

    private static readonly (string Op, int Opset, AttributeValue[] Attrs, Func<double, double> Ref, long MaxUlps)[] Cases =
    [
        ("Relu", 14, [], x => Math.Max(0, x), 0),
        ("LeakyRelu", 16, [], x => x >= 0 ? x : 0.01f * x, 1),
        ("LeakyRelu", 16, [F("alpha", 0.3f)], x => x >= 0 ? x : 0.3f * x, 1),
        ("HardSigmoid", 6, [], x => Math.Clamp(0.2f * x + 0.5f, 0, 1), 1),
        ("HardSigmoid", 6, [F("alpha", 0.1666667f), F("beta", 0.5f)], x => Math.Clamp(0.1666667f * x + 0.5, 0, 1), 1),
        ("HardSwish", 14, [], x => x * Math.Clamp(x / 6 + 0.5, 0, 1), 2),
        ("Clip", 6, [F("min", -1.5f), F("max", 2.25f)], x => Math.Clamp(x, -1.5, 2.25), 0),
        ("Gelu", 20, [], x => 0.5 * x * (1 + UnaryTests.ErfReference(x / Math.Sqrt(2))), 2),
        ("Gelu", 20, [AttributeValue.Of("approximate", "tanh")], x => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))), 2),
    ];

    [Fact]
    public void Activations_match_double_reference_on_every_length()
    {
        foreach (var (op, opset, attrs, f, maxUlps) in Cases)
            for (int n = 0; n <= 67; n++)
            {
                var x = RandomTensor(n + 100 * opset, [n], -8, 8);
                var y = RunNode(op, opset, [x], attributes: attrs)[0].ReadOnlySpan<float>();
                for (int i = 0; i < n; i++)
                {
                    float xi = x.ReadOnlySpan<float>()[i];
                    float expect = (float)f(xi);
                    long u = Ulps(expect, y[i]);
                    Assert.True(u <= maxUlps || Math.Abs(expect - y[i]) < 1e-7, $"{op}({xi}) = {y[i]}, expected {expect} ({u} ulps)");
                }
            }
    }

    [Fact]
    public void Vector_and_tail_paths_agree_with_threads()
    {
        // The same values at every offset: the result must not depend on the position (vector body vs tail) or chunking.
        var big = RandomTensor(3, [1, 16, 160, 161], -8, 8);
        foreach (var (op, opset, attrs, _, _) in Cases)
        {
            var a = RunNode(op, opset, [big], threads: 2, attributes: attrs)[0].ReadOnlySpan<float>().ToArray();
            var b = RunNode(op, opset, [big], threads: 1, attributes: attrs)[0].ReadOnlySpan<float>().ToArray();
            Assert.Equal(a, b);
            var src = big.ReadOnlySpan<float>();
            for (int len = 1; len <= 40; len++)
            {
                var part = RunNode(op, opset, [Tensor.From(src[..len].ToArray(), len)], attributes: attrs)[0].ReadOnlySpan<float>();
                for (int i = 0; i < len; i++) Assert.Equal(a[i], part[i]);
            }
        }
    }

    [Fact]
    public void Nan_propagates_through_relu_and_clip()
    {
        var x = Tensor.From(new float[] { float.NaN, -1, 7 }, 3);
        Assert.True(float.IsNaN(Run1("Relu", 14, x).ReadOnlySpan<float>()[0]));
        var c = Run1("Clip", 13, x, Tensor.From(new[] { 0f }), Tensor.From(new[] { 6f })).ReadOnlySpan<float>().ToArray();
        Assert.True(float.IsNaN(c[0]));
        Assert.Equal(new[] { 0f, 6f }, c[1..]);
    }

    [Fact]
    public void Clip_input_form_handles_missing_bounds_integers_and_inverted_bounds()
    {
        var x = Tensor.From(new float[] { -5, 0.5f, 9 }, 3);
        Assert.Equal(new[] { 0f, 0.5f, 9f }, Run1("Clip", 11, x, Tensor.From(new[] { 0f })).ReadOnlySpan<float>().ToArray());
        Assert.Equal(new[] { -5f, 0.5f, 1f }, Run1("Clip", 11, x, null, Tensor.From(new[] { 1f })).ReadOnlySpan<float>().ToArray());
        Assert.Equal(new[] { 1f, 1f, 1f }, Run1("Clip", 11, x, Tensor.From(new[] { 2f }), Tensor.From(new[] { 1f })).ReadOnlySpan<float>().ToArray());
        var i8 = Tensor.From(new sbyte[] { -128, 0, 127 }, 3);
        Assert.Equal(new sbyte[] { -10, 0, 10 }, Run1("Clip", 13, i8, Tensor.From(new sbyte[] { -10 }), Tensor.From(new sbyte[] { 10 })).ReadOnlySpan<sbyte>().ToArray());
        Assert.Equal(new long[] { 0, 3 }, Run1("Relu", 14, Tensor.From(new long[] { -2, 3 }, 2)).ReadOnlySpan<long>().ToArray());
    }

    [Fact]
    public void Det_style_fixture_matches_onnx_runtime()
    {
        CompareWithOrt("elem_det_style_opset11.onnx", new Dictionary<string, Tensor> { ["x"] = RandomTensor(21, [1, 16, 40, 40], -8, 8) },
            rtol: 1e-6, atol: 1e-7);
    }

    [Fact]
    public void Gelu_fixture_matches_onnx_runtime()
    {
        // ONNX Runtime evaluates the tanh form in float, so 1 + tanh(..) cancels for x < -3 (relative error
        // up to ~1% on values ~1e-5); we evaluate in double. Compare on the model-level scale instead.
        CompareWithOrt("elem_gelu_opset20.onnx", new Dictionary<string, Tensor> { ["x"] = RandomTensor(22, [3, 50], -6, 6) },
            rtol: 1e-6, atol: 1e-6);
    }

    /// <summary>
    /// HardSwish feeds QuantizeLinear in a qat model, where a last-bit difference can flip a rounding: the engine must
    /// compute what ONNX Runtime computes, bit for bit, over the whole range (values 2^-6 .. 2^4 of both signs).
    /// </summary>
    [Fact]
    public void HardSwish_equals_onnx_runtime_bit_for_bit()
    {
        var g = new Graph { Name = "hardswish" };
        const int n = 1 << 16;
        g.Inputs.Add(new ValueInfo("x", ElementType.Float, [Dim.Known(n)]));
        g.Outputs.Add(new ValueInfo("y", ElementType.Float, null));
        g.Nodes.Add(new Node("hs", "HardSwish", "", ["x"], ["y"]));
        var model = new OnnxModel(g);
        model.Opsets[""] = 14;
        var rng = new Random(5);
        var values = new float[n];
        for (int i = 0; i < n; i++) values[i] = (float)((rng.NextDouble() * 2 - 1) * Math.Pow(2, rng.Next(-6, 5)));
        var feeds = new Dictionary<string, Tensor> { ["x"] = Tensor.From(values, [n]) };
        var dir = TestAssets.TempDir("hardswish");
        try
        {
            var path = Path.Combine(dir, "hardswish.onnx");
            OnnxModelWriter.Save(model, path);
            var ort = OrtOracle.Run(path, feeds, optimization: OrtOptimization.Disabled).Outputs["y"].ReadOnlySpan<float>();
            var ours = new InferenceSession(model).Run(feeds)["y"].ReadOnlySpan<float>();
            int differ = 0, first = -1;
            for (int i = 0; i < n; i++)
                if (BitConverter.SingleToInt32Bits(ort[i]) != BitConverter.SingleToInt32Bits(ours[i])) { differ++; if (first < 0) first = i; }
            Assert.True(differ == 0, $"{differ} of {n} differ, first HardSwish({(first < 0 ? 0 : values[first])}): ORT {(first < 0 ? 0 : ort[first])}, engine {(first < 0 ? 0 : ours[first])}");
        }
        finally { Directory.Delete(dir, true); }
    }
}
