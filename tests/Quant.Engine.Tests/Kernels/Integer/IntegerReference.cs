using System.Numerics;
using Quant.Onnx;

namespace Quant.Engine.Tests.Kernels.Integer;

/// <summary>Exact (BigInteger) forms of the spec's integer rules, and helpers to run one quant.build node.</summary>
internal static class IntegerReference
{
    public const string Domain = "quant.build";

    /// <summary>rne(a / 2^n) by floor division and a remainder comparison.</summary>
    public static BigInteger RneShift(BigInteger a, int n)
    {
        var d = BigInteger.One << n;
        var q = BigInteger.DivRem(a, d, out var r);
        if (r.Sign < 0) { q -= 1; r += d; }
        int c = (2 * r).CompareTo(d);
        if (c > 0 || (c == 0 && !q.IsEven)) q += 1;
        return q;
    }

    public static (int Min, int Max) Range(ElementType t) => t == ElementType.Int8 ? (-128, 127) : (-32768, 32767);

    /// <summary>clamp(sat_T(rne(v·m / 2^n) + z_y), lo, hi).</summary>
    public static long Rq(BigInteger v, long m, int n, int zy, ElementType t, int lo = int.MinValue, int hi = int.MaxValue)
    {
        var (qmin, qmax) = Range(t);
        var r = RneShift(v * m, n) + zy;
        long s = r < qmin ? qmin : r > qmax ? qmax : (long)r;
        return Math.Clamp(s, Math.Max(lo, qmin), Math.Min(hi, qmax));
    }

    public static Tensor RandomInts(Random rng, ElementType t, int[] shape, int lo = int.MinValue, int hi = int.MaxValue)
    {
        var (qmin, qmax) = Range(t);
        lo = Math.Max(lo, qmin); hi = Math.Min(hi, qmax);
        int n = Tensor.ElementCount(shape);
        if (t == ElementType.Int8)
        {
            var v = new sbyte[n];
            for (int i = 0; i < n; i++) v[i] = (sbyte)rng.Next(lo, hi + 1);
            return Tensor.From(v, shape);
        }
        var w = new short[n];
        for (int i = 0; i < n; i++) w[i] = (short)rng.Next(lo, hi + 1);
        return Tensor.From(w, shape);
    }

    public static long At(Tensor t, int i) => t.Type switch
    {
        ElementType.Int8 => t.ReadOnlySpan<sbyte>()[i],
        ElementType.Int16 => t.ReadOnlySpan<short>()[i],
        ElementType.Int32 => t.ReadOnlySpan<int>()[i],
        ElementType.Int64 => t.ReadOnlySpan<long>()[i],
        _ => throw new InvalidOperationException(t.Type.ToString()),
    };

    public static Tensor Ints(params int[] v) => Tensor.From(v, v.Length);

    /// <summary>Runs one quant.build node; every input is fed at run time.</summary>
    public static Tensor Run(string op, Tensor?[] inputs, int threads = 1, params AttributeValue[] attributes) =>
        ElementwiseReference.RunNode(op, 21, inputs, 1, threads, attributes, Domain)[0];

    /// <summary>The flat index into a broadcast input for output coordinates <paramref name="o"/>.</summary>
    public static int BroadcastIndex(int[] o, int[] shape)
    {
        int off = 0, rank = o.Length, r = shape.Length;
        for (int d = 0; d < r; d++)
        {
            int od = o[rank - r + d];
            off = off * shape[d] + (shape[d] == 1 ? 0 : od);
        }
        return off;
    }

    public static int[] Unravel(int flat, int[] shape)
    {
        var o = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--) { o[d] = flat % shape[d]; flat /= shape[d]; }
        return o;
    }
}
