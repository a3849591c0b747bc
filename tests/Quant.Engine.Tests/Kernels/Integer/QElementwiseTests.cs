using System.Numerics;
using Quant.Engine.Kernels.Integer;
using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.Integer.IntegerReference;

namespace Quant.Engine.Tests.Kernels.Integer;

/// <summary>QRequantize, QAdd/QSub, QMul and QDiv run by the engine against the spec formulas in BigInteger.</summary>
public class QElementwiseTests
{
    private static AttributeValue A(string name, long v) => AttributeValue.Of(name, v);

    [Theory]
    [InlineData(ElementType.Int8, ElementType.Int8, 1)]
    [InlineData(ElementType.Int16, ElementType.Int8, 2)]
    [InlineData(ElementType.Int8, ElementType.Int16, 3)]
    [InlineData(ElementType.Int32, ElementType.Int8, 4)]
    [InlineData(ElementType.Int64, ElementType.Int16, 5)]
    public void QRequantize_per_tensor_and_per_channel_equal_exact_Rq(ElementType xt, ElementType to, int seed)
    {
        var rng = new Random(seed);
        foreach (bool perChannel in new[] { false, true })
        {
            int[] shape = [2, 5, 3, 37];
            int count = Tensor.ElementCount(shape);
            Tensor x = xt switch
            {
                ElementType.Int32 => Tensor.From(Enumerable.Range(0, count).Select(_ => rng.Next(int.MinValue, int.MaxValue) >> rng.Next(0, 20)).ToArray(), shape),
                ElementType.Int64 => Tensor.From(Enumerable.Range(0, count).Select(_ => rng.NextInt64(-(1L << 40), 1L << 40)).ToArray(), shape),
                _ => RandomInts(rng, xt, shape),
            };
            int channels = perChannel ? shape[1] : 1;
            var mn = Enumerable.Range(0, channels).Select(_ => Requantize.Mult(Math.Exp(rng.NextDouble() * 20 - (xt is ElementType.Int32 or ElementType.Int64 ? 28 : 6)))).ToArray();
            int zx = xt is ElementType.Int8 or ElementType.Int16 ? rng.Next(-10, 10) : xt == ElementType.Int32 ? rng.Next(-10, 10) : 0;
            int zy = rng.Next(-5, 5);
            int lo = zy - 3, hi = to == ElementType.Int8 ? 100 : 30000;
            var y = Run("QRequantize", [x, Ints(mn.Select(p => p.M).ToArray()), Ints(mn.Select(p => p.N).ToArray())], 2,
                A("to", (long)to), A("x_zero_point", zx), A("y_zero_point", zy), A("clamp_min", lo), A("clamp_max", hi), A("axis", 1));
            Assert.Equal(to, y.Type);
            for (int i = 0; i < count; i++)
            {
                int c = perChannel ? i / (3 * 37) % 5 : 0;
                Assert.Equal(Rq(At(x, i) - (BigInteger)zx, mn[c].M, mn[c].N, zy, to, lo, hi), At(y, i));
            }
        }
    }

    public static TheoryData<int[], int[]> Shapes => new()
    {
        { [3, 67], [3, 67] },
        { [2, 4, 5, 7], [1, 4, 1, 1] },
        { [1], [3, 1, 9] },
        { [5, 1], [1, 33] },
        { [1, 1029], [1, 1029] },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void QAdd_and_QSub_equal_one_rounding_of_the_exact_sum(int[] sa, int[] sb)
    {
        var rng = new Random(sa.Sum() + sb.Length);
        foreach (var (ta, tb, to) in new[] { (ElementType.Int8, ElementType.Int8, ElementType.Int8), (ElementType.Int16, ElementType.Int8, ElementType.Int16), (ElementType.Int16, ElementType.Int16, ElementType.Int8) })
        {
            foreach (var op in new[] { "QAdd", "QSub" })
            {
                var a = RandomInts(rng, ta, sa);
                var b = RandomInts(rng, tb, sb);
                var (big, n) = Requantize.Mult(Math.Exp(rng.NextDouble() * 8 - 6));
                long am = big, bm = (long)Math.Round(big * rng.NextDouble());
                int za = rng.Next(-9, 9), zb = rng.Next(-9, 9), zy = rng.Next(-9, 9);
                var y = Run(op, [a, b], 2, A("to", (long)to), A("a_multiplier", am), A("b_multiplier", bm), A("shift", n),
                    A("a_zero_point", za), A("b_zero_point", zb), A("y_zero_point", zy));
                var outShape = y.Shape;
                for (int i = 0; i < y.Length; i++)
                {
                    var o = Unravel(i, outShape);
                    BigInteger va = At(a, BroadcastIndex(o, sa)) - za, vb = At(b, BroadcastIndex(o, sb)) - zb;
                    var v = am * va + (op == "QAdd" ? bm : -bm) * vb;
                    Assert.Equal(Rq(v, 1, n, zy, to), At(y, i));
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void QMul_equals_Rq_of_the_exact_product(int[] sa, int[] sb)
    {
        var rng = new Random(sa.Sum() * 7 + sb.Length);
        foreach (var (ta, tb, za, zb) in new[] { (ElementType.Int8, ElementType.Int8, 3, -7), (ElementType.Int16, ElementType.Int16, 0, 0), (ElementType.Int16, ElementType.Int16, 20000, -30000), (ElementType.Int16, ElementType.Int8, -5, 0) })
        {
            var a = RandomInts(rng, ta, sa);
            var b = RandomInts(rng, tb, sb);
            var (m, n) = Requantize.Mult(Math.Exp(rng.NextDouble() * 10 - 16));
            int zy = rng.Next(-9, 9);
            var to = ta == ElementType.Int8 ? ElementType.Int8 : ElementType.Int16;
            var y = Run("QMul", [a, b, Ints(m), Ints(n)], 2, A("to", (long)to), A("a_zero_point", za), A("b_zero_point", zb), A("y_zero_point", zy));
            for (int i = 0; i < y.Length; i++)
            {
                var o = Unravel(i, y.Shape);
                BigInteger v = (At(a, BroadcastIndex(o, sa)) - za) * (BigInteger)(At(b, BroadcastIndex(o, sb)) - zb);
                Assert.Equal(Rq(v, m, n, zy, to), At(y, i));
            }
        }
    }

    [Fact]
    public void QDiv_uses_the_divisor_table_and_the_zero_divisor_rule()
    {
        var rng = new Random(9);
        var m = new int[256];
        var n = new int[256];
        int zb = 4;
        for (int q = -128; q < 128; q++)
        {
            if (q == zb) { m[q + 128] = 0; n[q + 128] = -1; continue; }
            var (mm, nn) = Requantize.Mult(Math.Abs(0.37 / (q - zb)));
            m[q + 128] = q > zb ? mm : -mm;
            n[q + 128] = nn;
        }
        int za = -3, zy = 2;
        foreach (var (sa, sb) in new (int[], int[])[] { ([4, 67], [4, 67]), ([3, 41], [1]), ([2, 9], [9]) })
        {
            var a = RandomInts(rng, ElementType.Int8, sa);
            var b = RandomInts(rng, ElementType.Int8, sb);
            // Make sure the zero divisor and a zero dividend occur.
            b.Span<sbyte>()[0] = (sbyte)zb;
            a.Span<sbyte>()[0] = (sbyte)za;
            var y = Run("QDiv", [a, b, Ints(m), Ints(n)], 2, A("to", (long)ElementType.Int8), A("a_zero_point", za), A("b_zero_point", zb), A("y_zero_point", zy));
            for (int i = 0; i < y.Length; i++)
            {
                var o = Unravel(i, y.Shape);
                long qa = At(a, BroadcastIndex(o, sa)), qb = At(b, BroadcastIndex(o, sb));
                long expected = qb == zb ? (qa > za ? 127 : -128) : Rq(qa - za, m[qb + 128], n[qb + 128], zy, ElementType.Int8);
                Assert.Equal(expected, At(y, i));
            }
        }
    }

    [Fact]
    public void Malformed_parameters_are_named_errors()
    {
        var x = Tensor.From(new sbyte[] { 1, 2 }, 2);
        var e = Assert.Throws<EngineException>(() => Run("QRequantize", [x, Ints(1 << 30), Ints(95)], 1, A("to", 3)));
        Assert.Contains("shift[0] = 95", e.Message);
        e = Assert.Throws<EngineException>(() => Run("QRequantize", [x, Ints(1 << 30), Ints(3)], 1, A("to", 1)));
        Assert.Contains("'to' is float", e.Message);
        e = Assert.Throws<EngineException>(() => Run("QAdd", [x, x], 1, A("to", 3), A("a_multiplier", 1 << 30)));
        Assert.Contains("b_multiplier", e.Message);
        e = Assert.Throws<EngineException>(() => Run("QSoftmax", [x, Ints(5, 3), Ints(1 << 30), Ints(40)], 1, A("to", 3)));
        Assert.Contains("E[0] = 2^30", e.Message);
        e = Assert.Throws<EngineException>(() => Run("QDiv", [x, x, Ints(1 << 30), Ints(30)], 1, A("to", 3)));
        Assert.Contains("needs 256", e.Message);
        var cube = Tensor.From(new sbyte[8], 2, 2, 2);
        e = Assert.Throws<EngineException>(() => Run("QResize", [cube, null, Tensor.From(new float[] { 2, 2, 2 }, 3)], 1, A("to", 3),
            AttributeValue.Of("mode", "linear"), AttributeValue.Of("x_scale", 0.1f), AttributeValue.Of("y_scale", 0.1f)));
        Assert.Contains("at most 2", e.Message);
    }
}

/// <summary>Spec §14: the integer kernels give the same bytes for every thread count (large inputs are split into chunks).</summary>
public class QuantBuildThreadTests
{
    private static AttributeValue A(string name, long v) => AttributeValue.Of(name, v);

    [Fact]
    public void One_and_four_threads_give_identical_bytes()
    {
        var rng = new Random(31);
        var a = RandomInts(rng, ElementType.Int8, [1, 64, 40, 80]);
        var b = RandomInts(rng, ElementType.Int8, [1, 64, 40, 80]);
        var gate = RandomInts(rng, ElementType.Int8, [1, 64, 1, 1]);
        var (m, n) = Requantize.Mult(0.37);
        var table = Tensor.From(Enumerable.Range(0, 256).Select(i => (sbyte)(i / 2 - 64)).ToArray(), 256);
        var cases = new (string Op, Tensor?[] Inputs, AttributeValue[] Attrs)[]
        {
            ("QAdd", [a, b], [A("to", 3), A("a_multiplier", 1 << 30), A("b_multiplier", 700_000_000), A("shift", 31)]),
            ("QMul", [a, gate, Ints(m), Ints(n)], [A("to", 3)]),
            ("QRequantize", [a, Ints(m), Ints(n)], [A("to", 5)]),
            ("QTable", [a, table], []),
            ("QGlobalAveragePool", [a], [A("to", 3), AttributeValue.Of("x_scale", 0.1f), AttributeValue.Of("y_scale", 0.03f)]),
        };
        foreach (var (op, inputs, attrs) in cases)
        {
            var one = Run(op, inputs, 1, attrs);
            var four = Run(op, inputs, 4, attrs);
            Assert.True(one.Bytes().SequenceEqual(four.Bytes()), $"{op}: 1 and 4 threads differ");
        }
    }
}
