using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Quant.Core.Calibration;

/// <summary>The calibration hot loop: binning |x| into a sign-split histogram.</summary>
internal static class HistogramKernels
{
    /// <summary>
    /// Copies of the histogram the increments rotate over: runs of equal values (the zeros after a Relu, the
    /// narrow peak of a normalized activation) then update four counters in turn instead of waiting on one
    /// counter's previous store each time.
    /// </summary>
    internal const int Copies = 4;

    /// <summary>Elements whose bin indices the AVX-512 path computes before incrementing them.</summary>
    private const int Block = 64;

    /// <summary>Ints of scratch <see cref="Bin"/> needs for <paramref name="bins"/> bins.</summary>
    public static int ScratchLength(int bins) => Copies * 2 * bins;

    /// <summary>
    /// Adds every element of <paramref name="x"/> to <paramref name="hist"/>: bin floor(|x| * factor),
    /// clamped to [0, bins), at [0, bins) for x &gt;= 0 and at [bins, 2*bins) for x &lt; 0, in one of
    /// <see cref="Copies"/> copies of that layout (<see cref="Drain"/> sums them).
    /// Returns min and max of <paramref name="x"/> from the same pass (NaN if any element is NaN);
    /// the caller checks them and rebins when the data did not fit (clamped elements are then wrong).
    /// </summary>
    public static (float Min, float Max) Bin(ReadOnlySpan<float> x, float factor, int bins, Span<int> hist) => Count(x, factor, bins, hist, 1, Copies);

    /// <summary>
    /// <see cref="Bin"/> into the first copy only: for a small tensor, where summing four copies of every bin its range
    /// reaches would cost more than the increments it spreads (<see cref="Drain"/> then reads one copy).
    /// </summary>
    public static (float Min, float Max) BinOneCopy(ReadOnlySpan<float> x, float factor, int bins, Span<int> hist) => Count(x, factor, bins, hist, 1, 1);

    /// <summary>
    /// Takes back a <see cref="Bin"/> of the same elements at the same factor: every count it added (clamped or not) is
    /// subtracted, exactly, since the same indices are computed. For a piece binned before it was known not to fit.
    /// </summary>
    public static void Unbin(ReadOnlySpan<float> x, float factor, int bins, Span<int> hist) => Count(x, factor, bins, hist, -1, Copies);

    /// <summary>Adds <paramref name="delta"/> at every element's bin; returns min and max.</summary>
    private static (float Min, float Max) Count(ReadOnlySpan<float> x, float factor, int bins, Span<int> hist, int delta, int copies)
    {
        int stride = 2 * bins;
        if (hist.Length < ScratchLength(bins)) throw new ArgumentException("histogram scratch too small");
        ref int h0 = ref MemoryMarshal.GetReference(hist);
        ref float xr = ref MemoryMarshal.GetReference(x);
        int i = 0;
        int last = bins - 1;
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        if (Vector512.IsHardwareAccelerated && x.Length >= Block)
        {
            // Indices of a block in 16 lanes, each already offset to its lane's copy (lane mod 4), stored, then
            // incremented from the buffer two at a time (one 64-bit load per pair instead of one load per element).
            var vf = Vector512.Create(factor);
            var vLast = Vector512.Create(last);
            var vBins = Vector512.Create(bins);
            var vCopy = copies == 1 ? Vector512<int>.Zero : Vector512.Create(0, stride, 2 * stride, 3 * stride, 0, stride, 2 * stride, 3 * stride,
                0, stride, 2 * stride, 3 * stride, 0, stride, 2 * stride, 3 * stride);
            var vMin = Vector512.Create(float.PositiveInfinity);
            var vMax = Vector512.Create(float.NegativeInfinity);
            Span<int> index = stackalloc int[Block];
            ref int ix = ref MemoryMarshal.GetReference(index);
            ref ulong pairs = ref Unsafe.As<int, ulong>(ref ix);
            for (; i <= x.Length - Block; i += Block)
            {
                for (int k = 0; k < Block; k += 16)
                {
                    var v = Vector512.LoadUnsafe(ref xr, (nuint)(i + k));
                    vMin = Vector512.Min(vMin, v);
                    vMax = Vector512.Max(vMax, v);
                    // Clamping both ways keeps every index inside the histogram whatever the input
                    // (NaN, infinities, data beyond the range); such data is detected from min/max.
                    var b = Vector512.Min(Vector512.Max(Vector512.ConvertToInt32Native(Vector512.Abs(v) * vf), Vector512<int>.Zero), vLast)
                            + (Vector512.LessThan(v, Vector512<float>.Zero).AsInt32() & vBins) + vCopy;
                    b.StoreUnsafe(ref ix, (nuint)k);
                }
                for (int k = 0; k < Block / 2; k += 2)
                {
                    ulong p = Unsafe.Add(ref pairs, k), q = Unsafe.Add(ref pairs, k + 1);
                    Unsafe.Add(ref h0, (nint)(uint)p) += delta;
                    Unsafe.Add(ref h0, (nint)(p >> 32)) += delta;
                    Unsafe.Add(ref h0, (nint)(uint)q) += delta;
                    Unsafe.Add(ref h0, (nint)(q >> 32)) += delta;
                }
            }
            min = HorizontalMin(vMin);
            max = HorizontalMax(vMax);
        }
        if (Vector.IsHardwareAccelerated && x.Length - i >= Vector<float>.Count)
        {
            ref int h1 = ref Unsafe.Add(ref h0, copies == 1 ? 0 : stride);
            var vf = new Vector<float>(factor);
            var vLast = new Vector<int>(last);
            var vBins = new Vector<int>(bins);
            var vMin = new Vector<float>(float.PositiveInfinity);
            var vMax = new Vector<float>(float.NegativeInfinity);
            int w = Vector<float>.Count;
            for (; i <= x.Length - w; i += w)
            {
                var v = Vector.LoadUnsafe(ref xr, (nuint)i);
                vMin = Vector.Min(vMin, v);
                vMax = Vector.Max(vMax, v);
                var b = Vector.Min(Vector.Max(Vector.ConvertToInt32(Vector.Abs(v) * vf), Vector<int>.Zero), vLast)
                        + (Vector.LessThan(v, Vector<float>.Zero) & vBins);
                for (int k = 0; k < w; k += 2)
                {
                    Unsafe.Add(ref h0, b[k]) += delta;
                    Unsafe.Add(ref h1, b[k + 1]) += delta;
                }
            }
            for (int k = 0; k < w; k++)
            {
                min = MathF.Min(min, vMin[k]);
                max = MathF.Max(max, vMax[k]);
            }
        }
        for (; i < x.Length; i++)
        {
            float v = Unsafe.Add(ref xr, i);
            min = MathF.Min(min, v);
            max = MathF.Max(max, v);
            float scaled = MathF.Abs(v) * factor;
            int b = scaled >= 0 ? Math.Min((int)MathF.Min(scaled, last), last) : 0;
            Unsafe.Add(ref h0, b + (v < 0 ? bins : 0)) += delta;
        }
        return (min, max);
    }

    /// <summary>
    /// The least lane, as folding the lanes with <see cref="MathF.Min"/> would give (IEEE 754:2019 minimum: NaN if any
    /// lane is NaN, -0 below +0, so the order of the folds does not matter), in four halving steps instead of 16 folds.
    /// </summary>
    private static float HorizontalMin(Vector512<float> v)
    {
        var h = Vector256.Min(v.GetLower(), v.GetUpper());
        var q = Vector128.Min(h.GetLower(), h.GetUpper());
        q = Vector128.Min(q, Vector128.Shuffle(q, Vector128.Create(2, 3, 0, 1)));
        q = Vector128.Min(q, Vector128.Shuffle(q, Vector128.Create(1, 0, 3, 2)));
        return q.ToScalar();
    }

    /// <summary>The greatest lane, as folding with <see cref="MathF.Max"/> would give (see <see cref="HorizontalMin"/>).</summary>
    private static float HorizontalMax(Vector512<float> v)
    {
        var h = Vector256.Max(v.GetLower(), v.GetUpper());
        var q = Vector128.Max(h.GetLower(), h.GetUpper());
        q = Vector128.Max(q, Vector128.Shuffle(q, Vector128.Create(2, 3, 0, 1)));
        q = Vector128.Max(q, Vector128.Shuffle(q, Vector128.Create(1, 0, 3, 2)));
        return q.ToScalar();
    }

    /// <summary>
    /// Min and max of <paramref name="x"/> with <see cref="MathF.Min"/>'s semantics (NaN if any element is NaN, -0 below
    /// +0): what <see cref="Bin"/> returns, for a piece that must be checked against the range before it is binned.
    /// </summary>
    public static (float Min, float Max) MinMax(ReadOnlySpan<float> x)
    {
        ref float xr = ref MemoryMarshal.GetReference(x);
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        int i = 0;
        if (Vector512.IsHardwareAccelerated && x.Length >= 32)
        {
            // Two accumulators each, so consecutive vectors do not wait on one another's min/max.
            var min0 = Vector512.Create(float.PositiveInfinity);
            var max0 = Vector512.Create(float.NegativeInfinity);
            var min1 = min0;
            var max1 = max0;
            for (; i <= x.Length - 32; i += 32)
            {
                var v = Vector512.LoadUnsafe(ref xr, (nuint)i);
                var w = Vector512.LoadUnsafe(ref xr, (nuint)(i + 16));
                min0 = Vector512.Min(min0, v);
                max0 = Vector512.Max(max0, v);
                min1 = Vector512.Min(min1, w);
                max1 = Vector512.Max(max1, w);
            }
            min = HorizontalMin(Vector512.Min(min0, min1));
            max = HorizontalMax(Vector512.Max(max0, max1));
        }
        for (; i < x.Length; i++)
        {
            float v = Unsafe.Add(ref xr, i);
            min = MathF.Min(min, v);
            max = MathF.Max(max, v);
        }
        return (min, max);
    }

    /// <summary>
    /// How many bins of each half data between <paramref name="min"/> and <paramref name="max"/> can have touched at
    /// <paramref name="factor"/> when it all fit the range (the rest of the scratch is still zero): what
    /// <see cref="Drain"/> must read. Nothing for empty data (min +∞, max −∞).
    /// </summary>
    public static (int Positive, int Negative) Reach(float min, float max, float factor, int bins) =>
        (max >= 0 ? BinsUpTo(max, factor, bins) : 0, min < 0 ? BinsUpTo(-min, factor, bins) : 0);

    private static int BinsUpTo(float absMax, float factor, int bins) => (int)Math.Min(bins, (long)MathF.Min(absMax * factor, bins) + 1);

    /// <summary>
    /// Adds the copies of a <see cref="Bin"/> scratch to the histograms, bin i to bin i &gt;&gt; <paramref name="shift"/>
    /// (the scratch was binned in a range 2^shift times narrower), and zeroes the scratch: only the first
    /// <paramref name="positiveBins"/> and <paramref name="negativeBins"/> bins of each half are read, the rest must be 0.
    /// </summary>
    public static void Drain(Span<int> hist, int bins, Span<long> positive, Span<long> negative, int positiveBins, int negativeBins, int shift,
        int copies = Copies)
    {
        if (hist.Length < ScratchLength(bins) || positive.Length < bins || negative.Length < bins) throw new ArgumentException("histogram too small");
        if ((uint)positiveBins > (uint)bins || (uint)negativeBins > (uint)bins || shift < 0) throw new ArgumentOutOfRangeException(nameof(shift));
        if (copies is not (1 or Copies)) throw new ArgumentOutOfRangeException(nameof(copies));
        DrainHalf(hist, 0, bins, positiveBins, shift, positive, copies);
        DrainHalf(hist, bins, bins, negativeBins, shift, negative, copies);
    }

    /// <summary>target[b &gt;&gt; shift] += the sum over the copies of hist[c * 2 * bins + offset + b], b &lt; count; those cleared.</summary>
    private static void DrainHalf(Span<int> hist, int offset, int bins, int count, int shift, Span<long> target, int copies)
    {
        int stride = 2 * bins;
        ref int h0 = ref Unsafe.Add(ref MemoryMarshal.GetReference(hist), offset);
        ref long t = ref MemoryMarshal.GetReference(target);
        int b = 0;
        if (shift == 0 && copies == 1 && Vector512.IsHardwareAccelerated)
            for (; b <= count - 16; b += 16)
            {
                var (lo, hi) = Vector512.Widen(Vector512.LoadUnsafe(ref h0, (nuint)b));
                Vector512<int>.Zero.StoreUnsafe(ref h0, (nuint)b);
                (Vector512.LoadUnsafe(ref t, (nuint)b) + lo).StoreUnsafe(ref t, (nuint)b);
                (Vector512.LoadUnsafe(ref t, (nuint)(b + 8)) + hi).StoreUnsafe(ref t, (nuint)(b + 8));
            }
        else if (shift == 0 && Vector512.IsHardwareAccelerated)
            for (; b <= count - 16; b += 16)
            {
                // The copies together count at most one call's elements (an int length), so their int sum cannot overflow.
                var sum = Vector512.LoadUnsafe(ref h0, (nuint)b) + Vector512.LoadUnsafe(ref h0, (nuint)(stride + b))
                          + Vector512.LoadUnsafe(ref h0, (nuint)(2 * stride + b)) + Vector512.LoadUnsafe(ref h0, (nuint)(3 * stride + b));
                for (int c = 0; c < Copies; c++) Vector512<int>.Zero.StoreUnsafe(ref h0, (nuint)(c * stride + b));
                var (lo, hi) = Vector512.Widen(sum);
                (Vector512.LoadUnsafe(ref t, (nuint)b) + lo).StoreUnsafe(ref t, (nuint)b);
                (Vector512.LoadUnsafe(ref t, (nuint)(b + 8)) + hi).StoreUnsafe(ref t, (nuint)(b + 8));
            }
        int s = Math.Min(shift, 31);
        for (; b < count; b++)
        {
            long sum = 0;
            for (int c = 0; c < copies; c++)
            {
                ref int h = ref Unsafe.Add(ref h0, c * stride + b);
                sum += h;
                h = 0;
            }
            Unsafe.Add(ref t, b >> s) += sum;
        }
    }

    /// <summary>Reference (scalar, one element at a time, skipping non-finite) binning for tests and NaN inputs.</summary>
    public static long BinScalar(ReadOnlySpan<float> x, float factor, int bins, Span<long> positive, Span<long> negative)
    {
        long skipped = 0;
        foreach (var v in x)
        {
            if (!float.IsFinite(v)) { skipped++; continue; }
            int b = Math.Min((int)(MathF.Abs(v) * factor), bins - 1);
            if (v < 0) negative[b]++; else positive[b]++;
        }
        return skipped;
    }
}
