using System.Numerics;
using Quant.Engine.Kernels.Integer;

namespace Quant.Engine.Tests.Kernels.Integer;

/// <summary>
/// The int16-activation GEMMs of docs/quantization-spec.md §4.3/§5.2/§5.3: every path (scalar references, packed
/// fallbacks, VNNI int32 and blocked int64) equals the exact sum, computed here in BigInteger independently of the
/// kernels; and the int32 bound check agrees with the sums it claims to bound.
/// </summary>
public class Int16GemmTests
{
    /// <summary>The mathematical sum, in BigInteger: no wrapping or width can hide an error here.</summary>
    private static BigInteger[] ExactProduct(short[] a, int[] b, int m, int k, int n)
    {
        var c = new BigInteger[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                BigInteger s = 0;
                for (int t = 0; t < k; t++) s += (BigInteger)a[i * k + t] * b[t * n + j];
                c[i * n + j] = s;
            }
        return c;
    }

    /// <summary>Random values in [lo, hi]; mode 1 only the two extremes, mode 2 only lo, mode 3 small values.</summary>
    private static int[] RandomValues(Random rng, int length, int lo, int hi, int mode)
    {
        var x = new int[length];
        for (int i = 0; i < length; i++)
            x[i] = mode switch
            {
                0 => rng.Next(lo, hi + 1),
                1 => rng.Next(2) == 0 ? lo : hi,
                2 => lo,
                _ => rng.Next(-3, 4),
            };
        return x;
    }

    private static short[] Int16(int[] x) => Array.ConvertAll(x, v => checked((short)v));
    private static sbyte[] Int8(int[] x) => Array.ConvertAll(x, v => checked((sbyte)v));

    /// <summary>16 × 8: int64 paths always exact; int32 paths exact when the sum fits, else equal modulo 2^32.</summary>
    private static void Assert16x8(Random rng, int m, int k, int n, int modeA, int modeB)
    {
        var a = Int16(RandomValues(rng, m * k, short.MinValue, short.MaxValue, modeA));
        var bi = RandomValues(rng, k * n, sbyte.MinValue, sbyte.MaxValue, modeB);
        var b = Int8(bi);
        var exact = ExactProduct(a, bi, m, k, n);
        var packed = Int16Weights.Pack(b, k, n);

        var wide = new long[m * n];
        Int16Gemm.Scalar16x8Wide(a, b, m, k, n, wide);
        var fast64 = new long[m * n];
        Int16Gemm.RunInt64(a, packed, m, fast64);
        var fallback64 = new long[m * n];
        Int16Gemm.RunInt64(a, packed, m, fallback64, vector: false);
        var reference = new int[m * n];
        Int16Gemm.Scalar16x8(a, b, m, k, n, reference);
        var fast32 = new int[m * n];
        Int16Gemm.RunInt32(a, packed, m, fast32);
        var fallback32 = new int[m * n];
        Int16Gemm.RunInt32(a, packed, m, fallback32, vector: false);
        for (int i = 0; i < exact.Length; i++)
        {
            Assert.Equal(exact[i], (BigInteger)wide[i]);
            Assert.Equal(exact[i], (BigInteger)fast64[i]);
            Assert.Equal(exact[i], (BigInteger)fallback64[i]);
            Assert.Equal((int)(long)exact[i], reference[i]); // modulo 2^32
        }
        Assert.Equal(reference, fast32);
        Assert.Equal(reference, fallback32);
    }

    private static void Assert16x16(Random rng, int m, int k, int n, int modeA, int modeB)
    {
        var a = Int16(RandomValues(rng, m * k, short.MinValue, short.MaxValue, modeA));
        var bi = RandomValues(rng, k * n, short.MinValue, short.MaxValue, modeB);
        var b = Int16(bi);
        var exact = ExactProduct(a, bi, m, k, n);
        var packed = Int16Weights.Pack(b, k, n);
        var reference = new long[m * n];
        Int16Gemm.Scalar16x16(a, b, m, k, n, reference);
        var fast = new long[m * n];
        Int16Gemm.RunInt64(a, packed, m, fast);
        var fallback = new long[m * n];
        Int16Gemm.RunInt64(a, packed, m, fallback, vector: false);
        var fast32 = new int[m * n];
        Int16Gemm.RunInt32(a, packed, m, fast32);
        for (int i = 0; i < exact.Length; i++)
        {
            Assert.Equal(exact[i], (BigInteger)reference[i]);
            Assert.Equal(exact[i], (BigInteger)fast[i]);
            Assert.Equal(exact[i], (BigInteger)fallback[i]);
            Assert.Equal((int)(long)exact[i], fast32[i]); // the int32 path wraps consistently even for 16 × 16
        }
    }

    [Fact]
    public void Random_shapes_16x8_equal_the_exact_sum_on_every_path()
    {
        var rng = new Random(161);
        int[] ks = [1, 2, 3, 5, 15, 16, 17, 63, 255, 509, 510, 511, 700];
        int[] ns = [1, 3, 8, 15, 16, 17, 33];
        foreach (int k in ks)
            foreach (int n in ns)
                Assert16x8(rng, rng.Next(1, 4) * 2 - 1, k, n, modeA: 0, modeB: 0);
    }

    [Fact]
    public void Random_shapes_16x16_equal_the_exact_sum_on_every_path()
    {
        var rng = new Random(162);
        int[] ks = [1, 2, 3, 5, 17, 64, 255, 256, 257, 300, 513];
        int[] ns = [1, 3, 8, 15, 16, 17, 33];
        foreach (int k in ks)
            foreach (int n in ns)
                Assert16x16(rng, rng.Next(1, 4) * 2 - 1, k, n, modeA: 0, modeB: 0);
    }

    [Fact]
    public void Extreme_values_are_exact_across_the_block_boundaries()
    {
        var rng = new Random(163);
        // K around 2·255 (the 16 × 8 int64 block) and 2·128 (the 16 × 16 split block), and far beyond int32.
        foreach (var (m, k, n) in new[] { (1, 1, 1), (3, 5, 17), (1, 510, 16), (2, 511, 17), (3, 512, 9), (1, 256, 16), (1, 257, 3), (2, 3001, 19) })
        {
            foreach (var (modeA, modeB) in new[] { (1, 1), (2, 2), (2, 1), (3, 1), (1, 3) })
            {
                Assert16x8(rng, m, k, n, modeA, modeB);
                Assert16x16(rng, m, k, n, modeA, modeB);
            }
        }
    }

    [Fact]
    public void Int16_minimum_squared_pairs_do_not_wrap_in_the_int64_path()
    {
        // (−32768)·(−32768) = 2^30 per tap: one raw vpdpwssd pair already sums to 2^31. The split must keep it exact.
        foreach (int k in new[] { 2, 3, 256, 257, 4097 })
        {
            var a = new short[k];
            var b = new short[k * 3];
            Array.Fill(a, short.MinValue);
            for (int t = 0; t < k; t++)
            {
                b[t * 3] = short.MinValue;
                b[t * 3 + 1] = short.MaxValue;
                b[t * 3 + 2] = (short)(t % 2 == 0 ? short.MinValue : short.MaxValue);
            }
            var c = new long[3];
            Int16Gemm.RunInt64(a, Int16Weights.Pack(b, k, 3), 1, c);
            Assert.Equal((long)k << 30, c[0]);
            Assert.Equal(-32768L * 32767 * k, c[1]);
            Assert.Equal((long)((k + 1) / 2) * (1L << 30) - (long)(k / 2) * 32768 * 32767, c[2]);
        }
    }

    [Fact]
    public void The_low_byte_block_of_the_split_is_filled_to_its_limit()
    {
        // x = 32767 and x = −1 have l = 255; with w = −32768 every l-step adds −2·255·32768, the most the l lanes
        // can take. 128 steps (256 taps) fit int32, 129 would not: K = 256, 257, 258 and beyond cross the block edge.
        foreach (short x in new short[] { 32767, -1 })
            foreach (int k in new[] { 255, 256, 257, 258, 259, 1031 })
            {
                var a = new short[3 * k];
                Array.Fill(a, x);
                var b = new short[k * 17];
                Array.Fill(b, short.MinValue);
                var c = new long[3 * 17];
                Int16Gemm.RunInt64(a, Int16Weights.Pack(b, k, 17), 3, c);
                Assert.All(c, v => Assert.Equal(-32768L * x * k, v));
            }
    }

    [Fact]
    public void Int32_path_is_exact_up_to_the_bound_and_the_bound_check_is_tight()
    {
        // All (−32768)·(−128) = 2^22 per tap. K = 511 gives 2^31 − 2^22, the largest such sum in int32; K = 512 gives 2^31.
        Assert.True(Int16Gemm.FitsInt32(511, 32768, 128));
        Assert.False(Int16Gemm.FitsInt32(512, 32768, 128));
        foreach (int k in new[] { 511, 512 })
        {
            var a = new short[2 * k];
            var b = new sbyte[k * 2];
            Array.Fill(a, short.MinValue);
            Array.Fill(b, sbyte.MinValue);
            for (int t = 0; t < k; t++) b[t * 2 + 1] = sbyte.MaxValue; // second column: −32768·127 per tap
            var w = Int16Weights.Pack(b, k, 2);
            var c32 = new int[4];
            Int16Gemm.RunInt32(a, w, 2, c32);
            var c64 = new long[4];
            Int16Gemm.RunInt64(a, w, 2, c64);
            long top = (long)k << 22, bottom = -32768L * 127 * k;
            Assert.Equal(new[] { top, bottom, top, bottom }, c64);
            bool fits = Int16Gemm.FitsInt32(k, 32768, 128);
            // The check says int32 exactly when the worst sums really fit.
            Assert.Equal(fits, top <= int.MaxValue && bottom >= int.MinValue);
            if (fits) Assert.Equal(new[] { (int)top, (int)bottom, (int)top, (int)bottom }, c32);
            else Assert.NotEqual(top, c32[0]); // wrapped: why the caller must take the int64 path
        }
    }

    [Fact]
    public void Fits_int32_matches_the_exact_worst_case()
    {
        // The worst sum of K taps with |a| ≤ A, |b| ≤ B (+ bias) is K·A·B + bias; int32 needs it ≤ 2^31 − 1.
        var rng = new Random(164);
        for (int trial = 0; trial < 2000; trial++)
        {
            int k = rng.Next(0, 1 << 20), a = rng.Next(0, 32769), b = rng.Next(0, 32769);
            long bias = rng.Next(2) == 0 ? 0 : rng.NextInt64(0, (1L << 31) + 1);
            var worst = (BigInteger)k * a * b + bias;
            Assert.Equal(worst <= int.MaxValue, Int16Gemm.FitsInt32(k, a, b, bias));
        }
        // The spec's table (§4.3): 16 × 8 with bias headroom 2^30 is int32 for K ≤ 255, not 256.
        Assert.True(Int16Gemm.FitsInt32(255, 32768, 128, 1 << 30));
        Assert.False(Int16Gemm.FitsInt32(256, 32768, 128, 1 << 30));
        Assert.True(Int16Gemm.FitsInt32(int.MaxValue, 0, 32768));
        Assert.False(Int16Gemm.FitsInt32(2, 32768, 32768)); // two (−32768)² taps: 2^31
        Assert.True(Int16Gemm.FitsInt32(1, 32768, 32768, (1L << 30) - 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Int16Gemm.FitsInt32(-1, 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Int16Gemm.FitsInt32(1, 32769, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Int16Gemm.FitsInt32(1, 1, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Int16Gemm.FitsInt32(1, 1, 1, -1));
    }

    [Fact]
    public void Empty_dimensions_and_bad_shapes()
    {
        Int16Gemm.RunInt32(new short[0], Int16Weights.Pack(new sbyte[0], 0, 0), 0, new int[0]);
        Int16Gemm.RunInt64(new short[0], Int16Weights.Pack(new short[0], 0, 5), 0, new long[0]);
        // K = 0: every output is the empty sum, 0.
        foreach (bool vector in new[] { true, false })
        {
            var z32 = new int[6];
            Array.Fill(z32, 7);
            Int16Gemm.RunInt32(new short[0], Int16Weights.Pack(new sbyte[0], 0, 3), 2, z32, vector);
            Assert.All(z32, v => Assert.Equal(0, v));
            var z64 = new long[6];
            Array.Fill(z64, 7);
            Int16Gemm.RunInt64(new short[0], Int16Weights.Pack(new short[0], 0, 3), 2, z64, vector);
            Assert.All(z64, v => Assert.Equal(0, v));
            Array.Fill(z64, 7);
            Int16Gemm.RunInt64(new short[0], Int16Weights.Pack(new sbyte[0], 0, 3), 2, z64, vector);
            Assert.All(z64, v => Assert.Equal(0, v));
        }
        var s = new long[6];
        Array.Fill(s, 7);
        Int16Gemm.Scalar16x16(new short[0], new short[0], 2, 0, 3, s);
        Assert.All(s, v => Assert.Equal(0, v));

        Assert.Throws<ArgumentException>(() => Int16Weights.Pack(new sbyte[5], 2, 3));
        Assert.Throws<ArgumentException>(() => Int16Weights.Pack(new short[7], 2, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => Int16Weights.Pack(new short[0], -1, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => Int16Weights.Pack(new sbyte[0], 3, -1));
        var w = Int16Weights.Pack(new sbyte[6], 2, 3);
        Assert.Throws<ArgumentException>(() => Int16Gemm.RunInt32(new short[5], w, 2, new int[6]));
        Assert.Throws<ArgumentException>(() => Int16Gemm.RunInt32(new short[4], w, 2, new int[5]));
        Assert.Throws<ArgumentException>(() => Int16Gemm.RunInt64(new short[4], w, 2, new long[7]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Int16Gemm.RunInt64(new short[0], w, -1, new long[0]));
        Assert.Throws<ArgumentException>(() => Int16Gemm.Scalar16x8(new short[4], new sbyte[5], 2, 2, 3, new int[6]));
        Assert.Throws<ArgumentException>(() => Int16Gemm.Scalar16x8Wide(new short[4], new sbyte[6], 2, 2, 3, new long[5]));
        Assert.Throws<ArgumentException>(() => Int16Gemm.Scalar16x16(new short[3], new short[6], 2, 2, 3, new long[6]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Int16Gemm.Scalar16x16(new short[0], new short[0], 2, -1, 0, new long[0]));
    }
}
