using Quant.Onnx;

namespace Quant.Engine.Tests.Kernels;

public class MatMulTests
{
    /// <summary>numpy.matmul semantics by explicit index arithmetic, double accumulation.</summary>
    private static (float[] Data, int[] Shape) Reference(Tensor a, Tensor b)
    {
        var aShape = a.Rank == 1 ? new[] { 1, a.Shape[0] } : a.Shape;
        var bShape = b.Rank == 1 ? new[] { b.Shape[0], 1 } : b.Shape;
        int m = aShape[^2], k = aShape[^1], n = bShape[^1];
        var ba = aShape[..^2];
        var bb = bShape[..^2];
        int br = Math.Max(ba.Length, bb.Length);
        var batch = new int[br];
        for (int i = 0; i < br; i++)
        {
            int da = i >= br - ba.Length ? ba[i - (br - ba.Length)] : 1;
            int db = i >= br - bb.Length ? bb[i - (br - bb.Length)] : 1;
            batch[i] = Math.Max(da, db);
        }
        int count = ConvReference.Prod(batch);
        var y = new float[count * m * n];
        var pos = new int[br];
        var av = a.ReadOnlySpan<float>().ToArray();
        var bv = b.ReadOnlySpan<float>().ToArray();
        for (int t = 0; t < count; t++)
        {
            ConvReference.Unflatten(t, batch, pos);
            int ia = 0, ib = 0;
            for (int i = 0; i < br; i++)
            {
                if (i >= br - ba.Length) { int d = ba[i - (br - ba.Length)]; ia = ia * d + (d == 1 ? 0 : pos[i]); }
                if (i >= br - bb.Length) { int d = bb[i - (br - bb.Length)]; ib = ib * d + (d == 1 ? 0 : pos[i]); }
            }
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double s = 0;
                    for (int p = 0; p < k; p++) s += (double)av[(ia * m + i) * k + p] * bv[(ib * k + p) * n + j];
                    y[(t * m + i) * n + j] = (float)s;
                }
        }
        var shape = new List<int>(batch);
        if (a.Rank > 1) shape.Add(m);
        if (b.Rank > 1) shape.Add(n);
        return (y, shape.ToArray());
    }

    public static IEnumerable<object[]> Shapes() =>
    [
        [new[] { 5 }, new[] { 5 }],
        [new[] { 7 }, new[] { 7, 3 }],
        [new[] { 4, 7 }, new[] { 7 }],
        [new[] { 33, 67 }, new[] { 67, 45 }],
        [new[] { 2, 3, 9, 17 }, new[] { 17, 40 }],
        [new[] { 2, 1, 9, 17 }, new[] { 3, 17, 5 }],
        [new[] { 6, 20 }, new[] { 4, 20, 33 }],
        [new[] { 3, 1, 4, 8 }, new[] { 1, 5, 8, 2 }],
        [new[] { 2, 65, 1 }, new[] { 2, 1, 66 }],
        [new[] { 3, 0, 4 }, new[] { 4, 6 }],
        [new[] { 3, 5 }, new[] { 5, 0 }],
        [new[] { 2, 4, 0 }, new[] { 2, 0, 3 }],
    ];

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Broadcasting_matmul_matches_numpy_semantics(int[] aShape, int[] bShape)
    {
        var rng = new Random(aShape.Sum() * 31 + bShape.Sum());
        var a = GemmTestUtil.RandomTensor(rng, aShape);
        var b = GemmTestUtil.RandomTensor(rng, bShape);
        var (expected, shape) = Reference(a, b);
        foreach (var constant in new[] { null, new HashSet<int> { 1 } })
        {
            var y = GemmTestUtil.RunNode("MatMul", [], [a, b], constant);
            Assert.Equal(shape, y.Shape);
            GemmTestUtil.AssertClose(expected, y.ReadOnlySpan<float>(), $"constant B={constant is not null}");
        }
    }

    [Fact]
    public void Incompatible_inner_dimensions_are_reported()
    {
        var rng = new Random(1);
        var e = Assert.Throws<EngineException>(() => GemmTestUtil.RunNode("MatMul", [], [GemmTestUtil.RandomTensor(rng, 2, 3), GemmTestUtil.RandomTensor(rng, 4, 5)]));
        Assert.Contains("A has 3 columns but B has 4 rows", e.Message);
    }

    [Theory]
    [InlineData(false, false, 1, 1, "none")]
    [InlineData(true, false, 0.5, 2, "row")]
    [InlineData(false, true, 1, 0.25, "col")]
    [InlineData(true, true, -1.5, 1, "full")]
    [InlineData(true, true, 2, 3, "scalar")]
    [InlineData(false, true, 1, 1, "rank0")]
    public void Gemm_matches_the_definition(bool transA, bool transB, float alpha, float beta, string cKind)
    {
        var rng = new Random(cKind.Length * 7 + (transA ? 1 : 0) + (transB ? 2 : 0));
        int m = 19, n = 37, k = 45;
        var a = GemmTestUtil.RandomTensor(rng, transA ? [k, m] : [m, k]);
        var b = GemmTestUtil.RandomTensor(rng, transB ? [n, k] : [k, n]);
        Tensor? c = cKind switch
        {
            "row" => GemmTestUtil.RandomTensor(rng, n),
            "col" => GemmTestUtil.RandomTensor(rng, m, 1),
            "full" => GemmTestUtil.RandomTensor(rng, m, n),
            "scalar" => GemmTestUtil.RandomTensor(rng, 1),
            "rank0" => Tensor.From([0.75f]),
            _ => null,
        };
        var av = a.ReadOnlySpan<float>().ToArray();
        var bv = b.ReadOnlySpan<float>().ToArray();
        var cv = c?.ReadOnlySpan<float>().ToArray();
        var expected = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int p = 0; p < k; p++)
                    s += (double)(transA ? av[p * m + i] : av[i * k + p]) * (transB ? bv[j * k + p] : bv[p * n + j]);
                double cval = cKind switch
                {
                    "row" => cv![j], "col" => cv![i], "full" => cv![i * n + j], "scalar" or "rank0" => cv![0], _ => 0,
                };
                expected[i * n + j] = (float)(alpha * s + beta * cval);
            }
        var attrs = new[]
        {
            AttributeValue.Of("transA", transA ? 1L : 0L), AttributeValue.Of("transB", transB ? 1L : 0L),
            AttributeValue.Of("alpha", alpha), AttributeValue.Of("beta", beta),
        };
        foreach (var constant in new[] { null, new HashSet<int> { 1, 2 } })
        {
            var y = GemmTestUtil.RunNode("Gemm", attrs, [a, b, c], constant);
            Assert.Equal([m, n], y.Shape);
            GemmTestUtil.AssertClose(expected, y.ReadOnlySpan<float>(), $"constant={constant is not null}");
        }
    }
}
