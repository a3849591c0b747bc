using System.Numerics;
using Quant.Engine.Kernels.Integer;
using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.Integer.IntegerReference;

namespace Quant.Engine.Tests.Kernels.Integer;

/// <summary>QTable (a gather) and QSoftmax (spec §10) against their definitions in exact arithmetic.</summary>
public class QTableSoftmaxTests
{
    private static AttributeValue A(string name, long v) => AttributeValue.Of(name, v);

    [Theory]
    [InlineData(ElementType.Int8, ElementType.Int8)]
    [InlineData(ElementType.Int8, ElementType.Float)]
    [InlineData(ElementType.Int16, ElementType.Int16)]
    [InlineData(ElementType.Int16, ElementType.Int8)]
    public void QTable_gathers_entry_q_minus_qmin(ElementType xt, ElementType tt)
    {
        var rng = new Random((int)xt * 10 + (int)tt);
        int entries = xt == ElementType.Int8 ? 256 : 65536;
        Tensor table = tt switch
        {
            ElementType.Int8 => Tensor.From(Enumerable.Range(0, entries).Select(_ => (sbyte)rng.Next(-128, 128)).ToArray(), entries),
            ElementType.Int16 => Tensor.From(Enumerable.Range(0, entries).Select(_ => (short)rng.Next(-32768, 32768)).ToArray(), entries),
            _ => Tensor.From(Enumerable.Range(0, entries).Select(_ => (float)rng.NextDouble()).ToArray(), entries),
        };
        var x = RandomInts(rng, xt, [3, 1001]);
        var y = Run("QTable", [x, table], 2);
        Assert.Equal(tt, y.Type);
        int qmin = Range(xt).Min;
        for (int i = 0; i < x.Length; i++)
        {
            int k = (int)At(x, i) - qmin;
            if (tt == ElementType.Float) Assert.Equal(table.ReadOnlySpan<float>()[k], y.ReadOnlySpan<float>()[i]);
            else Assert.Equal(At(table, k), At(y, i));
        }
    }

    /// <summary>Spec §10 in BigInteger: exp table from double exp, exact sums, the row reciprocal, Rq.</summary>
    private static long[] SoftmaxRef(long[] row, int[] table, int m, int n, int zy, ElementType to)
    {
        long max = row.Max();
        BigInteger s = 0;
        foreach (var q in row) s += max - q < table.Length ? table[max - q] : 0;
        var r = (BigInteger.One << 62) / s;
        return row.Select(q =>
        {
            BigInteger e = max - q < table.Length ? table[max - q] : 0;
            return Rq(RneShift(e * r, 31), m, n, zy, to);
        }).ToArray();
    }

    public static int[] ExpTable(float sx, int entries)
    {
        var e = new List<int>();
        for (int d = 0; d < entries; d++)
        {
            long v = (long)Math.Round(Math.ScaleB(Math.Exp(-(double)sx * d), 30), MidpointRounding.ToEven);
            if (v == 0) break;
            e.Add((int)v);
        }
        return [.. e];
    }

    [Theory]
    [InlineData(ElementType.Int8, ElementType.Int8, 2, 0.08f)]
    [InlineData(ElementType.Int8, ElementType.Int8, 1, 0.5f)]
    [InlineData(ElementType.Int16, ElementType.Int16, 1, 0.0004f)]
    [InlineData(ElementType.Int8, ElementType.Int16, 0, 0.02f)]
    // int8 along the last axis takes the counting row path; 700 is past its 256 distinct results (a long row like
    // rec's 6625 classes), 1 a single element.
    [InlineData(ElementType.Int8, ElementType.Int8, 2, 0.03f, 700)]
    [InlineData(ElementType.Int8, ElementType.Int16, 2, 0.05f, 301)]
    [InlineData(ElementType.Int8, ElementType.Int8, 2, 0.05f, 1)]
    public void QSoftmax_equals_the_spec_algorithm_along_any_axis(ElementType xt, ElementType to, int axis, float sx, int last = 29)
    {
        var rng = new Random(axis + (int)xt + last);
        int[] shape = [3, 7, last];
        var x = RandomInts(rng, xt, shape);
        var table = ExpTable(sx, xt == ElementType.Int8 ? 256 : 65536);
        float sy = to == ElementType.Int8 ? 1f / 127 : 1f / 32767;
        var (m, n) = Requantize.Mult(Math.ScaleB(1.0, -31) / sy);
        var y = Run("QSoftmax", [x, Ints(table), Ints(m), Ints(n)], 2, A("to", (long)to), A("axis", axis));
        int len = shape[axis];
        int inner = shape.Skip(axis + 1).Aggregate(1, (p, v) => p * v);
        int rows = x.Length / len;
        for (int row = 0; row < rows; row++)
        {
            int start = row / inner * len * inner + row % inner;
            var q = Enumerable.Range(0, len).Select(i => At(x, start + i * inner)).ToArray();
            var expected = SoftmaxRef(q, table, m, n, 0, to);
            for (int i = 0; i < len; i++) Assert.Equal(expected[i], At(y, start + i * inner));
            // And it is a softmax: within 1 LSB of the exact probability.
            var p = q.Select(v => Math.Exp(sx * (v - q.Max()))).ToArray();
            for (int i = 0; i < len; i++) Assert.True(Math.Abs(expected[i] * sy - p[i] / p.Sum()) <= 1.01 * sy, $"row {row} element {i}");
        }
    }
}

/// <summary>The AVX-512 VBMI int8 table gather equals the scalar gather on odd sizes and offsets.</summary>
public class QTableVectorTests
{
    [Fact]
    public void Vector_gather_equals_scalar_for_lengths_0_to_200()
    {
        var rng = new Random(17);
        var table = Enumerable.Range(0, 256).Select(_ => (sbyte)rng.Next(-128, 128)).ToArray();
        for (int len = 0; len <= 200; len++)
        {
            var x = Tensor.From(Enumerable.Range(0, len + 3).Select(_ => (sbyte)rng.Next(-128, 128)).ToArray(), len + 3);
            var fast = new sbyte[len + 3];
            var slow = new sbyte[len + 3];
            Quant.Engine.Kernels.Integer.QTableKernels.Gather<sbyte>(x, table, fast, 3, len + 3, vector: true);
            Quant.Engine.Kernels.Integer.QTableKernels.Gather<sbyte>(x, table, slow, 3, len + 3, vector: false);
            for (int i = 3; i < len + 3; i++) Assert.Equal(table[x.ReadOnlySpan<sbyte>()[i] + 128], slow[i]);
            Assert.Equal(slow, fast);
        }
    }
}
