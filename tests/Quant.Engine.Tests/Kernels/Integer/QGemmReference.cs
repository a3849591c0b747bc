using System.Numerics;
using Quant.Onnx;

namespace Quant.Engine.Tests.Kernels.Integer;

/// <summary>
/// Independent arithmetic for the QConv/QMatMul/QGemm tests: requantization by BigInteger (rne of acc·m / 2^n as an
/// exact rational, then saturation and clamp), random integer tensors, and the kernel setup of a node.
/// </summary>
internal static class QGemmReference
{
    public static int Rq(BigInteger acc, int m, int n, int zy, int lo, int hi, ElementType t)
    {
        var p = acc * m;
        var den = BigInteger.One << n;
        var q = BigInteger.DivRem(p, den, out var rem);
        if (rem < 0) { q -= 1; rem += den; }            // floor division
        var twice = rem * 2;
        if (twice > den || twice == den && !q.IsEven) q += 1; // ties to even
        var (qmin, qmax) = t == ElementType.Int8 ? (-128, 127) : (-32768, 32767);
        var v = BigInteger.Clamp(q + zy, qmin, qmax);
        return Math.Clamp((int)v, lo, hi);
    }

    public static Tensor Ints(ElementType t, int[] values, params int[] shape) => t == ElementType.Int8
        ? Tensor.From(values.Select(v => (sbyte)v).ToArray(), shape)
        : Tensor.From(values.Select(v => (short)v).ToArray(), shape);

    public static int[] Random(Random rng, int length, ElementType t, int spread = 0)
    {
        var (lo, hi) = t == ElementType.Int8 ? (-128, 127) : (-32768, 32767);
        if (spread > 0) (lo, hi) = (Math.Max(lo, -spread), Math.Min(hi, spread));
        return Enumerable.Range(0, length).Select(_ => rng.Next(lo, hi + 1)).ToArray();
    }

    public static int[] Values(Tensor t) => t.Type switch
    {
        ElementType.Int8 => t.ReadOnlySpan<sbyte>().ToArray().Select(v => (int)v).ToArray(),
        ElementType.Int16 => t.ReadOnlySpan<short>().ToArray().Select(v => (int)v).ToArray(),
        ElementType.Int32 => t.ReadOnlySpan<int>().ToArray(),
        _ => t.ReadOnlySpan<long>().ToArray().Select(v => (int)v).ToArray(),
    };

    /// <summary>Random (m, n) pairs as Mult gives them: m in [2^30, 2^31), n chosen so the outputs spread over the type.</summary>
    public static (int[] M, int[] N) Multipliers(Random rng, int count, int n)
    {
        var m = Enumerable.Range(0, count).Select(_ => rng.Next(1 << 30, int.MaxValue)).ToArray();
        var s = Enumerable.Range(0, count).Select(_ => n + rng.Next(0, 3)).ToArray();
        return (m, s);
    }

    public static KernelSetup Setup(Node node, Dictionary<string, Tensor> constants) =>
        new(node, 1, name => constants.GetValueOrDefault(name));

    public static void Sequential(int count, Action<int> body)
    {
        for (int i = 0; i < count; i++) body(i);
    }

    public static Node Node(string op, string[] inputs, params (string Name, object Value)[] attributes)
    {
        var n = new Node("q", op, "quant.build", inputs, ["y"]);
        foreach (var (name, value) in attributes)
            n.Set(value switch
            {
                long l => AttributeValue.Of(name, l),
                int i => AttributeValue.Of(name, (long)i),
                long[] ls => AttributeValue.Of(name, ls),
                string s => AttributeValue.Of(name, s),
                float f => AttributeValue.Of(name, f),
                _ => throw new ArgumentException(name),
            });
        return n;
    }
}
