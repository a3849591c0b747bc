using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quant.Engine.Kernels.Common;

/// <summary>
/// Direct depthwise 2-D convolution of one channel: y[oy, ox] = bias + Σ_{ky,kx} w[ky,kx]·x[oy*SH-PT+ky*DH, ox*SW-PL+kx*DW]
/// (zero outside), summed over ky then kx in increasing order with one fused multiply-add per term
/// (plain multiply-add on the portable path). The input plane is first copied into a zero-bordered
/// scratch so the vectorized loop along ox needs no border tests; for strides other than 1 (and 2 with
/// AVX-512, which de-interleaves in registers) the scratch is split by column phase (position mod SW)
/// so every tap reads a contiguous run. With AVX-512, four output rows are computed together so that each
/// tap feeds several independent FMA chains (same per-output order, so the same bits as one row at a time).
/// </summary>
internal static class Depthwise
{
    /// <summary>Scratch floats <see cref="Run"/> needs for geometry <paramref name="g"/>.</summary>
    public static int ScratchSize(in Conv2DGeometry g)
    {
        var (hp, wp) = Padded(g);
        return hp * (wp + g.SW) + Slack;
    }

    private const int Slack = 64;

    private static (int Hp, int Wp) Padded(in Conv2DGeometry g) =>
        ((g.OH - 1) * g.SH + (g.KH - 1) * g.DH + 1, (g.OW - 1) * g.SW + (g.KW - 1) * g.DW + 1);

    private static bool V512 => Vector512.IsHardwareAccelerated && Avx512F.IsSupported;

    public static unsafe void Run(in Conv2DGeometry g, float[] x, int xOffset, float[] w, int wOffset, float bias,
        float[] y, int yOffset, float[] scratch, bool allowFma = true)
    {
        var (hp, wp) = Padded(g);
        int sw = g.SW;
        bool v512 = allowFma && V512;
        bool v256 = allowFma && Avx2.IsSupported && Fma.IsSupported;
        // Plain layout: padded rows as they are; tap (ky, kx) for output ox reads row[ox*sw + kx*DW].
        // Split layout: phase p = pos mod sw at [p*lp + pos/sw], so that read becomes contiguous in ox.
        bool plain = sw == 1 || (sw == 2 && v512);
        int lp = plain ? wp : (wp + sw - 1) / sw;
        int rowStride = plain ? wp : sw * lp;
        if (scratch.Length < hp * rowStride + Slack) throw new ArgumentException("depthwise scratch is too small");
        fixed (float* xb = x)
        fixed (float* sb = scratch)
        fixed (float* wb = w)
        fixed (float* yb = y)
        {
            float* src = xb + xOffset;
            for (int r = 0; r < hp; r++)
            {
                int iy = r - g.PT;
                float* drow = sb + (nint)r * rowStride;
                if ((uint)iy >= (uint)g.H)
                {
                    new Span<float>(drow, rowStride).Clear();
                    continue;
                }
                float* srow = src + (nint)iy * g.W;
                int phases = plain ? 1 : sw, step = plain ? 1 : sw;
                for (int p = 0; p < phases; p++)
                {
                    // Scratch index i of this phase reads ix = i*step + p - PL; valid for lo <= i < hi.
                    float* d = drow + p * lp;
                    int off = p - g.PL;
                    int lo = off >= 0 ? 0 : Math.Min(lp, (-off + step - 1) / step);
                    int hi = g.W - off <= 0 ? 0 : Math.Min(lp, (g.W - off - 1) / step + 1);
                    hi = Math.Max(hi, lo);
                    new Span<float>(d, lo).Clear();
                    if (step == 1)
                        Buffer.MemoryCopy(srow + lo + off, d + lo, (hi - lo) * 4, (hi - lo) * 4);
                    else
                    {
                        float* s = srow + (nint)lo * step + off;
                        for (int i = lo; i < hi; i++, s += step) d[i] = *s;
                    }
                    new Span<float>(d + hi, lp - hi).Clear();
                }
            }

            // Zeroed slack after the last row: vector tails read up to 31 floats past the last padded row
            // (lanes whose outputs are discarded), and garbage there could be subnormal, which slows the FMAs.
            new Span<float>(sb + (nint)hp * rowStride, Slack).Clear();

            int taps = g.KH * g.KW;
            int* tapOff = stackalloc int[taps];
            for (int ky = 0; ky < g.KH; ky++)
                for (int kx = 0; kx < g.KW; kx++)
                {
                    int pos = kx * g.DW;
                    tapOff[ky * g.KW + kx] = ky * g.DH * rowStride + (plain ? pos : (pos % sw) * lp + pos / sw);
                }
            int oxStep = plain ? sw : 1;
            float* wt = wb + wOffset;
            nint rowStep = (nint)g.SH * rowStride;
            if (v512)
            {
                for (int oy = 0; oy < g.OH;)
                {
                    float* rowBase = sb + oy * rowStep;
                    float* yrow = yb + yOffset + (nint)oy * g.OW;
                    if (g.OH - oy >= 4)
                    {
                        if (oxStep == 2) Rows4<EvenLanes>(rowBase, rowStep, tapOff, taps, wt, bias, yrow, g.OW);
                        else Rows4<Contiguous>(rowBase, rowStep, tapOff, taps, wt, bias, yrow, g.OW);
                        oy += 4;
                    }
                    else
                    {
                        if (oxStep == 2) Row1<EvenLanes>(rowBase, tapOff, taps, wt, bias, yrow, g.OW);
                        else Row1<Contiguous>(rowBase, tapOff, taps, wt, bias, yrow, g.OW);
                        oy++;
                    }
                }
                return;
            }
            for (int oy = 0; oy < g.OH; oy++)
            {
                float* rowBase = sb + oy * rowStep;
                float* yrow = yb + yOffset + (nint)oy * g.OW;
                int ox = 0;
                if (v256 && oxStep == 1)
                    ox = Rows256(rowBase, tapOff, taps, wt, bias, yrow, ox, g.OW);
                for (; ox < g.OW; ox++)
                {
                    float acc = bias;
                    float* p = rowBase + (nint)ox * oxStep;
                    if (allowFma)
                        for (int t = 0; t < taps; t++) acc = MathF.FusedMultiplyAdd(wt[t], p[tapOff[t]], acc);
                    else
                        for (int t = 0; t < taps; t++) acc += wt[t] * p[tapOff[t]];
                    yrow[ox] = acc;
                }
            }
        }
    }

    /// <summary>How 16 consecutive outputs of a row read one tap: 16 consecutive floats, or the even ones of 32 (stride 2).</summary>
    private interface ILanes
    {
        static abstract int Step { get; }
        static abstract unsafe Vector512<float> Load(float* p);
    }

    private struct Contiguous : ILanes
    {
        public static int Step => 1;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static unsafe Vector512<float> Load(float* p) => Vector512.Load(p);
    }

    private struct EvenLanes : ILanes
    {
        public static int Step => 2;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static unsafe Vector512<float> Load(float* p) =>
            Avx512F.PermuteVar16x32x2(Vector512.Load(p), Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), Vector512.Load(p + 16));
    }

    /// <summary>
    /// Four output rows at once (rows rowStep floats apart in the scratch): a tap's weight feeds up to eight
    /// independent accumulator chains, where one row alone leaves the FMA units waiting on the latency of a
    /// single chain. Each output still gets bias then the taps in order, so the bits do not change.
    /// The last 1..15 columns run a full vector that reads past the row (into the next row or the zeroed slack) and store only the valid lanes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Rows4<TLanes>(float* rowBase, nint rowStep, int* tapOff, int taps, float* wt, float bias, float* yrow, int ow)
        where TLanes : struct, ILanes
    {
        int step = TLanes.Step;
        var bv = Vector512.Create(bias);
        float* r0 = rowBase, r1 = rowBase + rowStep, r2 = rowBase + 2 * rowStep, r3 = rowBase + 3 * rowStep;
        float* y0 = yrow, y1 = yrow + ow, y2 = yrow + 2 * ow, y3 = yrow + 3 * ow;
        int ox = 0;
        for (; ox + 32 <= ow; ox += 32)
        {
            Vector512<float> a0 = bv, a1 = bv, b0 = bv, b1 = bv, c0 = bv, c1 = bv, d0 = bv, d1 = bv;
            nint o = (nint)ox * step, o2 = o + 16 * step;
            for (int t = 0; t < taps; t++)
            {
                var wv = Vector512.Create(wt[t]);
                nint q = tapOff[t];
                a0 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(r0 + q + o), a0);
                a1 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(r0 + q + o2), a1);
                b0 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(r1 + q + o), b0);
                b1 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(r1 + q + o2), b1);
                c0 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(r2 + q + o), c0);
                c1 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(r2 + q + o2), c1);
                d0 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(r3 + q + o), d0);
                d1 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(r3 + q + o2), d1);
            }
            a0.Store(y0 + ox); a1.Store(y0 + ox + 16);
            b0.Store(y1 + ox); b1.Store(y1 + ox + 16);
            c0.Store(y2 + ox); c1.Store(y2 + ox + 16);
            d0.Store(y3 + ox); d1.Store(y3 + ox + 16);
        }
        for (; ox < ow; ox += 16)
        {
            Vector512<float> a0 = bv, b0 = bv, c0 = bv, d0 = bv;
            nint o = (nint)ox * step;
            for (int t = 0; t < taps; t++)
            {
                var wv = Vector512.Create(wt[t]);
                nint q = tapOff[t] + o;
                a0 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(r0 + q), a0);
                b0 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(r1 + q), b0);
                c0 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(r2 + q), c0);
                d0 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(r3 + q), d0);
            }
            int n = Math.Min(16, ow - ox);
            StoreFirst(a0, y0 + ox, n);
            StoreFirst(b0, y1 + ox, n);
            StoreFirst(c0, y2 + ox, n);
            StoreFirst(d0, y3 + ox, n);
        }
    }

    /// <summary>One output row, up to four vectors of columns at a time (see <see cref="Rows4"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Row1<TLanes>(float* rowBase, int* tapOff, int taps, float* wt, float bias, float* yrow, int ow)
        where TLanes : struct, ILanes
    {
        int step = TLanes.Step;
        var bv = Vector512.Create(bias);
        int ox = 0;
        for (; ox + 64 <= ow; ox += 64)
        {
            Vector512<float> a0 = bv, a1 = bv, a2 = bv, a3 = bv;
            float* p = rowBase + (nint)ox * step;
            for (int t = 0; t < taps; t++)
            {
                var wv = Vector512.Create(wt[t]);
                float* q = p + tapOff[t];
                a0 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(q), a0);
                a1 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(q + 16 * step), a1);
                a2 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(q + 32 * step), a2);
                a3 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(q + 48 * step), a3);
            }
            a0.Store(yrow + ox); a1.Store(yrow + ox + 16); a2.Store(yrow + ox + 32); a3.Store(yrow + ox + 48);
        }
        for (; ox + 32 <= ow; ox += 32)
        {
            Vector512<float> a0 = bv, a1 = bv;
            float* p = rowBase + (nint)ox * step;
            for (int t = 0; t < taps; t++)
            {
                var wv = Vector512.Create(wt[t]);
                float* q = p + tapOff[t];
                a0 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(q), a0);
                a1 = Avx512F.FusedMultiplyAdd(wv, TLanes.Load(q + 16 * step), a1);
            }
            a0.Store(yrow + ox); a1.Store(yrow + ox + 16);
        }
        for (; ox < ow; ox += 16)
        {
            var a0 = bv;
            float* p = rowBase + (nint)ox * step;
            for (int t = 0; t < taps; t++)
                a0 = Avx512F.FusedMultiplyAdd(Vector512.Create(wt[t]), TLanes.Load(p + tapOff[t]), a0);
            StoreFirst(a0, yrow + ox, Math.Min(16, ow - ox));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void StoreFirst(Vector512<float> v, float* dst, int n)
    {
        if (n == 16)
        {
            v.Store(dst);
            return;
        }
        float* lanes = (float*)&v;
        for (int i = 0; i < n; i++) dst[i] = lanes[i];
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe int Rows256(float* rowBase, int* tapOff, int taps, float* wt, float bias, float* yrow, int ox, int ow)
    {
        var bv = Vector256.Create(bias);
        for (; ox + 8 <= ow; ox += 8)
        {
            var a0 = bv;
            float* p = rowBase + ox;
            for (int t = 0; t < taps; t++)
                a0 = Fma.MultiplyAdd(Vector256.Create(wt[t]), Vector256.Load(p + tapOff[t]), a0);
            a0.Store(yrow + ox);
        }
        return ox;
    }
}
