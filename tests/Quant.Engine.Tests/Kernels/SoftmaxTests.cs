using Quant.Engine;
using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.ElementwiseReference;

namespace Quant.Engine.Tests.Kernels;

public class SoftmaxTests
{
    /// <summary>Softmax in double over sets of n elements with stride inner.</summary>
    private static double[] Reference(float[] x, int outer, int n, int inner)
    {
        var y = new double[x.Length];
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++)
            {
                int b = o * n * inner + i;
                double max = double.NegativeInfinity, sum = 0;
                for (int j = 0; j < n; j++) max = Math.Max(max, x[b + j * inner]);
                for (int j = 0; j < n; j++) sum += Math.Exp(x[b + j * inner] - max);
                for (int j = 0; j < n; j++) y[b + j * inner] = Math.Exp(x[b + j * inner] - max) / sum;
            }
        return y;
    }

    private static void Check(int[] shape, int axis, int opset, int threads, float scale = 8)
    {
        var x = RandomTensor(shape.Sum() + axis + opset, shape, -scale, scale);
        var y = RunNode("Softmax", opset, [x], threads: threads, attributes: [AttributeValue.Of("axis", (long)axis)])[0];
        int a = axis < 0 ? axis + shape.Length : axis;
        int outer = shape[..a].Aggregate(1, (p, d) => p * d);
        int n = opset < 13 ? shape[a..].Aggregate(1, (p, d) => p * d) : shape[a];
        int inner = opset < 13 ? 1 : shape[(a + 1)..].Aggregate(1, (p, d) => p * d);
        var r = Reference(x.ReadOnlySpan<float>().ToArray(), outer, n, inner);
        var yv = y.ReadOnlySpan<float>();
        for (int i = 0; i < r.Length; i++)
            Assert.True(Math.Abs(yv[i] - r[i]) <= 2e-6 * r[i] + 1e-12, $"shape {string.Join(",", shape)} axis {axis} opset {opset} [{i}]: {yv[i]} vs {r[i]}");
    }

    [Fact]
    public void Matches_double_reference_for_lengths_and_axes()
    {
        for (int n = 1; n <= 67; n++) Check([3, n], -1, 13, 1);
        Check([2, 3, 4, 5], 0, 13, 1);
        Check([2, 3, 4, 5], 1, 13, 1);
        Check([2, 3, 4, 5], 2, 13, 1);
        Check([2, 3, 4, 5], -1, 13, 1);
        Check([2, 3, 4, 5], 1, 11, 1);
        Check([2, 3, 4, 5], 0, 1, 1);
        Check([2, 3, 4, 5], 3, 9, 1);
        Check([1, 40, 6625], 2, 9, 2);       // the rec head
        Check([4, 60, 40, 40], 1, 13, 2);    // strided axis, threaded
        Check([2, 7], -1, 13, 1, scale: 5000); // large numbers: no overflow
    }

    [Fact]
    public void Opset_11_coerces_to_two_dimensions()
    {
        var x = RandomTensor(5, [2, 3, 4]);
        var y11 = RunNode("Softmax", 11, [x], attributes: [AttributeValue.Of("axis", 1L)])[0].ReadOnlySpan<float>();
        double rowSum = 0;
        for (int i = 0; i < 12; i++) rowSum += y11[i];
        Assert.Equal(1.0, rowSum, 5);
        var y13 = RunNode("Softmax", 13, [x], attributes: [AttributeValue.Of("axis", 1L)])[0].ReadOnlySpan<float>();
        Assert.NotEqual(y11[0], y13[0]);
    }

    [Fact]
    public void Rec_style_fixture_matches_onnx_runtime()
    {
        CompareWithOrt("elem_rec_style_opset9.onnx", new Dictionary<string, Tensor> { ["x"] = RandomTensor(31, [3, 40, 97], -6, 6) },
            rtol: 1e-5, atol: 1e-7);
    }
}
