namespace Quant.Engine.Kernels.Common;

/// <summary>
/// Stride-1 2-D convolution of one channel group as a GEMM whose B operand is read in place instead of
/// being packed: with stride 1, the NR output columns of a panel (within one output row) read NR consecutive
/// input floats for every tap, so the micro-kernel loads them straight from the image (pointwise) or from a
/// zero-bordered copy of it (other kernels) through a per-tap offset table. That removes the im2col copy,
/// which for few output channels cost as much as the multiply-adds themselves.
/// Each output is bias (or 0) + Σ_k A[m,k]·B[k,n] over k = (c, ky, kx) in increasing order, one fused
/// multiply-add per term, exactly as <see cref="PackedGemm.Multiply"/> computes it: both paths give the
/// same bits, for any thread count.
/// </summary>
internal static class DirectConv
{
    /// <summary>
    /// Whether geometry <paramref name="g"/> with <paramref name="m"/> output channels should run here (<see cref="Run"/> takes any
    /// stride-1 geometry on a vector ISA): stride 1 on a
    /// vector ISA; pointwise only for at most 6 panels of output channels (measured: more rows amortize the cheap pointwise packing, and
    /// packed panels are friendlier to L1 than NR-float runs one image plane apart) and maps of at least one panel;
    /// other kernels when the output rows fill at least half of their panels.
    /// </summary>
    public static bool Applies(PackedGemm gemm, in Conv2DGeometry g, int m)
    {
        if (gemm.Isa == GemmIsa.Scalar || g.SH != 1 || g.SW != 1) return false;
        if (g.IsPointwise) return m <= 6 * gemm.MR && g.OH * g.OW >= gemm.NR;
        // Panels never straddle output rows; rows much narrower than a panel would waste most of its work
        // (measured: still a win at 20 of 32 columns, since the im2col copy it saves is 9x the input for 3x3).
        int panels = (g.OW + gemm.NR - 1) / gemm.NR;
        return g.OW * 2 >= panels * gemm.NR;
    }

    private static (int Hp, int Wp) Padded(in Conv2DGeometry g) => (g.OH + (g.KH - 1) * g.DH, g.OW + (g.KW - 1) * g.DW);

    /// <summary>Floats of the zero-bordered copy <see cref="Run"/> needs (0 for pointwise convolutions).</summary>
    public static int PaddedSize(PackedGemm gemm, in Conv2DGeometry g)
    {
        if (g.IsPointwise) return 0;
        var (hp, wp) = Padded(g);
        // Slack: the last panel of the last row reads a whole NR-wide run.
        return g.Channels * hp * wp + gemm.NR;
    }

    /// <summary>
    /// y[yOffset + i*OH*OW + n] = conv of rows i &lt; m (A packed by <see cref="PackedGemm.PackA(float[], int, int, int, int, int, float[], int, float, bool)"/>
    /// with K = Channels*KH*KW) with the image at x[xOffset..], plus bias[biasOffset + i] when given
    /// (<see cref="PackedGemm.PaddedRows"/> entries). <paramref name="padded"/> holds at least
    /// <see cref="PaddedSize"/> floats (unused for pointwise geometry).
    /// </summary>
    public static unsafe void Run(KernelContext? ctx, PackedGemm gemm, Conv2DGeometry g, float[] x, int xOffset, float[]? padded,
        int m, float[] aPacked, int aOffset, float[]? bias, int biasOffset, float[] y, int yOffset)
    {
        if (gemm.Isa == GemmIsa.Scalar || g.SH != 1 || g.SW != 1) throw new ArgumentException("the in-place path needs stride 1 and a vector ISA");
        int nr = gemm.NR, mr = gemm.MR, kTotal = g.KSize;
        int outPlane = g.OH * g.OW;
        if (m <= 0 || outPlane == 0) return;
        var offs = new int[kTotal];
        float[] src;
        int srcOffset, rows, rowLen, pitch;
        if (g.IsPointwise)
        {
            int plane = g.H * g.W;
            for (int k = 0; k < kTotal; k++) offs[k] = k * plane;
            // The whole plane is one run of columns.
            (src, srcOffset, rows, rowLen, pitch) = (x, xOffset, 1, plane, 0);
        }
        else
        {
            if (padded is null || padded.Length < PaddedSize(gemm, g)) throw new ArgumentException("padded scratch is too small");
            var (hp, wp) = Padded(g);
            PadCopy(ctx, g, x, xOffset, padded, hp, wp, nr);
            int khw = g.KH * g.KW;
            for (int k = 0; k < kTotal; k++)
            {
                int c = k / khw, rem = k % khw, ky = rem / g.KW, kx = rem % g.KW;
                offs[k] = c * hp * wp + ky * g.DH * wp + kx * g.DW;
            }
            (src, srcOffset, rows, rowLen, pitch) = (padded, 0, g.OH, g.OW, wp);
        }

        int panelsPerRow = (rowLen + nr - 1) / nr;
        int totalPanels = rows * panelsPerRow;
        int mPanels = (m + mr - 1) / mr;
        var plan = GemmSchedule.Plan(ctx, (long)m * outPlane * kTotal, totalPanels, Math.Max(1, PackedGemm.NC / nr), mPanels);
        // A run whose NR-wide read would leave the source array (pointwise tail) is copied into a small zero-padded panel.
        long lastRead = (long)srcOffset + offs[kTotal - 1];

        void Task(int t)
        {
            var (p0, p1, mp0, mp1) = plan.Task(t);
            float* tile = stackalloc float[mr * nr];
            float[]? tail = null;
            int[]? tailOffs = null;
            try
            {
                fixed (float* srcBase = src)
                fixed (float* aBase = aPacked)
                fixed (float* yBase = y)
                fixed (float* biasBase = bias)
                fixed (int* offBase = offs)
                {
                    for (int p = p0; p < p1; p++)
                    {
                        int row = p / panelsPerRow, col0 = p % panelsPerRow * nr;
                        int cols = Math.Min(nr, rowLen - col0);
                        float* b = srcBase + srcOffset + (nint)row * pitch + col0;
                        int* o = offBase;
                        if (lastRead + (nint)row * pitch + col0 + nr > src.Length)
                        {
                            tail ??= ctx?.RentScratch(kTotal * nr) ?? new float[kTotal * nr];
                            if (tailOffs is null)
                            {
                                tailOffs = new int[kTotal];
                                for (int k = 0; k < kTotal; k++) tailOffs[k] = k * nr;
                            }
                            for (int k = 0; k < kTotal; k++)
                            {
                                new ReadOnlySpan<float>(b + offs[k], cols).CopyTo(tail.AsSpan(k * nr));
                                tail.AsSpan(k * nr + cols, nr - cols).Clear();
                            }
                            fixed (float* tb = tail)
                            fixed (int* to = tailOffs)
                                Panel(gemm, kTotal, m, mr, nr, mp0, mp1, aBase + aOffset, tb, to, yBase + yOffset + (nint)row * g.OW + col0, outPlane,
                                    bias is null ? null : biasBase + biasOffset, cols, tile);
                            continue;
                        }
                        Panel(gemm, kTotal, m, mr, nr, mp0, mp1, aBase + aOffset, b, o, yBase + yOffset + (nint)row * g.OW + col0, outPlane,
                            bias is null ? null : biasBase + biasOffset, cols, tile);
                    }
                }
            }
            finally
            {
                if (tail is not null) ctx?.ReturnScratch(tail);
            }
        }

        if (ctx is null || plan.Tasks == 1)
            for (int t = 0; t < plan.Tasks; t++) Task(t);
        else
            ctx.For(plan.Tasks, Task);
    }

    /// <summary>One NR-column panel: all K blocks, rows of panels mp0..mp1-1, into c (row stride ldc).</summary>
    private static unsafe void Panel(PackedGemm gemm, int k, int m, int mr, int nr, int mp0, int mp1, float* a, float* b, int* offs,
        float* c, nint ldc, float* bias, int cols, float* tile)
    {
        for (int k0 = 0; k0 < k; k0 += PackedGemm.KC)
        {
            int kc = Math.Min(PackedGemm.KC, k - k0);
            int init = k0 > 0 ? 2 : bias is not null ? 1 : 0;
            for (int mp = mp0; mp < mp1; mp++)
            {
                int rowsHere = Math.Min(mr, m - mp * mr);
                float* ap = a + (nint)mp * mr * k + (nint)k0 * mr;
                float* cp = c + (nint)mp * mr * ldc;
                float* bi = bias is null ? null : bias + mp * mr;
                if (rowsHere == mr && cols == nr)
                {
                    gemm.KernelIndirect(kc, ap, b, offs + k0, cp, ldc, bi, init);
                    continue;
                }
                // Edge tile: the same kernel on a full-size copy so every element gets the same arithmetic.
                if (init == 2)
                    for (int r = 0; r < mr; r++)
                        for (int j = 0; j < nr; j++)
                            tile[r * nr + j] = r < rowsHere && j < cols ? cp[r * ldc + j] : 0f;
                gemm.KernelIndirect(kc, ap, b, offs + k0, tile, nr, bi, init);
                for (int r = 0; r < rowsHere; r++)
                    new ReadOnlySpan<float>(tile + r * nr, cols).CopyTo(new Span<float>(cp + r * ldc, cols));
            }
        }
    }

    /// <summary>padded[c, r, q] = x[c, r - PT, q - PL] inside the image, 0 outside; then NR zeros of slack.</summary>
    private static void PadCopy(KernelContext? ctx, Conv2DGeometry g, float[] x, int xOffset, float[] padded, int hp, int wp, int nr)
    {
        int lo = Math.Clamp(g.PL, 0, wp), hi = Math.Clamp(g.PL + g.W, lo, wp);
        void Channel(int c)
        {
            var dst = padded.AsSpan(c * hp * wp, hp * wp);
            int src = xOffset + c * g.H * g.W;
            for (int r = 0; r < hp; r++)
            {
                var drow = dst.Slice(r * wp, wp);
                int iy = r - g.PT;
                if ((uint)iy >= (uint)g.H || hi == lo)
                {
                    drow.Clear();
                    continue;
                }
                drow[..lo].Clear();
                x.AsSpan(src + iy * g.W + (lo - g.PL), hi - lo).CopyTo(drow[lo..]);
                drow[hi..].Clear();
            }
        }
        // Copies are cheap per channel: contiguous runs of channels per task, and no hand-off for small images.
        int tasks = PackedGemm.ParallelTasks(ctx, (long)g.Channels * hp * wp, g.Channels);
        if (tasks == 1) for (int c = 0; c < g.Channels; c++) Channel(c);
        else ctx!.For(tasks, t =>
        {
            int c1 = (int)((long)g.Channels * (t + 1) / tasks);
            for (int c = (int)((long)g.Channels * t / tasks); c < c1; c++) Channel(c);
        });
        padded.AsSpan(g.Channels * hp * wp, nr).Clear();
    }
}
