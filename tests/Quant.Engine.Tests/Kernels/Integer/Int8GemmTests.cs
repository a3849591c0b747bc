using Quant.Engine.Kernels.Integer;

namespace Quant.Engine.Tests.Kernels.Integer;

/// <summary>
/// The int8 GEMM of docs/quantization-spec.md §4.1/§5.1: the exact sum (in int64, independently of the kernel),
/// the scalar reference, the packed fallback and the VNNI path agree bit for bit.
/// </summary>
public class Int8GemmTests
{
    /// <summary>The mathematical sum in int64: no wrapping can hide an error here.</summary>
    private static long[] ExactProduct(sbyte[] a, sbyte[] b, int m, int k, int n)
    {
        var c = new long[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                long s = 0;
                for (int t = 0; t < k; t++) s += (long)a[i * k + t] * b[t * n + j];
                c[i * n + j] = s;
            }
        return c;
    }

    private static sbyte[] Random8(Random rng, int length, int mode)
    {
        var x = new sbyte[length];
        for (int i = 0; i < length; i++)
            x[i] = mode switch
            {
                0 => (sbyte)rng.Next(-128, 128),
                1 => rng.Next(2) == 0 ? sbyte.MinValue : sbyte.MaxValue, // only the extremes
                2 => sbyte.MinValue,                                     // (−128)·(−128) everywhere: the largest sums
                _ => (sbyte)rng.Next(-3, 4),
            };
        return x;
    }

    private static void AssertAllPathsExact(Random rng, int m, int k, int n, int modeA, int modeB)
    {
        var a = Random8(rng, m * k, modeA);
        var b = Random8(rng, k * n, modeB);
        var exact = ExactProduct(a, b, m, k, n);
        var reference = new int[m * n];
        Int8Gemm.Scalar(a, b, m, k, n, reference);
        var packed = Int8Weights.Pack(b, k, n);
        var fast = new int[m * n];
        Int8Gemm.Run(a, packed, m, fast);
        var fallback = new int[m * n];
        Int8Gemm.Run(a, packed, m, fallback, vector: false);
        for (int i = 0; i < exact.Length; i++)
            Assert.Equal(exact[i], reference[i]);
        Assert.Equal(reference, fast);
        Assert.Equal(reference, fallback);
        // Pre-offset rows (u = a + 128, PaddedK bytes each, arbitrary bytes past K): both paths of RunOffset.
        var u = new byte[m * packed.PaddedK];
        rng.NextBytes(u);
        for (int i = 0; i < m; i++)
            for (int t = 0; t < k; t++) u[i * packed.PaddedK + t] = (byte)(a[i * k + t] + 128);
        foreach (var vector in new[] { true, false })
        {
            var offset = new int[m * n];
            Int8Gemm.RunOffset(u, packed, m, offset, vector);
            Assert.Equal(reference, offset);
        }
    }

    [Fact]
    public void Random_shapes_equal_the_exact_sum_on_every_path()
    {
        var rng = new Random(71);
        int[] ks = [1, 2, 3, 4, 5, 7, 63, 64, 65, 129, 300];
        int[] ns = [1, 3, 8, 15, 16, 17, 33, 50];
        foreach (int k in ks)
            foreach (int n in ns)
                AssertAllPathsExact(rng, rng.Next(1, 6) * 2 - 1, k, n, modeA: 0, modeB: 0);
    }

    [Fact]
    public void Extreme_values_minus_128_and_127_are_exact()
    {
        var rng = new Random(72);
        foreach (var (m, k, n) in new[] { (1, 1, 1), (3, 5, 17), (5, 67, 31), (2, 1000, 19), (1, 4099, 16) })
        {
            AssertAllPathsExact(rng, m, k, n, modeA: 1, modeB: 1);
            AssertAllPathsExact(rng, m, k, n, modeA: 2, modeB: 2); // all (−128)·(−128): +2^14 per tap
            AssertAllPathsExact(rng, m, k, n, modeA: 2, modeB: 1);
            AssertAllPathsExact(rng, m, k, n, modeA: 3, modeB: 1);
        }
    }

    [Fact]
    public void The_largest_exact_depth_reaches_the_int32_limit_without_error()
    {
        // K = 2^17 − 1 taps of (−128)·(−128) = 2^31 − 2^14: the largest sum that must still be exact in int32.
        const int k = (1 << 17) - 1;
        var a = new sbyte[k];
        var b = new sbyte[k * 2];
        Array.Fill(a, sbyte.MinValue);
        Array.Fill(b, sbyte.MinValue);
        for (int t = 0; t < k; t++) b[t * 2 + 1] = sbyte.MaxValue; // second column: −128·127 per tap
        var fast = new int[2];
        Int8Gemm.Run(a, Int8Weights.Pack(b, k, 2), 1, fast);
        Assert.Equal((long)k * 16384, fast[0]);
        Assert.Equal(-(long)k * 128 * 127, fast[1]);
        var reference = new int[2];
        Int8Gemm.Scalar(a, b, 1, k, 2, reference);
        Assert.Equal(reference, fast);
    }

    [Fact]
    public void Empty_dimensions_and_bad_shapes()
    {
        var c = new int[0];
        Int8Gemm.Run(new sbyte[0], Int8Weights.Pack(new sbyte[0], 0, 0), 0, c);
        // K = 0: every output is the empty sum, 0.
        var zeros = new int[6];
        Array.Fill(zeros, 7);
        Int8Gemm.Run(new sbyte[0], Int8Weights.Pack(new sbyte[0], 0, 3), 2, zeros);
        Assert.All(zeros, v => Assert.Equal(0, v));
        Assert.Throws<ArgumentException>(() => Int8Weights.Pack(new sbyte[5], 2, 3));
        Assert.Throws<ArgumentException>(() => Int8Gemm.Run(new sbyte[5], Int8Weights.Pack(new sbyte[6], 2, 3), 2, new int[6]));
        Assert.Throws<ArgumentException>(() => Int8Gemm.Run(new sbyte[4], Int8Weights.Pack(new sbyte[6], 2, 3), 2, new int[5]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Int8Weights.Pack(new sbyte[0], -1, 3));
    }
}
