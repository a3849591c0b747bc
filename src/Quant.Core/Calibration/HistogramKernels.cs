using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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
        if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported && x.Length >= Vector512<float>.Count)
        {
            (i, min, max) = Bin512(x, factor, bins, ref h0, ref h1);
        }
        else if (Vector.IsHardwareAccelerated && x.Length >= Vector<float>.Count)
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

    /// <summary>Elements per index block of <see cref="Bin512"/>: the indices of one block stay in L1 on the stack.</summary>
    private const int IndexBlock = 512;

    /// <summary>
    /// The AVX-512 body of <see cref="Bin"/>: indices of a block of 16-lane vectors are computed and stored to a stack
    /// buffer first (the same arithmetic as the <see cref="Vector{T}"/> path: |x| * factor truncated, clamped both ways,
    /// + bins for x &lt; 0), then the counters are incremented from that buffer in a plain scalar loop. Pulling lanes
    /// out of a vector register one at a time cost more than the increments themselves. Returns how many elements it
    /// consumed (a multiple of 16) and their min and max (Vector512.Min/Max order -0 below +0 and propagate NaN, as
    /// MathF.Min/Max do, so the result does not depend on the lane a value fell in).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static (int Consumed, float Min, float Max) Bin512(ReadOnlySpan<float> x, float factor, int bins, ref int h0, ref int h1)
    {
        const int w = 16;
        var vf = Vector512.Create(factor);
        var vLast = Vector512.Create((uint)(bins - 1));
        var vBins = Vector512.Create(bins);
        var vMin = Vector512.Create(float.PositiveInfinity);
        var vMax = Vector512.Create(float.NegativeInfinity);
        ref float xr = ref MemoryMarshal.GetReference(x);
        Span<int> indices = stackalloc int[IndexBlock];
        ref int ir = ref MemoryMarshal.GetReference(indices);
        int end = x.Length & ~(w - 1);
        int i = 0;
        while (i < end)
        {
            int block = Math.Min(IndexBlock, end - i);
            for (int j = 0; j < block; j += w)
            {
                var v = Vector512.LoadUnsafe(ref xr, (nuint)(i + j));
                vMin = Vector512.Min(vMin, v);
                vMax = Vector512.Max(vMax, v);
                // The raw truncating conversion gives 0x80000000 for NaN and out-of-range lanes; as unsigned that is
                // above the last bin, so one unsigned min clamps every lane into the histogram (for in-range data the
                // index is the same as the portable path's).
                var raw = Avx512F.ConvertToVector512Int32WithTruncation(Vector512.Abs(v) * vf).AsUInt32();
                var b = Vector512.Min(raw, vLast).AsInt32() + (Vector512.LessThan(v, Vector512<float>.Zero).AsInt32() & vBins);
                b.StoreUnsafe(ref ir, (nuint)j);
            }
            // Two interleaved copies: a run of equal values (the zeros after a Relu) alternates between two counters.
            for (int j = 0; j < block; j += 4)
            {
                Unsafe.Add(ref h0, Unsafe.Add(ref ir, j))++;
                Unsafe.Add(ref h1, Unsafe.Add(ref ir, j + 1))++;
                Unsafe.Add(ref h0, Unsafe.Add(ref ir, j + 2))++;
                Unsafe.Add(ref h1, Unsafe.Add(ref ir, j + 3))++;
            }
            i += block;
        }
        return (i, Reduce(vMin, min: true), Reduce(vMax, min: false));
    }

    private static float Reduce(Vector512<float> v, bool min)
    {
        float r = v[0];
        for (int k = 1; k < Vector512<float>.Count; k++) r = min ? MathF.Min(r, v[k]) : MathF.Max(r, v[k]);
        return r;
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
