using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quant.Engine.Kernels.Common;

/// <summary>
/// Spatial geometry of a 2-D convolution of one channel group (1-D convolutions use H = 1):
/// output (oy, ox) reads input (oy*SH - PT + ky*DH, ox*SW - PL + kx*DW); positions outside are 0.
/// </summary>
internal readonly record struct Conv2DGeometry(
    int Channels, int H, int W, int KH, int KW, int SH, int SW, int DH, int DW, int PT, int PL, int OH, int OW)
{
    public int KSize => Channels * KH * KW;
    public int OutSize => OH * OW;
    public bool IsPointwise => KH == 1 && KW == 1 && SH == 1 && SW == 1 && PT == 0 && PL == 0 && OH == H && OW == W;
}

/// <summary>
/// Implicit im2col: the B operand of a convolution GEMM (rows k = (c, ky, kx), columns n = (oy, ox))
/// gathered straight from the NCHW image into the packed panels, without materializing the column matrix.
/// </summary>
internal sealed class Conv2DBSource(float[] x, int xOffset, Conv2DGeometry g) : GemmBSource
{
    public override unsafe void Pack(int k0, int kc, int n0, int nc, int nr, float* dst)
    {
        // Per tap (row k of the block): offset of its input plane shifted by the tap, its vertical shift,
        // and the range of ox whose read falls inside the row (0 <= ox*SW + xOff < W).
        int khw = g.KH * g.KW, plane = g.H * g.W, sw = g.SW;
        Span<int> tapBuf = kc <= 512 ? stackalloc int[kc * 4] : new int[kc * 4];
        for (int kk = 0; kk < kc; kk++)
        {
            int kIdx = k0 + kk;
            int ch = kIdx / khw, rem = kIdx % khw, ky = rem / g.KW, kx = rem % g.KW;
            int xOff = kx * g.DW - g.PL;
            tapBuf[kk * 4] = xOffset + ch * plane + xOff;
            tapBuf[kk * 4 + 1] = ky * g.DH - g.PT;
            tapBuf[kk * 4 + 2] = xOff >= 0 ? 0 : (-xOff + sw - 1) / sw;
            tapBuf[kk * 4 + 3] = g.W - xOff <= 0 ? 0 : Math.Min(g.OW, (g.W - xOff - 1) / sw + 1);
        }
        bool v512 = Vector512.IsHardwareAccelerated && Avx512F.IsSupported;
        var even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        fixed (float* xBase = x)
        fixed (int* taps = tapBuf)
        {
            float* xEnd = xBase + x.Length;
            // Runs of columns within one output row and one panel: each tap of a run is one contiguous
            // (stride 1) or strided copy with zero borders, written down the panel row by row.
            for (int q = 0; q < nc;)
            {
                int n = n0 + q, oy = n / g.OW, ox = n % g.OW;
                int len = Math.Min(Math.Min(g.OW - ox, nc - q), nr - q % nr);
                float* d = dst + (nint)(q / nr) * kc * nr + q % nr;
                int oySh = oy * g.SH;
                for (int kk = 0; kk < kc; kk++, d += nr)
                {
                    int* t = taps + kk * 4;
                    int iy = oySh + t[1];
                    if ((uint)iy >= (uint)g.H)
                    {
                        new Span<float>(d, len).Clear();
                        continue;
                    }
                    int a = Math.Clamp(t[2] - ox, 0, len), e = Math.Clamp(t[3] - ox, a, len);
                    float* srow = xBase + t[0] + (nint)iy * g.W + (nint)(ox + a) * sw;
                    if (sw == 1 && a == 0 && e == 32 && v512)
                    {
                        Vector512.Store(Vector512.Load(srow), d);
                        Vector512.Store(Vector512.Load(srow + 16), d + 16);
                        continue;
                    }
                    if (a > 0) new Span<float>(d, a).Clear();
                    if (sw == 1)
                        Buffer.MemoryCopy(srow, d + a, (e - a) * 4, (e - a) * 4);
                    else
                    {
                        int j = a;
                        if (sw == 2 && v512)
                        {
                            // Even lanes of 32 consecutive floats; the load must stay inside the input array.
                            for (; j + 16 <= e && srow + 32 <= xEnd; j += 16, srow += 32)
                                Avx512F.PermuteVar16x32x2(Vector512.Load(srow), even, Vector512.Load(srow + 16)).Store(d + j);
                        }
                        for (; j < e; j++, srow += sw) d[j] = *srow;
                    }
                    if (e < len) new Span<float>(d + e, len - e).Clear();
                }
                q += len;
            }
            int padEnd = (nc + nr - 1) / nr * nr;
            if (padEnd > nc)
            {
                float* d = dst + (nint)(nc / nr) * kc * nr + nc % nr;
                for (int kk = 0; kk < kc; kk++, d += nr) new Span<float>(d, padEnd - nc).Clear();
            }
        }
    }
}

/// <summary>
/// Explicit N-D im2col / col2im for the rare shapes the 2-D paths do not cover (3-D convolutions).
/// Column matrix rows are (c, k0, k1, ...) and columns the output positions, row-major.
/// </summary>
internal static class Im2ColNd
{
    /// <summary>col[(c, kpos), opos] = x[c, opos*stride - padBegin + kpos*dilation] or 0 outside.</summary>
    public static void Im2Col(ReadOnlySpan<float> x, int channels, int[] inShape, int[] kernel, int[] strides, int[] dilations,
        int[] padBegin, int[] outShape, Span<float> col)
    {
        int r = inShape.Length;
        int kProd = Prod(kernel), oProd = Prod(outShape), iProd = Prod(inShape);
        var kpos = new int[r];
        var opos = new int[r];
        for (int c = 0; c < channels; c++)
            for (int kf = 0; kf < kProd; kf++)
            {
                Unflatten(kf, kernel, kpos);
                int rowBase = (c * kProd + kf) * oProd;
                for (int of = 0; of < oProd; of++)
                {
                    Unflatten(of, outShape, opos);
                    int idx = 0;
                    bool inside = true;
                    for (int d = 0; d < r && inside; d++)
                    {
                        int p = opos[d] * strides[d] - padBegin[d] + kpos[d] * dilations[d];
                        if ((uint)p >= (uint)inShape[d]) inside = false;
                        idx = idx * inShape[d] + p;
                    }
                    col[rowBase + of] = inside ? x[c * iProd + idx] : 0f;
                }
            }
    }

    /// <summary>y[c, ipos*stride - padBegin + kpos*dilation] += col[(c, kpos), ipos] for positions inside y; channels in order, taps in order.</summary>
    public static void Col2Im(ReadOnlySpan<float> col, int channel, int[] inShape, int[] kernel, int[] strides, int[] dilations,
        int[] padBegin, int[] outShape, Span<float> y)
    {
        int r = inShape.Length;
        int kProd = Prod(kernel), iProd = Prod(inShape);
        var kpos = new int[r];
        var ipos = new int[r];
        for (int kf = 0; kf < kProd; kf++)
        {
            Unflatten(kf, kernel, kpos);
            int rowBase = (channel * kProd + kf) * iProd;
            for (int inf = 0; inf < iProd; inf++)
            {
                Unflatten(inf, inShape, ipos);
                int idx = 0;
                bool inside = true;
                for (int d = 0; d < r && inside; d++)
                {
                    int p = ipos[d] * strides[d] - padBegin[d] + kpos[d] * dilations[d];
                    if ((uint)p >= (uint)outShape[d]) inside = false;
                    idx = idx * outShape[d] + p;
                }
                if (inside) y[idx] += col[rowBase + inf];
            }
        }
    }

    public static int Prod(int[] a)
    {
        int p = 1;
        foreach (var v in a) p *= v;
        return p;
    }

    private static void Unflatten(int flat, int[] shape, int[] pos)
    {
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            pos[d] = flat % shape[d];
            flat /= shape[d];
        }
    }
}
