using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// One int8 depthwise channel (one input and one output channel per group) with int32 sums (acc_bits 32), in blocks of
/// output rows so that everything a block touches stays in L1: the block's padded input rows as x − z_x (zero border;
/// with a column stride the row is split into stride phases, so every tap reads one contiguous run), then per output
/// row all taps accumulated in registers (16 lanes) and one store, then the block requantized straight into Y.
/// <para>The vector path multiplies and adds in float32 (fused multiply-add, twice the rate of int32 multiplies):
/// every product (x − z_x)·w is an integer of magnitude ≤ 255·128 = 32640 and every partial sum of at most
/// <see cref="MaxTaps"/> of them stays below 2^24, so each float result is the exact integer, and the bias is added
/// in int32 afterwards. The exact sums are those of the reference, so the bits are the same.</para>
/// </summary>
internal static class QConvDepthwise
{
    /// <summary>Output rows per block.</summary>
    private const int BlockRows = 8;

    /// <summary>Most taps the register path takes (a larger kernel runs the scalar loop); far below the 514 taps at
    /// which a float partial sum could leave the exact integers (2^24 / 32640).</summary>
    public const int MaxTaps = 64;

    public readonly record struct Shape(int H, int W, int OH, int OW, int SH, int SW, int DH, int DW, int PT, int PL, int KH, int KW);

    /// <summary>
    /// Channel <paramref name="m"/>: <paramref name="x"/> is its H·W input plane, <paramref name="w"/> its KH·KW taps;
    /// the accumulators go through <paramref name="write"/>(block, first output row) for the requantization.
    /// </summary>
    public static void Run(ReadOnlySpan<sbyte> x, Shape g, ReadOnlySpan<int> w, int bias, int zx, bool vector, SpanWriter write)
    {
        int sw = g.SW, pw = (g.OW - 1) * sw + (g.KW - 1) * g.DW + 1, qw = (pw + sw - 1) / sw, pitch = sw * qw;
        int rows = Math.Min(BlockRows, g.OH), taps = g.KH * g.KW;
        int bufRows = (rows - 1) * g.SH + (g.KH - 1) * g.DH + 1;
        var buf = ArrayPool<float>.Shared.Rent(bufRows * pitch);
        var acc = ArrayPool<int>.Shared.Rent(rows * g.OW);
        // Where tap (kh, kw) starts within the block buffer, relative to the output row's first padded row.
        Span<int> off = stackalloc int[taps];
        for (int t = 0; t < taps; t++)
        {
            int kh = t / g.KW, e = t % g.KW * g.DW;
            off[t] = kh * g.DH * pitch + e % sw * qw + e / sw;
        }
        for (int oh0 = 0; oh0 < g.OH; oh0 += rows)
        {
            int r = Math.Min(rows, g.OH - oh0), need = (r - 1) * g.SH + (g.KH - 1) * g.DH + 1;
            for (int i = 0; i < need; i++)
                PadRow(x, g, oh0 * g.SH + i - g.PT, zx, pw, qw, buf.AsSpan(i * pitch, pitch), vector);
            for (int rr = 0; rr < r; rr++)
                Taps(buf.AsSpan(0, bufRows * pitch), rr * g.SH * pitch, off, w, bias, acc.AsSpan(rr * g.OW, g.OW), vector);
            write(acc.AsSpan(0, r * g.OW), oh0);
        }
        ArrayPool<int>.Shared.Return(acc);
        ArrayPool<float>.Shared.Return(buf);
    }

    public delegate void SpanWriter(ReadOnlySpan<int> acc, int firstRow);

    /// <summary>Padded row <paramref name="ih"/> (input row, or border) as x − z_x in float (exact: |x − z_x| ≤ 255), its
    /// columns split into stride phases.</summary>
    private static void PadRow(ReadOnlySpan<sbyte> x, Shape g, int ih, int zx, int pw, int qw, Span<float> dst, bool vector)
    {
        dst.Clear();
        if ((uint)ih >= (uint)g.H) return;
        var src = x.Slice(ih * g.W, g.W);
        int c0 = Math.Max(0, g.PL), c1 = Math.Min(pw, g.PL + g.W);
        if (c1 <= c0) return;
        if (g.SW == 1)
        {
            var d = dst.Slice(c0, c1 - c0);
            var from = src.Slice(c0 - g.PL, c1 - c0);
            int i = 0;
            if (vector && Avx512F.IsSupported)
            {
                var z = Vector512.Create(zx);
                ref sbyte sr = ref MemoryMarshal.GetReference(from);
                ref float dr = ref MemoryMarshal.GetReference(d);
                for (; i <= d.Length - 16; i += 16)
                    Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.LoadUnsafe(ref sr, (nuint)i)) - z).StoreUnsafe(ref dr, (nuint)i);
            }
            for (; i < d.Length; i++) d[i] = from[i] - zx;
            return;
        }
        if (g.SW == 2 && vector && Avx512F.IsSupported)
        {
            SplitPairs(src, g.PL, c0, c1, zx, dst[..qw], dst.Slice(qw, qw));
            return;
        }
        // Phase f holds columns f, f + SW, …: one strided pass per phase, no division per element.
        for (int f = 0; f < g.SW; f++)
        {
            int first = c0 + ((f - c0) % g.SW + g.SW) % g.SW;
            var d = dst.Slice(f * qw, qw);
            for (int c = first, q = first / g.SW; c < c1; c += g.SW, q++) d[q] = src[c - g.PL] - zx;
        }
    }

    /// <summary>
    /// Stride 2: padded columns [c0, c1) of the row (column c is src[c − pl]) as x − z_x into the even and odd phases
    /// (column c at position c / 2 of phase c mod 2), 32 columns per step: widen, convert, then one two-source permute
    /// per phase. The same values as the strided loop.
    /// </summary>
    private static void SplitPairs(ReadOnlySpan<sbyte> src, int pl, int c0, int c1, int zx, Span<float> even, Span<float> odd)
    {
        int c = c0;
        if ((c & 1) != 0 && c < c1) { odd[c / 2] = src[c - pl] - zx; c++; }
        var z = Vector512.Create(zx);
        var evens = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        var odds = evens + Vector512<int>.One;
        ref sbyte sr = ref MemoryMarshal.GetReference(src);
        ref float er = ref MemoryMarshal.GetReference(even);
        ref float or = ref MemoryMarshal.GetReference(odd);
        for (; c + 32 <= c1; c += 32)
        {
            var a = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.LoadUnsafe(ref sr, (nuint)(c - pl))) - z);
            var b = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.LoadUnsafe(ref sr, (nuint)(c - pl + 16))) - z);
            Avx512F.PermuteVar16x32x2(a, evens, b).StoreUnsafe(ref er, (nuint)(c / 2));
            Avx512F.PermuteVar16x32x2(a, odds, b).StoreUnsafe(ref or, (nuint)(c / 2));
        }
        for (; c < c1; c++)
            if ((c & 1) == 0) even[c / 2] = src[c - pl] - zx;
            else odd[c / 2] = src[c - pl] - zx;
    }

    /// <summary>One output row: bias + Σ_t w[t]·buf[base + off[t] + ow], all taps in registers per 16 outputs.</summary>
    private static void Taps(ReadOnlySpan<float> buf, int start, ReadOnlySpan<int> off, ReadOnlySpan<int> w, int bias, Span<int> row, bool vector)
    {
        int n = row.Length, taps = w.Length, i = 0;
        if (vector && Avx512F.IsSupported && taps <= MaxTaps && n >= 16)
        {
            Span<Vector512<float>> wv = stackalloc Vector512<float>[taps];
            for (int t = 0; t < taps; t++) wv[t] = Vector512.Create((float)w[t]);
            ref float b = ref MemoryMarshal.GetReference(buf);
            ref int o = ref MemoryMarshal.GetReference(row);
            var vb = Vector512.Create(bias);
            for (; i <= n - 64; i += 64) Sum4(ref b, start + i, off, wv, vb, ref Unsafe.Add(ref o, i));
            for (; i <= n - 16; i += 16)
                (Sum(ref b, start + i, off, wv) + vb).StoreUnsafe(ref o, (nuint)i);
            // The tail: the last 16 outputs again (same sums), so no scalar loop is needed.
            if (i < n) (Sum(ref b, start + n - 16, off, wv) + vb).StoreUnsafe(ref o, (nuint)(n - 16));
            return;
        }
        for (; i < n; i++)
        {
            int s = bias;
            for (int t = 0; t < taps; t++) s += (int)buf[start + off[t] + i] * w[t];
            row[i] = s;
        }
    }

    /// <summary>
    /// Σ_t w[t]·buf[at + off[t] .. + 16] in float, exact (see the class remarks), as int32 lanes. Even and odd taps go
    /// to two accumulators, so two multiply-add chains overlap (the sums are exact integers, so the order is free).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Sum(ref float b, int at, ReadOnlySpan<int> off, ReadOnlySpan<Vector512<float>> wv)
    {
        Vector512<float> s0 = Vector512<float>.Zero, s1 = Vector512<float>.Zero;
        int t = 0;
        for (; t + 2 <= wv.Length; t += 2)
        {
            s0 = Avx512F.FusedMultiplyAdd(Vector512.LoadUnsafe(ref b, (nuint)(at + off[t])), wv[t], s0);
            s1 = Avx512F.FusedMultiplyAdd(Vector512.LoadUnsafe(ref b, (nuint)(at + off[t + 1])), wv[t + 1], s1);
        }
        if (t < wv.Length) s0 = Avx512F.FusedMultiplyAdd(Vector512.LoadUnsafe(ref b, (nuint)(at + off[t])), wv[t], s0);
        return Avx512F.ConvertToVector512Int32(s0 + s1);
    }

    /// <summary>64 outputs at once: four independent multiply-add chains share each tap's weight and offset.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Sum4(ref float b, int at, ReadOnlySpan<int> off, ReadOnlySpan<Vector512<float>> wv, Vector512<int> bias, ref int o)
    {
        Vector512<float> s0 = Vector512<float>.Zero, s1 = s0, s2 = s0, s3 = s0;
        for (int t = 0; t < wv.Length; t++)
        {
            ref float src = ref Unsafe.Add(ref b, at + off[t]);
            var w = wv[t];
            s0 = Avx512F.FusedMultiplyAdd(Vector512.LoadUnsafe(ref src), w, s0);
            s1 = Avx512F.FusedMultiplyAdd(Vector512.LoadUnsafe(ref src, 16), w, s1);
            s2 = Avx512F.FusedMultiplyAdd(Vector512.LoadUnsafe(ref src, 32), w, s2);
            s3 = Avx512F.FusedMultiplyAdd(Vector512.LoadUnsafe(ref src, 48), w, s3);
        }
        (Avx512F.ConvertToVector512Int32(s0) + bias).StoreUnsafe(ref o);
        (Avx512F.ConvertToVector512Int32(s1) + bias).StoreUnsafe(ref o, 16);
        (Avx512F.ConvertToVector512Int32(s2) + bias).StoreUnsafe(ref o, 32);
        (Avx512F.ConvertToVector512Int32(s3) + bias).StoreUnsafe(ref o, 48);
    }
}
