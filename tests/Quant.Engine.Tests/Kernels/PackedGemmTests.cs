using Quant.Engine.Kernels.Common;
using Quant.Onnx;

namespace Quant.Engine.Tests.Kernels;

/// <summary>Helpers for the GEMM/conv tests: single-node sessions, kernel contexts and random data.</summary>
internal static class GemmTestUtil
{
    public static float[] Random(Random rng, int n, float scale = 1f)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    public static Tensor RandomTensor(Random rng, params int[] shape) => Tensor.From(Random(rng, Tensor.ElementCount(shape)), shape);

    public static KernelContext Context(int threads) =>
        new(new Node("t", "Test", "", [], []), [], [], new BufferPool(), threads);

    /// <summary>Runs one node. Inputs whose index is in <paramref name="constant"/> become initializers (weights path).</summary>
    public static Tensor RunNode(string op, IEnumerable<AttributeValue> attributes, Tensor?[] inputs, ISet<int>? constant = null,
        int threads = 2, long opset = 13)
    {
        var g = new Graph();
        var names = new List<string>();
        for (int i = 0; i < inputs.Length; i++)
        {
            if (inputs[i] is not { } t) { names.Add(""); continue; }
            var name = $"in{i}";
            names.Add(name);
            if (constant?.Contains(i) == true) g.Initializers[name] = t.ToData(name);
            else g.Inputs.Add(new ValueInfo(name, t.Type, t.Shape.Select(d => (Dim)d).ToArray()));
        }
        var node = new Node("n", op, "", names, ["y"]);
        foreach (var a in attributes) node.Set(a);
        g.Nodes.Add(node);
        g.Outputs.Add(new ValueInfo("y", ElementType.Float, null));
        var model = new OnnxModel(g);
        model.Opsets[""] = opset;
        var session = new InferenceSession(model, new SessionOptions { Threads = threads });
        var feeds = new Dictionary<string, Tensor>();
        for (int i = 0; i < inputs.Length; i++)
            if (inputs[i] is { } t && constant?.Contains(i) != true) feeds[$"in{i}"] = t;
        return session.Run(feeds)["y"];
    }

    /// <summary>|a - e| &lt;= atol + rtol·|e| element-wise, with a message naming the first offender.</summary>
    public static void AssertClose(float[] expected, ReadOnlySpan<float> actual, string what, double rtol = 1e-4, double atol = 1e-4)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: {actual.Length} elements, expected {expected.Length}");
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs(expected[i] - actual[i]);
            if (!(d <= atol + rtol * Math.Abs(expected[i])))
                Assert.Fail($"{what}: element {i} is {actual[i]}, expected {expected[i]}");
        }
    }

    public static void AssertBitwiseEqual(ReadOnlySpan<float> a, ReadOnlySpan<float> b, string what)
    {
        Assert.Equal(a.Length, b.Length);
        for (int i = 0; i < a.Length; i++)
            if (BitConverter.SingleToInt32Bits(a[i]) != BitConverter.SingleToInt32Bits(b[i]))
                Assert.Fail($"{what}: element {i} differs: {a[i]} vs {b[i]}");
    }

    /// <summary>Reference C = init + A·B in double, A[i,k] = a[i*lda + k], B[k,j] = b[k*ldb + j].</summary>
    public static float[] RefGemm(int m, int n, int k, float[] a, float[] b, float[]? init = null, float[]? rowBias = null)
    {
        var c = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = init is not null ? init[i * n + j] : rowBias is not null ? rowBias[i] : 0;
                for (int p = 0; p < k; p++) s += (double)a[i * k + p] * b[p * n + j];
                c[i * n + j] = (float)s;
            }
        return c;
    }

    public static IEnumerable<GemmIsa> SupportedIsas() =>
        Enum.GetValues<GemmIsa>().Where(PackedGemm.IsSupported);
}

public class PackedGemmTests
{
    private static float[] RunGemm(PackedGemm gemm, KernelContext? ctx, int m, int n, int k, float[] a, float[] b,
        float[]? init, float[]? bias, bool prepack)
    {
        var packedA = gemm.PackA(a, 0, k, 1, m, k);
        float[]? padded = null;
        if (bias is not null)
        {
            padded = new float[gemm.PaddedRows(m) + 3];
            bias.CopyTo(padded, 3);
        }
        var c = init is not null ? (float[])init.Clone() : Enumerable.Repeat(float.NaN, m * n).ToArray();
        GemmBSource src = prepack ? new PrepackedB(gemm, b, 0, n, 1, k, n) : new StridedB(b, 0, n, 1);
        gemm.Multiply(ctx, m, n, k, packedA, 0, src, c, 0, n, padded, 3, accumulate: init is not null);
        return c;
    }

    public static IEnumerable<object[]> Isas() => GemmTestUtil.SupportedIsas().Select(i => new object[] { i.ToString() });

    [Theory]
    [MemberData(nameof(Isas))]
    public void Every_size_from_1_to_67_matches_the_reference(string isaName)
    {
        var isa = Enum.Parse<GemmIsa>(isaName);
        var gemm = new PackedGemm(isa);
        var rng = new Random(1234 + (int)isa);
        var ctx = GemmTestUtil.Context(2);
        for (int s = 1; s <= 67; s++)
        {
            foreach (var (m, n, k) in new[] { (s, rng.Next(1, 68), rng.Next(1, 68)), (rng.Next(1, 68), s, rng.Next(1, 68)), (rng.Next(1, 68), rng.Next(1, 68), s), (s, s, s) })
            {
                var a = GemmTestUtil.Random(rng, m * k);
                var b = GemmTestUtil.Random(rng, k * n);
                int mode = rng.Next(3);
                float[]? bias = mode == 1 ? GemmTestUtil.Random(rng, m) : null;
                float[]? init = mode == 2 ? GemmTestUtil.Random(rng, m * n) : null;
                var expected = GemmTestUtil.RefGemm(m, n, k, a, b, init, bias);
                bool prepack = rng.Next(2) == 0;
                var actual = RunGemm(gemm, s % 2 == 0 ? ctx : null, m, n, k, a, b, init, bias, prepack);
                GemmTestUtil.AssertClose(expected, actual, $"{isa} m={m} n={n} k={k} mode={mode} prepack={prepack}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void Large_blocks_cross_KC_and_NC_boundaries(string isaName)
    {
        var isa = Enum.Parse<GemmIsa>(isaName);
        var gemm = new PackedGemm(isa);
        var rng = new Random(99);
        foreach (var (m, n, k) in new[] { (19, 700, 600), (70, 257, 257), (9, 513, 1) })
        {
            var a = GemmTestUtil.Random(rng, m * k);
            var b = GemmTestUtil.Random(rng, k * n);
            var bias = GemmTestUtil.Random(rng, m);
            var expected = GemmTestUtil.RefGemm(m, n, k, a, b, null, bias);
            GemmTestUtil.AssertClose(expected, RunGemm(gemm, GemmTestUtil.Context(2), m, n, k, a, b, null, bias, false), $"{isa} {m}x{n}x{k}");
            GemmTestUtil.AssertClose(expected, RunGemm(gemm, null, m, n, k, a, b, null, bias, true), $"{isa} {m}x{n}x{k} prepacked");
        }
    }

    [Fact]
    public void Transposed_operands_and_scale_pack_correctly()
    {
        var gemm = PackedGemm.Default;
        var rng = new Random(5);
        int m = 13, n = 37, k = 29;
        var at = GemmTestUtil.Random(rng, k * m); // stored [k, m]
        var bt = GemmTestUtil.Random(rng, n * k); // stored [n, k]
        var a = new float[m * k];
        var b = new float[k * n];
        for (int i = 0; i < m; i++) for (int p = 0; p < k; p++) a[i * k + p] = 0.5f * at[p * m + i];
        for (int p = 0; p < k; p++) for (int j = 0; j < n; j++) b[p * n + j] = bt[j * k + p];
        var expected = GemmTestUtil.RefGemm(m, n, k, a, b);
        var packedA = gemm.PackA(at, 0, 1, m, m, k, 0.5f);
        foreach (GemmBSource src in new GemmBSource[] { new StridedB(bt, 0, 1, k), new PrepackedB(gemm, bt, 0, 1, k, k, n) })
        {
            var c = new float[m * n];
            gemm.Multiply(null, m, n, k, packedA, 0, src, c, 0, n);
            GemmTestUtil.AssertClose(expected, c, src.GetType().Name);
        }
    }

    [Fact]
    public void Empty_reduction_writes_bias_or_zero()
    {
        var gemm = PackedGemm.Default;
        var c = Enumerable.Repeat(float.NaN, 6).ToArray();
        var bias = new float[gemm.PaddedRows(2)];
        bias[0] = 3; bias[1] = -2;
        gemm.Multiply(null, 2, 3, 0, [0f], 0, new StridedB([0f], 0, 3, 1), c, 0, 3, bias);
        Assert.Equal([3f, 3f, 3f, -2f, -2f, -2f], c);
        gemm.Multiply(null, 2, 3, 0, [0f], 0, new StridedB([0f], 0, 3, 1), c, 0, 3);
        Assert.All(c, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Results_are_bitwise_identical_for_any_thread_count()
    {
        var gemm = PackedGemm.Default;
        var rng = new Random(77);
        foreach (var (m, n, k) in new[] { (70, 1000, 300), (33, 90, 40), (200, 20, 600) })
        {
            var a = GemmTestUtil.Random(rng, m * k);
            var b = GemmTestUtil.Random(rng, k * n);
            var bias = GemmTestUtil.Random(rng, m);
            var one = RunGemm(gemm, GemmTestUtil.Context(1), m, n, k, a, b, null, bias, false);
            var two = RunGemm(gemm, GemmTestUtil.Context(2), m, n, k, a, b, null, bias, false);
            var three = RunGemm(gemm, GemmTestUtil.Context(3), m, n, k, a, b, null, bias, true);
            GemmTestUtil.AssertBitwiseEqual(one, two, $"{m}x{n}x{k} 1 vs 2 threads");
            GemmTestUtil.AssertBitwiseEqual(one, three, $"{m}x{n}x{k} 1 vs 3 threads (prepacked)");
        }
    }
    /// <summary>
    /// The vector paths (narrow matrix-vector columns and 32/16-column tiles) against a scalar loop in the
    /// documented order (init, then k increasing, one fused multiply-add per term): bitwise, for N 1..40,
    /// odd M, K across a KC block, bias / accumulate / plain, strided and prepacked B, and 1..3 threads on
    /// jobs large enough to be split.
    /// </summary>
    [Theory]
    [MemberData(nameof(Isas))]
    public void Vector_paths_match_the_ordered_fma_loop_bitwise(string isaName)
    {
        var isa = Enum.Parse<GemmIsa>(isaName);
        if (isa == GemmIsa.Scalar) return;
        var gemm = new PackedGemm(isa);
        var rng = new Random(4321);
        for (int t = 0; t < 60; t++)
        {
            int n = t < 40 ? t + 1 : rng.Next(1, 9);
            int m = t % 3 == 0 ? rng.Next(1, 20) : rng.Next(60, 300);
            int k = t % 5 == 0 ? rng.Next(257, 700) : rng.Next(1, 120);
            var a = GemmTestUtil.Random(rng, m * k);
            var b = GemmTestUtil.Random(rng, k * n);
            int mode = t % 3;
            float[]? bias = mode == 1 ? GemmTestUtil.Random(rng, m) : null;
            float[]? init = mode == 2 ? GemmTestUtil.Random(rng, m * n) : null;
            var expected = new float[m * n];
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    float acc = init?[i * n + j] ?? bias?[i] ?? 0f;
                    for (int p = 0; p < k; p++) acc = MathF.FusedMultiplyAdd(a[i * k + p], b[p * n + j], acc);
                    expected[i * n + j] = acc;
                }
            foreach (int threads in new[] { 1, 2, 3 })
            {
                bool prepack = (t + threads) % 2 == 0;
                var actual = RunGemm(gemm, GemmTestUtil.Context(threads), m, n, k, a, b, init, bias, prepack);
                GemmTestUtil.AssertBitwiseEqual(expected, actual, $"{isa} m={m} n={n} k={k} mode={mode} threads={threads} prepack={prepack}");
            }
        }
    }

    /// <summary>Every (column panel, row panel) pair lands in exactly one task, for any thread count and job size.</summary>
    [Fact]
    public void Schedule_covers_every_panel_pair_once()
    {
        foreach (int threads in new[] { 1, 2, 3, 4 })
            foreach (int nPanels in new[] { 1, 2, 3, 7, 8, 9, 15, 16, 30, 120 })
                foreach (int mPanels in new[] { 1, 2, 5, 60 })
                    foreach (long work in new[] { 10L, PackedGemm.MinParallelWork, 1L << 30 })
                    {
                        var plan = GemmSchedule.Plan(GemmTestUtil.Context(threads), work, nPanels, 8, mPanels);
                        var seen = new int[nPanels, mPanels];
                        int largest = 0;
                        for (int t = 0; t < plan.Tasks; t++)
                        {
                            var (p0, p1, mp0, mp1) = plan.Task(t);
                            Assert.True(p1 - p0 <= 8, $"task {t} has {p1 - p0} column panels");
                            largest = Math.Max(largest, (p1 - p0) * (mp1 - mp0));
                            for (int p = p0; p < p1; p++)
                                for (int mp = mp0; mp < mp1; mp++) seen[p, mp]++;
                        }
                        foreach (int v in seen) Assert.Equal(1, v);
                        if (threads == 1 || work < PackedGemm.MinParallelWork) Assert.Equal((nPanels + 7) / 8, plan.Tasks);
                        else
                        {
                            // Within twice the ideal share, and one tile per thread at least when there are enough.
                            int ideal = (nPanels * mPanels + threads - 1) / threads;
                            Assert.True(largest <= Math.Max(2 * ideal, (nPanels + 7) / 8 > threads ? 8 : 0), $"{plan}: a task holds {largest} panel pairs");
                            Assert.True(plan.Tasks >= Math.Min(threads, (nPanels + 7) / 8), $"{plan} leaves threads idle");
                        }
                    }
    }
}
