using Quant.Engine;
using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.ElementwiseReference;

namespace Quant.Engine.Tests.Kernels;

public class UnaryTests
{
    // Double-precision references; the float kernels must stay within MaxUlps of the rounded result.
    private static readonly (string Op, Func<double, double> F, long MaxUlps, float Lo, float Hi)[] Ops =
    [
        ("Neg", x => -x, 0, -10, 10), ("Abs", Math.Abs, 0, -10, 10), ("Reciprocal", x => 1 / x, 1, 0.01f, 10),
        ("Sqrt", Math.Sqrt, 1, 0, 100), ("Exp", Math.Exp, 2, -80, 80), ("Log", Math.Log, 2, 1e-6f, 1e6f),
        ("Sigmoid", x => 1 / (1 + Math.Exp(-x)), 3, -30, 30), ("Tanh", Math.Tanh, 1, -12, 12), ("Erf", ErfReference, 2, -5, 5),
    ];

    [Fact]
    public void Float_ops_match_double_reference_on_every_length()
    {
        foreach (var (op, f, maxUlps, lo, hi) in Ops)
            for (int n = 0; n <= 67; n++)
            {
                var x = RandomTensor(n * 31 + op.Length, [n], lo, hi);
                var y = Run1(op, 13, x);
                Assert.Equal(x.Shape, y.Shape);
                for (int i = 0; i < n; i++)
                {
                    float xi = x.ReadOnlySpan<float>()[i];
                    float expect = (float)f(xi);
                    long u = Ulps(expect, y.ReadOnlySpan<float>()[i]);
                    Assert.True(u <= maxUlps, $"{op}({xi}) = {y.ReadOnlySpan<float>()[i]}, expected {expect} ({u} ulps)");
                }
            }
    }

    [Fact]
    public void Large_tensors_are_split_across_threads_consistently()
    {
        var x = RandomTensor(5, [3, 200, 170], -5, 5);
        foreach (var op in new[] { "Exp", "Sigmoid", "Tanh", "Erf" })
        {
            var one = RunNode(op, 13, [x], threads: 1)[0].ReadOnlySpan<float>().ToArray();
            var two = RunNode(op, 13, [x], threads: 2)[0].ReadOnlySpan<float>().ToArray();
            Assert.Equal(one, two);
        }
    }

    [Fact]
    public void Erf_is_accurate_on_a_dense_grid_and_at_the_edges()
    {
        double worst = 0;
        for (double v = -6; v <= 6; v += 1.0 / 1024)
        {
            float x = (float)v;
            double expect = ErfReference(x);
            float got = Run1Erf(x);
            double rel = Math.Abs(got - expect) / Math.Max(Math.Abs(expect), 1e-30);
            worst = Math.Max(worst, rel);
        }
        Assert.True(worst <= 1.2e-7, $"worst relative error {worst}");
        Assert.Equal(1e-20f * 1.1283791670955126f, Run1Erf(1e-20f), 1e-27f);
        Assert.Equal(1f, Run1Erf(float.PositiveInfinity));
        Assert.Equal(-1f, Run1Erf(float.NegativeInfinity));
        Assert.True(float.IsNaN(Run1Erf(float.NaN)));
    }

    private static float Run1Erf(float x) => Quant.Engine.Kernels.UnaryKernels.ErfScalar(x) is var d ? (float)d : 0;

    [Fact]
    public void Special_values_follow_ieee()
    {
        var x = Tensor.From(new float[] { 0, -0f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, -1 }, 6);
        var log = Run1("Log", 13, x).ReadOnlySpan<float>().ToArray();
        Assert.Equal(float.NegativeInfinity, log[0]);
        Assert.Equal(float.PositiveInfinity, log[2]);
        Assert.True(float.IsNaN(log[3]) && float.IsNaN(log[4]) && float.IsNaN(log[5]));
        var sig = Run1("Sigmoid", 13, x).ReadOnlySpan<float>().ToArray();
        Assert.Equal(new[] { 0.5f, 0.5f, 1f, 0f }, sig[..4]);
        Assert.True(float.IsNaN(sig[4]));
        var rec = Run1("Reciprocal", 13, x).ReadOnlySpan<float>().ToArray();
        Assert.Equal(float.PositiveInfinity, rec[0]);
        Assert.Equal(float.NegativeInfinity, rec[1]);
    }

    [Fact]
    public void Neg_and_abs_take_integers_and_doubles()
    {
        Assert.Equal(new long[] { -3, 4, 0 }, Run1("Neg", 13, Tensor.From(new long[] { 3, -4, 0 }, 3)).ReadOnlySpan<long>().ToArray());
        Assert.Equal(new int[] { 3, 4, 0 }, Run1("Abs", 13, Tensor.From(new int[] { 3, -4, 0 }, 3)).ReadOnlySpan<int>().ToArray());
        Assert.Equal(new double[] { Math.Exp(1.5) }, Run1("Exp", 13, Tensor.From(new double[] { 1.5 }, 1)).ReadOnlySpan<double>().ToArray());
        var ex = Assert.Throws<EngineException>(() => Run1("Exp", 13, Tensor.From(new int[] { 1 }, 1)));
        Assert.Contains("int32", ex.Message);
    }

    /// <summary>erf by its Maclaurin series (|x| ≤ 3) or the Laplace continued fraction of erfc (|x| > 3), in double.</summary>
    internal static double ErfReference(double x)
    {
        if (double.IsNaN(x)) return x;
        double a = Math.Abs(x);
        double r;
        if (a <= 3)
        {
            double sum = 0, term = a;
            for (int n = 0; n < 200; n++)
            {
                double t = term / (2 * n + 1);
                sum += t;
                if (Math.Abs(t) < 1e-19 * Math.Abs(sum)) break;
                term *= -a * a / (n + 1);
            }
            r = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else if (double.IsInfinity(a)) r = 1;
        else
        {
            double f = a;
            for (int k = 60; k >= 1; k--) f = a + k / 2.0 / f;
            r = 1 - Math.Exp(-a * a) / Math.Sqrt(Math.PI) / f;
        }
        return x < 0 ? -r : r;
    }
}
