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
    /// <see cref="Copies"/> copies of that layout (<see cref="AddTo"/> sums them).
    /// Returns min and max of <paramref name="x"/> from the same pass (NaN if any element is NaN);
    /// the caller checks them and rebins when the data did not fit (clamped elements are then wrong).
    /// </summary>
    public static (float Min, float Max) Bin(ReadOnlySpan<float> x, float factor, int bins, Span<int> hist)
    {
        int stride = 2 * bins;
        if (hist.Length < ScratchLength(bins)) throw new ArgumentException("histogram scratch too small");
        ref int h0 = ref MemoryMarshal.GetReference(hist);
        ref int h1 = ref Unsafe.Add(ref h0, stride);
        ref int h2 = ref Unsafe.Add(ref h1, stride);
        ref int h3 = ref Unsafe.Add(ref h2, stride);
        ref float xr = ref MemoryMarshal.GetReference(x);
        int i = 0;
        int last = bins - 1;
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        if (Vector512.IsHardwareAccelerated && x.Length >= Block)
        {
            // Indices of a block in 16 lanes, stored, then incremented from the buffer: one load per element instead
            // of extracting lanes from a register.
            var vf = Vector512.Create(factor);
            var vLast = Vector512.Create(last);
            var vBins = Vector512.Create(bins);
            var vMin = Vector512.Create(float.PositiveInfinity);
            var vMax = Vector512.Create(float.NegativeInfinity);
            Span<int> index = stackalloc int[Block];
            ref int ix = ref MemoryMarshal.GetReference(index);
            for (; i <= x.Length - Block; i += Block)
            {
                for (int k = 0; k < Block; k += 16)
                {
                    var v = Vector512.LoadUnsafe(ref xr, (nuint)(i + k));
                    vMin = Vector512.Min(vMin, v);
                    vMax = Vector512.Max(vMax, v);
                    // Clamping both ways keeps every index inside the histogram whatever the input
                    // (NaN, infinities, data beyond the range); such data is detected from min/max.
                    var b = Vector512.Min(Vector512.Max(Vector512.ConvertToInt32(Vector512.Abs(v) * vf), Vector512<int>.Zero), vLast)
                            + (Vector512.LessThan(v, Vector512<float>.Zero).AsInt32() & vBins);
                    b.StoreUnsafe(ref ix, (nuint)k);
                }
                for (int k = 0; k < Block; k += Copies)
                {
                    Unsafe.Add(ref h0, Unsafe.Add(ref ix, k))++;
                    Unsafe.Add(ref h1, Unsafe.Add(ref ix, k + 1))++;
                    Unsafe.Add(ref h2, Unsafe.Add(ref ix, k + 2))++;
                    Unsafe.Add(ref h3, Unsafe.Add(ref ix, k + 3))++;
                }
            }
            for (int k = 0; k < 16; k++)
            {
                min = MathF.Min(min, vMin[k]);
                max = MathF.Max(max, vMax[k]);
            }
        }
        if (Vector.IsHardwareAccelerated && x.Length - i >= Vector<float>.Count)
        {
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
                    Unsafe.Add(ref h0, b[k])++;
                    Unsafe.Add(ref h1, b[k + 1])++;
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
            Unsafe.Add(ref h0, b + (v < 0 ? bins : 0))++;
        }
        return (min, max);
    }

    /// <summary>Adds the copies of a <see cref="Bin"/> scratch to the positive and negative histograms.</summary>
    public static void AddTo(ReadOnlySpan<int> hist, int bins, Span<long> positive, Span<long> negative)
    {
        AddCopies(hist, 0, bins, positive);
        AddCopies(hist, bins, bins, negative);
    }

    /// <summary>target[b] += the sum over the copies of hist[c * 2 * bins + offset + b].</summary>
    private static void AddCopies(ReadOnlySpan<int> hist, int offset, int bins, Span<long> target)
    {
        int stride = 2 * bins;
        if (target.Length < bins || hist.Length < ScratchLength(bins)) throw new ArgumentException("histogram too small");
        ref int h0 = ref Unsafe.Add(ref MemoryMarshal.GetReference(hist), offset);
        ref long t = ref MemoryMarshal.GetReference(target);
        int b = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; b <= bins - 16; b += 16)
            {
                // The copies together count at most one call's elements (an int length), so their int sum cannot overflow.
                var sum = Vector512.LoadUnsafe(ref h0, (nuint)b) + Vector512.LoadUnsafe(ref h0, (nuint)(stride + b))
                          + Vector512.LoadUnsafe(ref h0, (nuint)(2 * stride + b)) + Vector512.LoadUnsafe(ref h0, (nuint)(3 * stride + b));
                var (lo, hi) = Vector512.Widen(sum);
                (Vector512.LoadUnsafe(ref t, (nuint)b) + lo).StoreUnsafe(ref t, (nuint)b);
                (Vector512.LoadUnsafe(ref t, (nuint)(b + 8)) + hi).StoreUnsafe(ref t, (nuint)(b + 8));
            }
        for (; b < bins; b++)
            Unsafe.Add(ref t, b) += (long)Unsafe.Add(ref h0, b) + Unsafe.Add(ref h0, stride + b) + Unsafe.Add(ref h0, 2 * stride + b) + Unsafe.Add(ref h0, 3 * stride + b);
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
