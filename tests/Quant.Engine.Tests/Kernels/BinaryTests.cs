using Quant.Engine;
using Quant.Engine.Kernels;
using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.ElementwiseReference;

namespace Quant.Engine.Tests.Kernels;

public class BinaryTests
{
    public static readonly int[][][] Patterns =
    [
        [[2, 5, 7, 9], [2, 5, 7, 9]],
        [[2, 5, 7, 9], [1, 5, 1, 1]],   // per-channel
        [[1, 5, 1, 1], [2, 5, 7, 9]],
        [[2, 5, 7, 9], []],             // scalar
        [[], [2, 5, 7, 9]],
        [[2, 5, 7, 9], [9]],            // row bias
        [[4, 1], [1, 3]],               // outer product
        [[2, 5, 7, 9], [2, 1, 7, 9]],   // spatial mask
        [[3, 1, 4], [2, 1, 5, 1]],      // both broadcast in several places
        [[6, 1], [6, 1]],
        [[1], [1]],
        [[0, 3], [1, 3]],               // empty
        [[5, 3, 1], [5, 1, 1]],
    ];

    [Fact]
    public void Plan_walk_matches_index_arithmetic_for_every_split()
    {
        foreach (var p in Patterns)
        {
            var outShape = BroadcastShape(p[0], p[1]);
            var plan = BroadcastPlan.Create(p[0], p[1]);
            Assert.Equal(outShape, plan.OutShape);
            int n = plan.Length;
            foreach (var split in new[] { 1, 3, 16, 17, n })
            {
                var seen = new int[n];
                for (int s = 0; s < n; s += Math.Max(1, split))
                {
                    int e = Math.Min(n, s + Math.Max(1, split));
                    int expectPos = s;
                    plan.Walk(s, e, (o, len, offs) =>
                    {
                        Assert.Equal(expectPos, o);
                        expectPos += len;
                        for (int i = 0; i < len; i++)
                        {
                            seen[o + i]++;
                            for (int k = 0; k < 2; k++)
                                Assert.Equal(Offset(outShape, p[k], o + i), offs[k] + (plan.InnerSteps[k] ? i : 0));
                        }
                    });
                    Assert.Equal(e, expectPos);
                }
                Assert.All(seen, c => Assert.Equal(1, c));
            }
        }
    }

    [Fact]
    public void Plan_collapses_common_patterns_into_long_runs()
    {
        var perChannel = BroadcastPlan.Create([1, 16, 160, 160], [1, 16, 1, 1]);
        Assert.Equal(160 * 160, perChannel.Inner);
        Assert.True(perChannel.InnerSteps[0]);
        Assert.False(perChannel.InnerSteps[1]);
        var same = BroadcastPlan.Create([1, 16, 160, 160], [1, 16, 160, 160]);
        Assert.Equal(same.Length, same.Inner);
        Assert.True(same.IsDense(0) && same.IsDense(1));
        var scalar = BroadcastPlan.Create([1, 16, 160, 160], []);
        Assert.Equal(scalar.Length, scalar.Inner);
        Assert.True(scalar.IsScalar(1));
    }

    private static readonly (string Op, Func<float, float, float> F)[] FloatOps =
    [
        ("Add", (a, b) => a + b), ("Sub", (a, b) => a - b), ("Mul", (a, b) => a * b), ("Div", (a, b) => a / b),
        ("Max", (a, b) => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : Math.Max(a, b)),
        ("Min", (a, b) => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : Math.Min(a, b)),
    ];

    private static void CheckFloat(string op, Func<float, float, float> f, int[] sa, int[] sb, int seed, int threads)
    {
        var a = RandomTensor(seed, sa);
        var b = RandomTensor(seed + 1, sb, 0.5f, 3f);
        var y = RunNode(op, 14, [a, b], threads: threads)[0];
        var outShape = BroadcastShape(sa, sb);
        Assert.Equal(outShape, y.Shape);
        var av = a.ReadOnlySpan<float>(); var bv = b.ReadOnlySpan<float>(); var yv = y.ReadOnlySpan<float>();
        for (int i = 0; i < y.Length; i++)
        {
            float expect = f(av[Offset(outShape, sa, i)], bv[Offset(outShape, sb, i)]);
            Assert.True(expect.Equals(yv[i]), $"{op} {Broadcast.Format(sa)} {Broadcast.Format(sb)} [{i}]: {yv[i]} != {expect}");
        }
    }

    [Fact]
    public void Float_ops_match_scalar_reference_on_every_length()
    {
        foreach (var (op, f) in FloatOps)
            for (int n = 0; n <= 67; n++)
            {
                CheckFloat(op, f, [n], [n], n, 1);
                CheckFloat(op, f, [n], [], n, 1);
                CheckFloat(op, f, [], [n], n, 1);
                CheckFloat(op, f, [2, n], [n], n, 1);
                CheckFloat(op, f, [3, 1], [1, n], n, 1);
            }
    }

    [Fact]
    public void Float_ops_match_scalar_reference_on_broadcast_patterns_with_threads()
    {
        foreach (var (op, f) in FloatOps)
        {
            int seed = 7;
            foreach (var p in Patterns) CheckFloat(op, f, p[0], p[1], seed++, 2);
            // Large enough to be split into chunks, including a chunk boundary inside a run.
            CheckFloat(op, f, [1, 3, 170, 170], [1, 3, 1, 1], seed++, 2);
            CheckFloat(op, f, [1, 3, 170, 170], [1, 3, 170, 170], seed++, 2);
            CheckFloat(op, f, [], [2, 3, 100, 170], seed++, 2);
        }
    }

    [Fact]
    public void Integer_ops_are_exact_and_wrap_and_truncate()
    {
        var a = Tensor.From(new long[] { 7, -7, long.MaxValue, 10, 3, -9 }, 6);
        var b = Tensor.From(new long[] { 2 }, 1);
        Assert.Equal(new long[] { 9, -5, long.MinValue + 1, 12, 5, -7 }, Run1("Add", 14, a, b).ReadOnlySpan<long>().ToArray());
        Assert.Equal(new long[] { 3, -3, long.MaxValue / 2, 5, 1, -4 }, Run1("Div", 14, a, b).ReadOnlySpan<long>().ToArray());
        var i = Tensor.From(new int[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        var j = Tensor.From(new int[] { 10, 20, 30 }, 3);
        Assert.Equal(new int[] { 10, 40, 90, 40, 100, 180 }, Run1("Mul", 14, i, j).ReadOnlySpan<int>().ToArray());
        Assert.Equal(new int[] { -9, -18, -27, -6, -15, -24 }, Run1("Sub", 14, i, j).ReadOnlySpan<int>().ToArray());
        var u = Tensor.From(new byte[] { 250, 3 }, 2);
        Assert.Equal(new byte[] { 4, 9 }, Run1("Add", 14, u, Tensor.From(new byte[] { 10, 6 }, 2)).ReadOnlySpan<byte>().ToArray());
        var ex = Assert.Throws<EngineException>(() => Run1("Div", 14, i, Tensor.From(new int[] { 0 }, 1)));
        Assert.Contains("division by zero", ex.Message);
    }

    [Fact]
    public void Max_min_are_variadic_with_broadcasting()
    {
        var a = Tensor.From(new float[] { 1, 5, -2, 8 }, 2, 2);
        var b = Tensor.From(new float[] { 3, 0 }, 2);
        var c = Tensor.From(new float[] { 4 }, 1);
        Assert.Equal(new float[] { 4, 5, 4, 8 }, Run1("Max", 13, a, b, c).ReadOnlySpan<float>().ToArray());
        Assert.Equal(new float[] { 1, 0, -2, 0 }, Run1("Min", 13, a, b, c).ReadOnlySpan<float>().ToArray());
        Assert.Equal(new float[] { 1, 5, -2, 8 }, Run1("Max", 13, a).ReadOnlySpan<float>().ToArray());
        var n = Run1("Max", 13, Tensor.From(new float[] { float.NaN, 1 }, 2), Tensor.From(new float[] { 0, float.NaN }, 2));
        Assert.All(n.ReadOnlySpan<float>().ToArray(), v => Assert.True(float.IsNaN(v)));
    }

    [Fact]
    public void Incompatible_shapes_name_both_shapes()
    {
        var ex = Assert.Throws<EngineException>(() => Run1("Add", 14, RandomTensor(1, [2, 3]), RandomTensor(2, [4])));
        Assert.Contains("[2,3]", ex.Message);
        Assert.Contains("[4]", ex.Message);
    }

    [Fact]
    public void Pow_fast_exponents_and_mixed_types()
    {
        var x = RandomTensor(3, [67], 0.1f, 3f);
        foreach (var e in new[] { 0.5f, 1f, 2f, 3f, 1.7f, -1f })
        {
            var y = Run1("Pow", 15, x, Tensor.From(new[] { e })).ReadOnlySpan<float>();
            for (int i = 0; i < 67; i++)
            {
                float xi = x.ReadOnlySpan<float>()[i];
                float expect = e == 3f ? xi * xi * xi : MathF.Pow(xi, e);
                Assert.True(Ulps(expect, y[i]) <= 1, $"pow({xi}, {e}) = {y[i]}, expected {expect}");
            }
        }
        var yi = Run1("Pow", 15, Tensor.From(new long[] { 2, 3, -2 }, 3), Tensor.From(new float[] { 3, 0.5f, 3 }, 3));
        Assert.Equal(new long[] { 8, 1, -8 }, yi.ReadOnlySpan<long>().ToArray());
        var yf = Run1("Pow", 15, Tensor.From(new float[] { 2, 3 }, 2), Tensor.From(new int[] { 10, -1 }, 2));
        Assert.Equal(new float[] { 1024, 1f / 3 }, yf.ReadOnlySpan<float>().ToArray());
    }

    [Fact]
    public void Equal_and_where_broadcast_all_operands()
    {
        var a = Tensor.From(new long[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        var b = Tensor.From(new long[] { 2, 5 }, 2, 1);
        var eq = Run1("Equal", 13, a, b);
        Assert.Equal(new[] { false, true, false, false, true, false }, eq.ReadOnlySpan<bool>().ToArray());
        var nan = Run1("Equal", 13, Tensor.From(new float[] { float.NaN, -0f }, 2), Tensor.From(new float[] { float.NaN, 0f }, 2));
        Assert.Equal(new[] { false, true }, nan.ReadOnlySpan<bool>().ToArray());
        var bools = Run1("Equal", 13, Tensor.From(new[] { true, false }, 2), Tensor.From(new[] { true }, 1));
        Assert.Equal(new[] { true, false }, bools.ReadOnlySpan<bool>().ToArray());

        var w = Run1("Where", 16, eq, Tensor.From(new long[] { -1 }, 1), a);
        Assert.Equal(new long[] { 1, -1, 3, 4, -1, 6 }, w.ReadOnlySpan<long>().ToArray());
        var rowCond = Tensor.From(new[] { true, false }, 2, 1);
        var ws = Run1("Where", 16, rowCond, Tensor.From(new[] { "a", "b", "c" }, 3), Tensor.From(new[] { "z" }, 1));
        Assert.Equal(new[] { "a", "b", "c", "z", "z", "z" }, ws.Strings().ToArray());
        Assert.Equal([2, 3], ws.Shape);
    }

    [Fact]
    public void Broadcast_fixture_matches_onnx_runtime()
    {
        var inputs = new Dictionary<string, Tensor>
        {
            ["x"] = RandomTensor(11, [2, 5, 7, 9]),
            ["c"] = RandomTensor(12, [1, 5, 1, 1], 0.5f, 2f),
            ["row"] = RandomTensor(13, [9]),
            ["col"] = RandomTensor(14, [5, 1, 1]),
            ["s"] = Tensor.From(new[] { 1.75f }),
            ["a"] = RandomTensor(15, [4, 1]),
            ["b"] = RandomTensor(16, [1, 3]),
            ["sp"] = RandomTensor(17, [2, 1, 7, 9]),
        };
        CompareWithOrt("elem_broadcast_opset13.onnx", inputs, rtol: 0, atol: 0);
    }
}
