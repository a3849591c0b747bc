using Quant.Engine;
using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.ElementwiseReference;

namespace Quant.Engine.Tests.Kernels;

public class LayerNormalizationTests
{
    [Theory]
    [InlineData(-1, 1)]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    [InlineData(0, 2)]
    public void Matches_double_reference_with_statistics(int axis, int threads)
    {
        int[] shape = [4, 3, 67];
        int a = axis < 0 ? axis + 3 : axis;
        var norm = shape[a..];
        var x = RandomTensor(axis + 10, shape, -3, 5);
        var scale = RandomTensor(axis + 20, norm);
        var bias = RandomTensor(axis + 30, [norm[^1]]);
        var r = RunNode("LayerNormalization", 17, [x, scale, bias], outputs: 3, threads: threads,
            attributes: [AttributeValue.Of("axis", (long)axis), AttributeValue.Of("epsilon", 1e-4f)]);
        int rows = shape[..a].Aggregate(1, (p, d) => p * d), n = x.Length / rows;
        Assert.Equal(shape[..a].Concat(Enumerable.Repeat(1, 3 - a)).ToArray(), r[1].Shape);
        var xv = x.ReadOnlySpan<float>(); var yv = r[0].ReadOnlySpan<float>();
        for (int row = 0; row < rows; row++)
        {
            double mean = 0, v = 0;
            for (int i = 0; i < n; i++) mean += xv[row * n + i];
            mean /= n;
            for (int i = 0; i < n; i++) v += (xv[row * n + i] - mean) * (xv[row * n + i] - mean);
            double inv = 1 / Math.Sqrt(v / n + 1e-4f);
            Assert.True(Math.Abs(mean - r[1].ReadOnlySpan<float>()[row]) <= 1e-6 * Math.Max(1, Math.Abs(mean)));
            Assert.True(Math.Abs(inv - r[2].ReadOnlySpan<float>()[row]) <= 1e-6 * inv);
            for (int i = 0; i < n; i++)
            {
                double expect = (xv[row * n + i] - mean) * inv * scale.ReadOnlySpan<float>()[i] + bias.ReadOnlySpan<float>()[i % norm[^1]];
                Assert.True(Math.Abs(yv[row * n + i] - expect) <= 2e-6 * Math.Max(1, Math.Abs(expect)), $"[{row},{i}] {yv[row * n + i]} vs {expect}");
            }
        }
    }

    [Fact]
    public void Bias_is_optional_and_bad_scale_is_reported()
    {
        var x = RandomTensor(1, [2, 5]);
        var y = RunNode("LayerNormalization", 17, [x, Tensor.From(new float[] { 1, 1, 1, 1, 1 }, 5)])[0].ReadOnlySpan<float>();
        double s = 0;
        for (int i = 0; i < 5; i++) s += y[i];
        Assert.Equal(0, s, 5);
        var ex = Assert.Throws<EngineException>(() => RunNode("LayerNormalization", 17, [x, Tensor.From(new float[] { 1, 1, 1 }, 3)]));
        Assert.Contains("Scale", ex.Message);
    }
}
