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
/// so every tap reads a contiguous run.
/// </summary>
internal static class Depthwise
{
    /// <summary>Scratch floats <see cref="Run"/> needs for geometry <paramref name="g"/>.</summary>
    public static int ScratchSize(in Conv2DGeometry g)
    {
        var (hp, wp) = Padded(g);
        return hp * (wp + g.SW) + 32;
    }

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
        if (scratch.Length < hp * rowStride) throw new ArgumentException("depthwise scratch is too small");
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
            for (int oy = 0; oy < g.OH; oy++)
            {
                float* rowBase = sb + (nint)oy * g.SH * rowStride;
                float* yrow = yb + yOffset + (nint)oy * g.OW;
                int ox = 0;
                if (v512)
                    ox = oxStep == 2 ? Rows512Stride2(rowBase, tapOff, taps, wt, bias, yrow, g.OW, wp)
                        : Rows512(rowBase, tapOff, taps, wt, bias, yrow, g.OW);
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

    /// <summary>Stride 2 on the plain layout: each tap loads 32 consecutive floats and keeps the even lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe int Rows512Stride2(float* rowBase, int* tapOff, int taps, float* wt, float bias, float* yrow, int ow, int wp)
    {
        var even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        var bv = Vector512.Create(bias);
        int maxTap = 0;
        for (int t = 0; t < taps; t++) maxTap = Math.Max(maxTap, tapOff[t] % Math.Max(1, wp));
        int ox = 0;
        // Lanes used by the last tap stay inside the padded row (lane 31 may read one float past it, still in scratch).
        for (; ox + 16 <= ow && 2 * ox + maxTap + 31 <= wp; ox += 16)
        {
            var a0 = bv;
            float* p = rowBase + 2 * (nint)ox;
            for (int t = 0; t < taps; t++)
            {
                float* q = p + tapOff[t];
                var v = Avx512F.PermuteVar16x32x2(Vector512.Load(q), even, Vector512.Load(q + 16));
                a0 = Avx512F.FusedMultiplyAdd(Vector512.Create(wt[t]), v, a0);
            }
            a0.Store(yrow + ox);
        }
        return ox;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe int Rows512(float* rowBase, int* tapOff, int taps, float* wt, float bias, float* yrow, int ow)
    {
        int ox = 0;
        var bv = Vector512.Create(bias);
        // Two vectors at a time so each weight broadcast feeds two FMAs.
        for (; ox + 32 <= ow; ox += 32)
        {
            var a0 = bv; var a1 = bv;
            float* p = rowBase + ox;
            for (int t = 0; t < taps; t++)
            {
                var wv = Vector512.Create(wt[t]);
                float* q = p + tapOff[t];
                a0 = Avx512F.FusedMultiplyAdd(wv, Vector512.Load(q), a0);
                a1 = Avx512F.FusedMultiplyAdd(wv, Vector512.Load(q + 16), a1);
            }
            a0.Store(yrow + ox);
            a1.Store(yrow + ox + 16);
        }
        for (; ox + 16 <= ow; ox += 16)
        {
            var a0 = bv;
            float* p = rowBase + ox;
            for (int t = 0; t < taps; t++)
                a0 = Avx512F.FusedMultiplyAdd(Vector512.Create(wt[t]), Vector512.Load(p + tapOff[t]), a0);
            a0.Store(yrow + ox);
        }
        return ox;
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
