using System.Numerics;
using System.Numerics.Tensors;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Elementwise math on float, double and float16 (float16 computed in float and rounded back):
/// Neg (-x), Abs (|x|), Reciprocal (1/x), Sqrt, Exp, Log (natural; log 0 = -inf, log of a negative = NaN),
/// Erf, Sigmoid (1/(1+e^-x)), Tanh. Neg and Abs also take integer types (two's complement: the
/// minimum value is an overflow error). Float paths are vectorized (TensorPrimitives); Exp, Log,
/// Sigmoid stay within a few float ulps, Tanh (computed in double) within 1, Erf within ~1e-7 relative (see <see cref="Erf"/>).
/// </summary>
[KernelFamily]
internal static class UnaryKernels
{
    internal delegate void SpanFn<T>(ReadOnlySpan<T> x, Span<T> y);

    public static void Register(KernelRegistry r)
    {
        Add(r, "Neg", TensorPrimitives.Negate, TensorPrimitives.Negate, integers: true, 1, 6);
        Add(r, "Abs", TensorPrimitives.Abs, TensorPrimitives.Abs, integers: true, 1, 6);
        Add(r, "Reciprocal", TensorPrimitives.Reciprocal, TensorPrimitives.Reciprocal, false, 1, 6);
        Add(r, "Sqrt", TensorPrimitives.Sqrt, TensorPrimitives.Sqrt, false, 1, 6);
        Add(r, "Exp", TensorPrimitives.Exp, TensorPrimitives.Exp, false, 1, 6);
        Add(r, "Log", TensorPrimitives.Log, TensorPrimitives.Log, false, 1, 6);
        Add(r, "Sigmoid", TensorPrimitives.Sigmoid, TensorPrimitives.Sigmoid, false, 1, 6);
        Add(r, "Tanh", TanhViaDouble, TensorPrimitives.Tanh, false, 1, 6);
        Add(r, "Erf", Erf, Erf, false, 9);
    }

    private static void Add(KernelRegistry r, string op, SpanFn<float> f, SpanFn<double> d, bool integers, params int[] versions)
    {
        foreach (var v in versions) r.Add(op, v, _ => new UnaryKernel(f, d, integers, op));
    }

    /// <summary>Runs <paramref name="f"/> over x into y, split across threads for large tensors.</summary>
    internal static void Map(KernelContext? ctx, float[] x, float[] y, int length, SpanFn<float> f) =>
        ElementwiseChunk.For(ctx, length, (s, e) => f(x.AsSpan(s, e - s), y.AsSpan(s, e - s)));

    private sealed class UnaryKernel(SpanFn<float> f, SpanFn<double> d, bool integers, string op) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var y = ctx.Output(0, x.Type, x.Shape);
            switch (x.Type)
            {
                case ElementType.Float:
                    Map(ctx, (float[])x.Buffer, (float[])y.Buffer, x.Length, f);
                    return;
                case ElementType.Double:
                    d(x.ReadOnlySpan<double>(), y.Span<double>());
                    return;
                case ElementType.Float16:
                    {
                        var tmp = new float[x.Length];
                        TensorPrimitives.ConvertToSingle(x.ReadOnlySpan<Half>(), tmp);
                        f(tmp, tmp);
                        TensorPrimitives.ConvertToHalf(tmp, y.Span<Half>());
                        return;
                    }
            }
            if (integers)
            {
                var v = new IntVisitor { X = x, Y = y, Negate = op == "Neg" };
                if (ElementDispatch.Numeric(x.Type, ref v)) return;
            }
            throw ctx.Error($"element type {x.Type.OnnxName()} is not supported");
        }
    }

    private struct IntVisitor : INumericVisitor
    {
        public Tensor X, Y;
        public bool Negate;

        public readonly void Visit<T>() where T : unmanaged, INumber<T>
        {
            if (Negate) TensorPrimitives.Negate<T>(X.ReadOnlySpan<T>(), Y.Span<T>());
            else TensorPrimitives.Abs<T>(X.ReadOnlySpan<T>(), Y.Span<T>());
        }
    }

    /// <summary>
    /// Float tanh evaluated in double and rounded once: the vectorized float tanh is up to ~7 ulps off
    /// for small |x|, the double one rounds to within 1 ulp.
    /// </summary>
    internal static void TanhViaDouble(ReadOnlySpan<float> x, Span<float> y)
    {
        Span<double> buf = stackalloc double[256];
        for (int i = 0; i < x.Length; i += buf.Length)
        {
            int n = Math.Min(buf.Length, x.Length - i);
            var b = buf[..n];
            for (int k = 0; k < n; k++) b[k] = x[i + k];
            TensorPrimitives.Tanh<double>(b, b);
            for (int k = 0; k < n; k++) y[i + k] = (float)b[k];
        }
    }

    // Chebyshev coefficients (fitted to erf by least squares at 2000 Chebyshev nodes, in double):
    // erf(x)/x as a series in s = 2x²-1 for |x| < 1 (relative error < 4e-11), and
    // erfc(x)·e^(x²)·x as a series in s = (2u-1.25)/0.75, u = 1/x, for 1 <= |x| < 4 (absolute error of erf < 5e-11).
    private static readonly double[] ErfSmall =
    [
        0.9754769393827057, -0.14226120510371124, 0.010035582187602051, -0.0005768764699745851,
        2.741993125451438e-05, -1.1043175485998987e-06, 3.848875768342007e-08, -1.1808560015486126e-09,
    ];
    private static readonly double[] ErfcLarge =
    [
        0.4888515056984979, -0.06128046985541826, -0.0008674106653270497, 0.0010548149615652214,
        -0.00019392767062845895, 1.9201959736160483e-05, 3.6619224919005564e-07, -6.474155585574289e-07,
        1.6762492471245578e-07, -2.7132413833540563e-08, 2.328849780296315e-09,
    ];

    private static double Chebyshev(ReadOnlySpan<double> c, double s)
    {
        double b1 = 0, b2 = 0, s2 = 2 * s;
        for (int k = c.Length - 1; k >= 1; k--)
        {
            double b0 = c[k] + s2 * b1 - b2;
            b2 = b1;
            b1 = b0;
        }
        return c[0] + s * b1 - b2;
    }

    /// <summary>
    /// The error function in double precision arithmetic from two fitted series (|x| &lt; 1: x·P(x²);
    /// 1 ≤ |x| &lt; 4: 1 − e^(−x²)·Q(1/x)/x; beyond: ±1, as erf rounds to ±1 in float from |x| ≈ 3.92).
    /// Max error about 5e-11, far below float resolution. erf(NaN) = NaN, erf(±inf) = ±1.
    /// </summary>
    internal static double ErfScalar(double x)
    {
        double a = Math.Abs(x);
        if (double.IsNaN(x)) return x;
        double r;
        if (a < 1) return x * Chebyshev(ErfSmall, 2 * x * x - 1);
        if (a < 4)
        {
            double u = 1 / a;
            r = 1 - Math.Exp(-a * a) * Chebyshev(ErfcLarge, (2 * u - 1.25) / 0.75) * u;
        }
        else r = 1;
        return x < 0 ? -r : r;
    }

    internal static void Erf(ReadOnlySpan<float> x, Span<float> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = (float)ErfScalar(x[i]);
    }

    internal static void Erf(ReadOnlySpan<double> x, Span<double> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = ErfScalar(x[i]);
    }
}
