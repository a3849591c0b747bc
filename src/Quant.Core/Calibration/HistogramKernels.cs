using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Quant.Core.Calibration;

/// <summary>The calibration hot loop: binning |x| into a sign-split histogram.</summary>
internal static class HistogramKernels
{
    /// <summary>
    /// Adds every element of <paramref name="x"/> to <paramref name="hist"/>: bin floor(|x| * factor),
    /// clamped to [0, bins), at [0, bins) for x &gt;= 0 and at [bins, 2*bins) for x &lt; 0.
    /// <paramref name="hist"/> holds two interleaved copies (2 * 2 * bins ints) so that runs of equal
    /// values (the zeros after a Relu) alternate between two counters instead of serializing on one.
    /// Returns min and max of <paramref name="x"/> from the same pass (NaN if any element is NaN);
    /// the caller checks them and rebins when the data did not fit (clamped elements are then wrong).
    /// </summary>
    public static (float Min, float Max) Bin(ReadOnlySpan<float> x, float factor, int bins, Span<int> hist)
    {
        int stride = 2 * bins;
        if (hist.Length < 2 * stride) throw new ArgumentException("histogram scratch too small");
        ref int h0 = ref MemoryMarshal.GetReference(hist);
        ref int h1 = ref Unsafe.Add(ref h0, stride);
        ref float xr = ref MemoryMarshal.GetReference(x);
        int i = 0;
        int last = bins - 1;
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<float>.Count)
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
                // Clamping both ways keeps every index inside the histogram whatever the input
                // (NaN, infinities, data beyond the range); such data is detected from min/max.
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
