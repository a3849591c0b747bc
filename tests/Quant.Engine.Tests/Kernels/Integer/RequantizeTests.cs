using System.Numerics;
using Quant.Engine.Kernels.Integer;
using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.Integer.IntegerReference;

namespace Quant.Engine.Tests.Kernels.Integer;

/// <summary>
/// The requantization primitives of docs/quantization-spec.md §1–§2 against exact rational arithmetic
/// (BigInteger), and the AVX-512 span paths against the scalar path bit for bit.
/// </summary>
public class RequantizeTests
{
    /// <summary>Exact Rq: rne(v·m / 2^n) + z_y, saturated to the type's range.</summary>
    private static long RefRq(long v, int m, int n, int zy, ElementType t)
    {
        var (lo, hi) = t == ElementType.Int8 ? (-128, 127) : (-32768, 32767);
        var r = RneShift((BigInteger)v * m, n) + zy;
        return r < lo ? lo : r > hi ? hi : (long)r;
    }

    private static long NextLong(Random rng) => (long)rng.NextInt64() * (rng.Next(2) == 0 ? 1 : -1) - rng.Next(2);

    [Fact]
    public void RoundShift_equals_exact_rounding_for_random_values()
    {
        var rng = new Random(11);
        int checkedCount = 0;
        for (int n = 0; n <= 62; n++)
        {
            for (int k = 0; k < 2000; k++)
            {
                // Magnitudes spread over all bit lengths, both signs, including the full long range.
                long v = NextLong(rng) >> rng.Next(0, 64);
                Assert.Equal(RneShift(v, n), (BigInteger)Requantize.RoundShift(v, n));
                checkedCount++;
            }
        }
        Assert.Equal(63 * 2000, checkedCount);
    }

    [Fact]
    public void RoundShift_ties_go_to_the_even_neighbour()
    {
        var rng = new Random(12);
        for (int n = 1; n <= 62; n++)
        {
            for (int k = 0; k < 500; k++)
            {
                // v = q·2^n + 2^(n−1): exactly half way between q and q + 1.
                long q = rng.NextInt64(-(1L << (62 - n)), 1L << (62 - n));
                long v = (q << n) + (1L << (n - 1));
                long expected = (q & 1) == 0 ? q : q + 1;
                Assert.Equal(expected, Requantize.RoundShift(v, n));
                Assert.Equal(RneShift(v, n), (BigInteger)Requantize.RoundShift(v, n));
                // One below and one above the tie round to q and q + 1.
                Assert.Equal(q, Requantize.RoundShift(v - 1, n));
                Assert.Equal(q + 1, Requantize.RoundShift(v + 1, n));
            }
        }
        // Small hand cases: 2.5 → 2, 3.5 → 4, −2.5 → −2, −3.5 → −4, −0.5 → 0, 0.5 → 0, 1.5 → 2.
        Assert.Equal(2, Requantize.RoundShift(5, 1));
        Assert.Equal(4, Requantize.RoundShift(7, 1));
        Assert.Equal(-2, Requantize.RoundShift(-5, 1));
        Assert.Equal(-4, Requantize.RoundShift(-7, 1));
        Assert.Equal(0, Requantize.RoundShift(-1, 1));
        Assert.Equal(0, Requantize.RoundShift(1, 1));
        Assert.Equal(2, Requantize.RoundShift(3, 1));
    }

    [Fact]
    public void RoundShift_handles_the_extremes_of_long_and_large_shifts()
    {
        long[] values = [long.MinValue, long.MinValue + 1, long.MaxValue, long.MaxValue - 1, -1, 0, 1, 1L << 62, -(1L << 62), (1L << 62) + 1];
        foreach (long v in values)
            for (int n = 0; n <= 70; n++)
                Assert.Equal(RneShift(v, n), (BigInteger)Requantize.RoundShift(v, n));
        Assert.Equal(42, Requantize.RoundShift(42, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Requantize.RoundShift(1, -1));
    }

    /// <summary>Checks (m, n) against the definition of §2.1 using only exact double operations.</summary>
    private static void AssertMultDefinition(double M)
    {
        var (m, n) = Requantize.Mult(M);
        if ((m, n) == (int.MaxValue, 0))
        {
            // Saturation (n < 0 after the carry), or exactly M = 2^31 − 1 with n = 0.
            Assert.True(M >= int.MaxValue, $"M = {M:R} gave (2^31 − 1, 0)");
            return;
        }
        if ((m, n) == (0, 0))
        {
            // Only when the exponent would need a shift above 94: M < 2^-64 after the carry.
            Assert.True(M < Math.ScaleB(1.0, -64), $"M = {M:R} gave (0, 0)");
            return;
        }
        Assert.InRange(n, 0, 94);
        Assert.InRange(m, 1 << 30, int.MaxValue);
        // m·2^−n within 2^−31 relative of M, and m is the nearest Q31 integer of M·2^n (exact in double).
        double scaled = Math.ScaleB(M, n);
        Assert.True(Math.Abs(m - scaled) <= 0.5, $"M = {M:R}: m = {m}, M·2^n = {scaled:R}");
        if (Math.Abs(m - scaled) == 0.5) Assert.True(m % 2 == 0, $"tie must go to the even m (M = {M:R})");
        double rel = Math.Abs(Math.ScaleB(m, -n) - M) / M;
        Assert.True(rel <= Math.ScaleB(1.0, -31), $"M = {M:R}: relative error {rel}");
    }

    [Fact]
    public void Mult_follows_the_definition_on_random_multipliers()
    {
        var rng = new Random(21);
        for (int k = 0; k < 200_000; k++)
        {
            double M = Math.ScaleB(1.0 + rng.NextDouble(), rng.Next(-70, 35));
            AssertMultDefinition(M);
        }
        // Typical requantization multipliers: products and quotients of float32 scales.
        for (int k = 0; k < 50_000; k++)
        {
            float sx = (float)Math.ScaleB(rng.NextDouble() + 0.5, rng.Next(-14, 2));
            float sw = (float)Math.ScaleB(rng.NextDouble() + 0.5, rng.Next(-14, 2));
            float sy = (float)Math.ScaleB(rng.NextDouble() + 0.5, rng.Next(-14, 2));
            AssertMultDefinition((double)sx * sw / sy);
        }
    }

    [Fact]
    public void Mult_edge_cases_carry_powers_of_two_and_out_of_range()
    {
        Assert.Equal((1 << 30, 31), Requantize.Mult(0.5));
        Assert.Equal((1 << 30, 30), Requantize.Mult(1.0));
        Assert.Equal((1 << 30, 29), Requantize.Mult(2.0));
        for (int p = -63; p <= 30; p++)
            Assert.Equal((1 << 30, 30 - p), Requantize.Mult(Math.ScaleB(1.0, p)));
        // The carry: f just below 1 rounds to 2^31 and becomes (2^30, n − 1).
        double belowOne = Math.BitDecrement(1.0);
        Assert.Equal((1 << 30, 30), Requantize.Mult(belowOne));
        // Largest m: f·2^31 = 2^31 − 1 exactly, and a tie 2^31 − 1.5 → 2^31 − 2 (even).
        Assert.Equal((int.MaxValue, 31), Requantize.Mult((double)int.MaxValue / (1L << 31)));
        Assert.Equal((int.MaxValue - 1, 31), Requantize.Mult((int.MaxValue - 0.5) / (1L << 31)));
        Assert.Equal((1 << 30, 31), Requantize.Mult(((1 << 30) + 0.5) / (1L << 31)));
        Assert.Equal((1 << 30 | 2, 31), Requantize.Mult(((1 << 30) + 1.5) / (1L << 31)));
        // n < 0: M ≥ 2^31 saturates every non-zero v; just below 2^31 the carry also gives n = −1.
        Assert.Equal((int.MaxValue, 0), Requantize.Mult(Math.ScaleB(1.0, 31)));
        Assert.Equal((int.MaxValue, 0), Requantize.Mult(Math.BitDecrement(Math.ScaleB(1.0, 31))));
        Assert.Equal((int.MaxValue, 0), Requantize.Mult(1e12));
        Assert.Equal((int.MaxValue, 0), Requantize.Mult(double.PositiveInfinity));
        Assert.Equal((int.MaxValue, 0), Requantize.Mult(double.MaxValue));
        Assert.Equal((int.MaxValue, 1), Requantize.Mult(Math.ScaleB(int.MaxValue, -1)));
        // Just below 2^−63: n = 94 (or 93 after the carry), still representable.
        Assert.Equal((1 << 30, 93), Requantize.Mult(Math.BitDecrement(Math.ScaleB(1.0, -63))));
        Assert.Equal((int.MaxValue, 94), Requantize.Mult(Math.ScaleB((double)int.MaxValue, -94)));
        Assert.Equal((1 << 30, 94), Requantize.Mult(Math.ScaleB(1.0, -64)));
        // n > 94: (0, 0).
        Assert.Equal((1 << 30, 94), Requantize.Mult(Math.BitDecrement(Math.ScaleB(1.0, -64)))); // carry keeps n = 94
        Assert.Equal((0, 0), Requantize.Mult(Math.ScaleB(0.75, -64)));
        Assert.Equal((0, 0), Requantize.Mult(1e-300));
        Assert.Equal((0, 0), Requantize.Mult(double.Epsilon));
        Assert.Equal((0, 0), Requantize.Mult(Math.ScaleB(1.0, -1060)));
        foreach (double bad in new[] { 0.0, -0.0, -1.0, double.NaN, double.NegativeInfinity })
            Assert.Throws<ArgumentOutOfRangeException>(() => Requantize.Mult(bad));
    }

    [Fact]
    public void Rq_equals_exact_rounding_with_saturation()
    {
        var rng = new Random(31);
        int saturated = 0, inRange = 0;
        foreach (var t in new[] { ElementType.Int8, ElementType.Int16 })
        {
            var (lo, hi) = Requantize.Range(t);
            for (int k = 0; k < 100_000; k++)
            {
                long v = k % 3 == 0 ? rng.Next(int.MinValue, int.MaxValue)
                    : k % 3 == 1 ? rng.Next(-70000, 70000)
                    : NextLong(rng) >> rng.Next(0, 64); // int64 accumulators: 128-bit products
                int m = k % 7 == 0 ? 0 : rng.Next(1 << 30, int.MaxValue);
                int n = rng.Next(0, 95);
                int zy = rng.Next(lo, hi + 1);
                long expected = RefRq(v, m, n, zy, t);
                Assert.Equal(expected, Requantize.Rq(v, m, n, zy, t));
                if (expected == lo || expected == hi) saturated++; else inRange++;
            }
            // Hand-picked shifts around the int64 boundary and extreme accumulators.
            long[] vs = [int.MinValue, int.MaxValue, -1, 1, 0, long.MinValue, long.MaxValue, (long)int.MaxValue + 1, 3L << 40];
            int[] ms = [0, 1 << 30, int.MaxValue, (1 << 30) + 12345];
            foreach (long v in vs)
                foreach (int m in ms)
                    for (int n = 0; n <= 94; n++)
                        foreach (int zy in new[] { lo, 0, hi, 3 })
                            Assert.Equal(RefRq(v, m, n, zy, t), Requantize.Rq(v, m, n, zy, t));
        }
        // Both the saturating and the in-range branches were exercised.
        Assert.True(saturated > 1000 && inRange > 1000, $"saturated {saturated}, in range {inRange}");
        Assert.Throws<ArgumentOutOfRangeException>(() => Requantize.Rq(1, 1 << 30, -1, 0, ElementType.Int8));
        Assert.Throws<ArgumentOutOfRangeException>(() => Requantize.Rq(1, 1 << 30, 3, 0, ElementType.UInt8));
    }

    /// <summary>Random int32 accumulators with a share of the extremes and of values near the output range.</summary>
    private static int[] Accumulators(Random rng, int length)
    {
        var a = new int[length];
        for (int i = 0; i < length; i++)
            a[i] = rng.Next(8) switch
            {
                0 => int.MinValue,
                1 => int.MaxValue,
                2 => rng.Next(-300, 300),
                3 => rng.Next(-1 << 20, 1 << 20),
                _ => rng.Next(int.MinValue, int.MaxValue),
            };
        return a;
    }

    /// <summary>
    /// Multiplier pairs: out-of-range results of Mult, large shifts (n ≥ 63), and powers of two, whose products
    /// v·2^30 / 2^n land exactly on ties for a large share of v (every odd v for n = 31), so the tie rule is exercised.
    /// </summary>
    private static (int M, int N) RandomPair(Random rng) => rng.Next(13) switch
    {
        10 or 11 => (1 << 30, rng.Next(31, 35)),
        12 => ((1 << 30) + (rng.Next(1, 64) << 24), rng.Next(1, 40)),
        0 => (0, 0),
        1 => (rng.Next(1 << 30, int.MaxValue), 0),
        2 => (rng.Next(1 << 30, int.MaxValue), rng.Next(63, 95)),
        3 => (int.MaxValue, rng.Next(0, 95)),
        _ => Requantize.Mult(Math.ScaleB(1.0 + rng.NextDouble(), rng.Next(-40, 2))),
    };

    [Fact]
    public void Uniform_span_paths_equal_the_scalar_rule_bit_for_bit()
    {
        var rng = new Random(41);
        int[] lengths = [0, 1, 7, 8, 15, 16, 17, 31, 33, 100, 257, 1000];
        foreach (int len in lengths)
        {
            for (int rep = 0; rep < 40; rep++)
            {
                var acc = Accumulators(rng, len);
                var (m, n) = RandomPair(rng);
                int zy8 = rng.Next(-128, 128), zy16 = rng.Next(-32768, 32768);
                var fast8 = new sbyte[len];
                var slow8 = new sbyte[len];
                Requantize.Run(acc, m, n, zy8, fast8);
                Requantize.Run(acc, m, n, zy8, slow8, vector: false);
                var fast16 = new short[len];
                var slow16 = new short[len];
                Requantize.Run(acc, m, n, zy16, fast16);
                Requantize.Run(acc, m, n, zy16, slow16, vector: false);
                for (int i = 0; i < len; i++)
                {
                    Assert.Equal(RefRq(acc[i], m, n, zy8, ElementType.Int8), slow8[i]);
                    Assert.Equal(RefRq(acc[i], m, n, zy16, ElementType.Int16), slow16[i]);
                }
                Assert.Equal(slow8, fast8);
                Assert.Equal(slow16, fast16);
            }
        }
    }

    [Fact]
    public void Per_channel_and_per_column_paths_equal_the_scalar_rule_bit_for_bit()
    {
        var rng = new Random(51);
        foreach (int channels in new[] { 1, 3, 8, 13, 16, 37, 200 }) // 200: past the stack-held constants of RunPerColumn
        {
            foreach (int inner in new[] { 1, 5, 16, 23, 64 })
            {
                var acc = Accumulators(rng, channels * inner);
                var m = new int[channels];
                var n = new int[channels];
                for (int c = 0; c < channels; c++) (m[c], n[c]) = RandomPair(rng);
                int zy = rng.Next(-128, 128);

                // Channels outermost: element i belongs to channel i / inner.
                var fast = new sbyte[acc.Length];
                var slow = new sbyte[acc.Length];
                Requantize.RunPerChannel<sbyte>(acc, inner, m, n, zy, fast);
                Requantize.RunPerChannel<sbyte>(acc, inner, m, n, zy, slow, vector: false);
                for (int i = 0; i < acc.Length; i++)
                    Assert.Equal(RefRq(acc[i], m[i / inner], n[i / inner], zy, ElementType.Int8), slow[i]);
                Assert.Equal(slow, fast);

                // Channels innermost: element i belongs to channel i % channels.
                var fastC = new short[acc.Length];
                var slowC = new short[acc.Length];
                int zy16 = rng.Next(-32768, 32768);
                Requantize.RunPerColumn<short>(acc, m, n, zy16, fastC);
                Requantize.RunPerColumn<short>(acc, m, n, zy16, slowC, vector: false);
                for (int i = 0; i < acc.Length; i++)
                    Assert.Equal(RefRq(acc[i], m[i % channels], n[i % channels], zy16, ElementType.Int16), slowC[i]);
                Assert.Equal(slowC, fastC);

                var fastC8 = new sbyte[acc.Length];
                var slowC8 = new sbyte[acc.Length];
                Requantize.RunPerColumn<sbyte>(acc, m, n, zy, fastC8);
                Requantize.RunPerColumn<sbyte>(acc, m, n, zy, slowC8, vector: false);
                Assert.Equal(slowC8, fastC8);
            }
        }
    }

    [Fact]
    public void Span_paths_reject_mismatched_shapes()
    {
        Assert.Throws<ArgumentException>(() => Requantize.Run(new int[4], 1 << 30, 3, 0, new sbyte[3]));
        Assert.Throws<ArgumentException>(() => Requantize.RunPerChannel<sbyte>(new int[6], 4, new int[2], new int[2], 0, new sbyte[6]));
        Assert.Throws<ArgumentException>(() => Requantize.RunPerColumn<short>(new int[7], new int[2], new int[2], 0, new short[7]));
        Assert.Throws<ArgumentException>(() => Requantize.RunPerColumn<short>(new int[8], new int[2], new int[3], 0, new short[8]));
        Assert.Throws<NotSupportedException>(() => Requantize.RunPerColumn<int>(new int[8], new int[2], new int[2], 0, new int[8]));
    }

    /// <summary>
    /// §2.3/§2.4: with (m, n) = Mult(M), Rq(v) equals rne(v·M) (exact rational) except when v·M lies within
    /// 2^−15 LSB of a tie. v·M is exact as a BigInteger rational since M is a double.
    /// </summary>
    [Fact]
    public void Rq_of_Mult_differs_from_exact_rounding_only_near_ties()
    {
        var rng = new Random(61);
        int outsideBand = 0, insideBand = 0, differing = 0, total = 0;
        for (int k = 0; k < 200_000; k++)
        {
            double M = Math.ScaleB(1.0 + rng.NextDouble(), rng.Next(-30, 1));
            var (m, n) = Requantize.Mult(M);
            // Keep |v·M| ≤ 2^15 (int16 range) so the band argument of §2.3 applies.
            long bound = Math.Min(int.MaxValue, (long)(Math.ScaleB(1.0, 15) / M));
            long v = rng.NextInt64(-bound, bound + 1);
            if (k % 4 == 0)
            {
                // Force values near a tie: v ≈ (j + 1/2) / M.
                double j = Math.Floor(rng.NextDouble() * 60000 - 30000) + 0.5;
                v = Math.Clamp((long)Math.Round(j / M), -bound, bound);
            }
            // Exact v·M = v·mant·2^exp, with M = mant·2^exp, mant an integer below 2^53.
            long bits = BitConverter.DoubleToInt64Bits(M);
            int exp = (int)((bits >> 52) & 0x7FF) - 1075;
            BigInteger mant = (bits & ((1L << 52) - 1)) | (1L << 52);
            BigInteger num = v * mant; // value = num · 2^exp, exp < 0 here
            int sh = -exp;
            var exact = RneShift(num, sh);
            long integer = Requantize.Rq(v, m, n, 0, ElementType.Int16);
            if (BigInteger.Abs(exact) > 32767) continue;
            total++;
            // Distance of v·M to the nearest tie, in LSB: |frac − 1/2| with frac = v·M − floor(v·M).
            var d = BigInteger.One << sh;
            var fl = BigInteger.DivRem(num, d, out var r);
            if (r.Sign < 0) { fl -= 1; r += d; }
            // near tie iff |2r − d| ≤ 2·2^−15·d, i.e. |2r − d|·2^14 ≤ d
            bool nearTie = BigInteger.Abs(2 * r - d) * (BigInteger.One << 14) <= d;
            if (nearTie) insideBand++;
            if ((BigInteger)integer != exact)
            {
                differing++;
                if (!nearTie) outsideBand++;
            }
        }
        Assert.Equal(0, outsideBand);
        Assert.True(total > 150_000, $"only {total} cases in range");
        Assert.True(insideBand > 1000, $"only {insideBand} cases near a tie; the forced ties did not land");
        Assert.True(differing < insideBand, $"{differing} differing of {insideBand} near ties");
    }
}
