using System.Numerics;
using Quant.Engine.Kernels.Integer;
using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.Integer.QGemmReference;

namespace Quant.Engine.Tests.Kernels.Integer;

/// <summary>
/// QMatMul (weights or two activations, broadcasting, zero points) and QGemm (transA/transB, bias): the int64
/// reference and the VNNI paths equal an independent BigInteger computation, on odd sizes and both output types.
/// </summary>
public class QMatMulTests
{
    private static void Check(QMatMulPlan plan, Tensor a, Tensor b, int[] expected, int[] shape)
    {
        foreach (var vector in new[] { false, true })
        {
            Assert.Equal(shape, plan.OutputShape(a, b, m => new Exception(m)));
            var y = Tensor.Zeros(plan.Output.To, shape);
            plan.Run(a, b, y, vector, Sequential);
            Assert.Equal(expected, Values(y));
        }
    }

    [Theory]
    [InlineData(ElementType.Int8, ElementType.Int8, ElementType.Int8, false)]
    [InlineData(ElementType.Int16, ElementType.Int8, ElementType.Int16, false)]
    [InlineData(ElementType.Int16, ElementType.Int16, ElementType.Int16, true)]
    [InlineData(ElementType.Int8, ElementType.Int8, ElementType.Int16, true)]
    public void Weights_per_column_equal_the_exact_result(ElementType aType, ElementType bType, ElementType to, bool wide)
    {
        var rng = new Random((int)aType * 10 + (int)bType);
        int batch = 3, m = 5, k = 37, n = 21, za = aType == ElementType.Int8 ? -9 : 250;
        var a = Random(rng, batch * m * k, aType, wide ? 0 : 3000);
        var b = Random(rng, k * n, bType, wide ? 0 : 3000);
        var (mm, nn) = Multipliers(rng, n, aType == ElementType.Int16 || bType == ElementType.Int16 ? 42 : 34);
        var consts = new Dictionary<string, Tensor> { ["b"] = Ints(bType, b, k, n), ["m"] = Tensor.From(mm, n), ["n"] = Tensor.From(nn, n) };
        var node = Node("QMatMul", ["a", "b", "m", "n"], ("a_zero_point", za), ("to", (int)to), ("y_zero_point", 1), ("acc_bits", wide ? 64 : 32));
        var plan = new QMatMulPlan(Setup(node, consts), gemm: false);
        var (qmin, qmax) = to == ElementType.Int8 ? (-128, 127) : (-32768, 32767);
        var expected = new int[batch * m * n];
        for (int t = 0; t < batch * m; t++)
            for (int j = 0; j < n; j++)
            {
                BigInteger acc = 0;
                for (int i = 0; i < k; i++) acc += (BigInteger)(a[t * k + i] - za) * b[i * n + j];
                expected[t * n + j] = Rq(acc, mm[j], nn[j], 1, qmin, qmax, to);
            }
        Check(plan, Ints(aType, a, batch, m, k), consts["b"], expected, [batch, m, n]);
    }

    [Fact]
    public void Two_activations_broadcast_with_zero_points_on_both_sides()
    {
        var rng = new Random(9);
        int m = 7, k = 11, n = 13, za = 3, zb = -5;
        // A [2, 1, m, k] and B [3, k, n] broadcast to [2, 3, m, n].
        var a = Random(rng, 2 * m * k, ElementType.Int8);
        var b = Random(rng, 3 * k * n, ElementType.Int8);
        var consts = new Dictionary<string, Tensor> { ["m"] = Tensor.From(new[] { 1_500_000_000 }, 1), ["n"] = Tensor.From(new[] { 40 }, 1) };
        var node = Node("QMatMul", ["a", "b", "m", "n"], ("a_zero_point", za), ("b_zero_point", zb), ("to", 3), ("clamp_min", -100), ("clamp_max", 90));
        var plan = new QMatMulPlan(Setup(node, consts), gemm: false);
        var expected = new int[2 * 3 * m * n];
        for (int p = 0; p < 2; p++)
            for (int q = 0; q < 3; q++)
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++)
                    {
                        BigInteger acc = 0;
                        for (int t = 0; t < k; t++) acc += (BigInteger)(a[(p * m + i) * k + t] - za) * (b[(q * k + t) * n + j] - zb);
                        expected[((p * 3 + q) * m + i) * n + j] = Rq(acc, 1_500_000_000, 40, 0, -100, 90, ElementType.Int8);
                    }
        Check(plan, Ints(ElementType.Int8, a, 2, 1, m, k), Ints(ElementType.Int8, b, 3, k, n), expected, [2, 3, m, n]);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    [InlineData(false, true)]
    public void Gemm_with_transposes_and_bias_equals_the_exact_result(bool transA, bool transB)
    {
        var rng = new Random(transA ? 1 : 2);
        int m = 6, k = 29, n = 17, za = -2;
        var a = Random(rng, m * k, ElementType.Int8);
        var b = Random(rng, k * n, ElementType.Int8);
        var c = Enumerable.Range(0, n).Select(_ => rng.Next(-100000, 100000)).ToArray();
        var (mm, nn) = Multipliers(rng, n, 34);
        // Stored layouts: A [k, m] with transA, B [n, k] with transB.
        int[] aStored = transA ? Enumerable.Range(0, m * k).Select(i => a[i % m * k + i / m]).ToArray() : a;
        int[] bStored = transB ? Enumerable.Range(0, k * n).Select(i => b[i % k * n + i / k]).ToArray() : b;
        var consts = new Dictionary<string, Tensor>
        {
            ["b"] = transB ? Ints(ElementType.Int8, bStored, n, k) : Ints(ElementType.Int8, bStored, k, n),
            ["c"] = Tensor.From(c, n), ["m"] = Tensor.From(mm, n), ["n"] = Tensor.From(nn, n),
        };
        var node = Node("QGemm", ["a", "b", "c", "m", "n"], ("transA", transA ? 1 : 0), ("transB", transB ? 1 : 0), ("a_zero_point", za), ("to", 3));
        var plan = new QMatMulPlan(Setup(node, consts), gemm: true);
        var expected = new int[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                BigInteger acc = c[j];
                for (int t = 0; t < k; t++) acc += (BigInteger)(a[i * k + t] - za) * b[t * n + j];
                expected[i * n + j] = Rq(acc, mm[j], nn[j], 0, -128, 127, ElementType.Int8);
            }
        Check(plan, transA ? Ints(ElementType.Int8, aStored, k, m) : Ints(ElementType.Int8, aStored, m, k), consts["b"], expected, [m, n]);
    }
}
