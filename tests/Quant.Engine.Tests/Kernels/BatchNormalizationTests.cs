using Quant.Engine;
using Quant.Engine.Kernels;
using Quant.Onnx;

namespace Quant.Engine.Tests.Kernels;

public class BatchNormalizationTests
{
    [Fact]
    public void Vectorized_multiply_add_matches_scalar_for_lengths_0_to_67()
    {
        var rng = new Random(9);
        for (int n = 0; n <= 67; n++)
        {
            var x = new float[n];
            for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 20 - 10);
            var y = new float[n + 1];
            y[n] = 123; // must not be touched
            BatchNormalizationKernels.Apply(x, y.AsSpan(0, n), 1.7f, -0.3f);
            for (int i = 0; i < n; i++) Assert.Equal(MathF.FusedMultiplyAdd(x[i], 1.7f, -0.3f), y[i]);
            Assert.Equal(123, y[n]);
        }
    }

    private static Tensor[] Params(Random rng, int c) =>
    [
        Tensor.From(Enumerable.Range(0, c).Select(_ => (float)(rng.NextDouble() + 0.5)).ToArray(), c),
        Tensor.From(Enumerable.Range(0, c).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray(), c),
        Tensor.From(Enumerable.Range(0, c).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), c),
        Tensor.From(Enumerable.Range(0, c).Select(_ => (float)(rng.NextDouble() * 3 + 0.01)).ToArray(), c),
    ];

    [Theory]
    [InlineData(9, false)]
    [InlineData(15, true)]
    [InlineData(7, true)]
    public void Matches_the_formula_with_folded_and_runtime_parameters(int opset, bool constants)
    {
        var rng = new Random(opset);
        const int N = 2, C = 3, H = 5, W = 13;
        var x = PoolResizeNode.Random(rng, N, C, H, W);
        var p = Params(rng, C);
        const float eps = 1e-3f;
        var y = PoolResizeNode.Run("BatchNormalization", opset, [x, .. p], attrs: n => n.Set(AttributeValue.Of("epsilon", eps)), constants: constants)[0]!;
        Assert.Equal(x.Shape, y.Shape);
        var xs = x.ReadOnlySpan<float>(); var ys = y.ReadOnlySpan<float>();
        var s = p[0].ReadOnlySpan<float>(); var b = p[1].ReadOnlySpan<float>(); var m = p[2].ReadOnlySpan<float>(); var v = p[3].ReadOnlySpan<float>();
        for (int i = 0; i < xs.Length; i++)
        {
            int c = i / (H * W) % C;
            double expected = s[c] * (xs[i] - m[c]) / Math.Sqrt(v[c] + (double)eps) + b[c];
            Assert.True(Math.Abs(expected - ys[i]) <= 1e-5 * (1 + Math.Abs(expected)), $"at {i}: {ys[i]} vs {expected}");
        }
    }

    [Fact]
    public void Spatial_zero_uses_one_parameter_per_sample_element()
    {
        var rng = new Random(3);
        var x = PoolResizeNode.Random(rng, 2, 2, 3);
        var p = Params(rng, 6).Select(t => Tensor.From(t.ReadOnlySpan<float>().ToArray(), 2, 3)).ToArray();
        var y = PoolResizeNode.Run("BatchNormalization", 7, [x, .. p], attrs: n => n.Set(AttributeValue.Of("spatial", 0L)))[0]!;
        var xs = x.ReadOnlySpan<float>(); var ys = y.ReadOnlySpan<float>();
        for (int i = 0; i < xs.Length; i++)
        {
            int k = i % 6;
            double expected = p[0].ReadOnlySpan<float>()[k] * (xs[i] - p[2].ReadOnlySpan<float>()[k]) / Math.Sqrt(p[3].ReadOnlySpan<float>()[k] + 1e-5) + p[1].ReadOnlySpan<float>()[k];
            Assert.True(Math.Abs(expected - ys[i]) <= 1e-5 * (1 + Math.Abs(expected)), $"at {i}");
        }
    }

    [Fact]
    public void Channel_mismatch_and_training_mode_are_reported()
    {
        var rng = new Random(4);
        var x = PoolResizeNode.Random(rng, 1, 4, 2, 2);
        var e = Assert.Throws<EngineException>(() => PoolResizeNode.Run("BatchNormalization", 15, [x, .. Params(rng, 3)]));
        Assert.Contains("4 channels but the parameters have 3", e.Message);
        var t = Assert.Throws<EngineException>(() => PoolResizeNode.Run("BatchNormalization", 15, [x, .. Params(rng, 4)], attrs: n => n.Set(AttributeValue.Of("training_mode", 1L))));
        Assert.Contains("training_mode", t.Message);
    }
}
