using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quant.Engine.Kernels.Common;

/// <summary>Which micro-kernel a <see cref="PackedGemm"/> uses.</summary>
internal enum GemmIsa
{
    /// <summary>Portable loops (4x8 tile, plain multiply then add).</summary>
    Scalar,
    /// <summary>Vector256 + FMA (6x16 tile).</summary>
    Avx2,
    /// <summary>Vector512 + FMA (8x32 tile).</summary>
    Avx512,
}

/// <summary>
/// Source of the B operand (K x N) of a GEMM, copied on demand into NR-wide column panels:
/// panel p of a (k0, kc, n0, nc) block holds rows k0..k0+kc-1 of columns n0+p*NR .. n0+p*NR+NR-1,
/// row after row, at dst[(p*kc + k)*NR + j]; columns beyond nc are zero.
/// </summary>
internal abstract class GemmBSource
{
    public abstract unsafe void Pack(int k0, int kc, int n0, int nc, int nr, float* dst);
}

/// <summary>B[k, n] = data[offset + k*rowStride + n*colStride] (row-major when colStride is 1, transposed otherwise).</summary>
internal sealed class StridedB(float[] data, int offset, int rowStride, int colStride) : GemmBSource
{
    public override unsafe void Pack(int k0, int kc, int n0, int nc, int nr, float* dst)
    {
        fixed (float* src0 = data)
        {
            int panels = (nc + nr - 1) / nr;
            for (int p = 0; p < panels; p++)
            {
                int j0 = n0 + p * nr, w = Math.Min(nr, nc - p * nr);
                float* d = dst + (nint)p * kc * nr;
                for (int k = 0; k < kc; k++, d += nr)
                {
                    float* s = src0 + offset + (nint)(k0 + k) * rowStride + (nint)j0 * colStride;
                    if (colStride == 1)
                        Buffer.MemoryCopy(s, d, w * 4, w * 4);
                    else
                        for (int j = 0; j < w; j++) d[j] = s[(nint)j * colStride];
                    for (int j = w; j < nr; j++) d[j] = 0;
                }
            }
        }
    }
}

/// <summary>A whole B operand packed once (constant weights): panel p holds all K rows at Data[(p*K + k)*NR + j].</summary>
internal sealed class PrepackedB : GemmBSource
{
    public PrepackedB(PackedGemm gemm, float[] data, int offset, int rowStride, int colStride, int k, int n)
    {
        K = k; N = n; NR = gemm.NR;
        int panels = (n + NR - 1) / NR;
        Data = new float[Math.Max(1, panels * NR * k)];
        var src = new StridedB(data, offset, rowStride, colStride);
        unsafe
        {
            fixed (float* d = Data)
                for (int p = 0; p < panels; p++)
                    src.Pack(0, k, p * NR, Math.Min(NR, n - p * NR), NR, d + (nint)p * NR * k);
        }
    }

    public float[] Data { get; }
    public int K { get; }
    public int N { get; }
    public int NR { get; }

    public override unsafe void Pack(int k0, int kc, int n0, int nc, int nr, float* dst) =>
        throw new InvalidOperationException("prepacked B is read in place");
}

/// <summary>
/// How a GEMM-shaped job (column panels x row panels) is cut into parallel tasks. Column panels are dealt
/// out in equal runs (at most <c>maxPanelsPerTile</c> each, so a task's B block fits its scratch), and the
/// number of runs is rounded up to a multiple of the thread count so no thread idles at the end; when there
/// are fewer runs than threads (narrow outputs) the row panels are split too. Jobs too small to pay for the
/// hand-off run as one task. The cut never changes a result: every output element is computed by one task
/// in the same order.
/// </summary>
internal readonly record struct GemmSchedule(int Tasks, int NTiles, int NPanels, int MGroups, int PanelsPerGroup, int MPanels)
{
    public static GemmSchedule Plan(KernelContext? ctx, long work, int nPanels, int maxPanelsPerTile, int mPanels)
    {
        int threads = PackedGemm.ParallelTasks(ctx, work, int.MaxValue) > 1 ? ctx!.Threads : 1;
        int nTiles = (nPanels + maxPanelsPerTile - 1) / maxPanelsPerTile;
        if (threads > 1 && nTiles % threads != 0)
            nTiles = Math.Min(nPanels, (nTiles + threads - 1) / threads * threads);
        int mGroups = 1;
        if (threads > 1 && nTiles < threads)
            mGroups = Math.Min(mPanels, (threads + nTiles - 1) / nTiles);
        int perGroup = (mPanels + mGroups - 1) / mGroups;
        mGroups = (mPanels + perGroup - 1) / perGroup;
        return new GemmSchedule(nTiles * mGroups, nTiles, nPanels, mGroups, perGroup, mPanels);
    }

    /// <summary>Column panels [P0, P1) and row panels [Mp0, Mp1) of task <paramref name="t"/>.</summary>
    public (int P0, int P1, int Mp0, int Mp1) Task(int t)
    {
        int nt = t / MGroups, g = t % MGroups;
        int p0 = (int)((long)NPanels * nt / NTiles), p1 = (int)((long)NPanels * (nt + 1) / NTiles);
        int mp0 = g * PanelsPerGroup;
        return (p0, p1, mp0, Math.Min(MPanels, mp0 + PanelsPerGroup));
    }
}

/// <summary>
/// Single-precision GEMM C = A·B (+ bias per row, or + C) with A packed in MR-row panels and B copied
/// block by block into NR-column panels, computed by a register-blocked micro-kernel.
/// Each element of C is the sum over k in increasing order (one fused multiply-add per term on the
/// vector paths), started from 0, its bias or its previous value; the K dimension is cut in fixed
/// KC-blocks, so the bits of a result never depend on the thread count or on how N and M are split.
/// </summary>
internal sealed class PackedGemm
{
    /// <summary>Depth of a B block kept in L1/L2 while the micro-kernel sweeps over it.</summary>
    public const int KC = 256;
    /// <summary>Most columns per task (a multiple of every NR): one B block of KC x NC floats fits the scratch.</summary>
    public const int NC = 256;

    public static GemmIsa BestIsa { get; } =
        Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Fma.IsSupported ? GemmIsa.Avx512
        : Avx2.IsSupported && Fma.IsSupported ? GemmIsa.Avx2
        : GemmIsa.Scalar;

    public static PackedGemm Default { get; } = new(BestIsa);

    /// <summary>
    /// Multiply-adds below which a kernel runs on the calling thread: handing work to a pool thread and
    /// waiting for it costs tens of microseconds, as much as this much arithmetic.
    /// </summary>
    public const long MinParallelWork = 1 << 18;

    /// <summary>
    /// Tasks to split <paramref name="work"/> multiply-adds into (at most <paramref name="maxTasks"/>): 1 when
    /// there is no thread budget or too little work, else a few per thread so a late or busy thread does not
    /// hold up the rest.
    /// </summary>
    public static int ParallelTasks(KernelContext? ctx, long work, int maxTasks)
    {
        int threads = ctx?.Threads ?? 1;
        if (threads <= 1 || maxTasks <= 1 || work < MinParallelWork) return 1;
        return (int)Math.Min(maxTasks, Math.Min(threads * 4L, Math.Max(threads, work / MinParallelWork)));
    }

    public static bool IsSupported(GemmIsa isa) => isa switch
    {
        GemmIsa.Avx512 => Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Fma.IsSupported,
        GemmIsa.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        _ => true,
    };

    public PackedGemm(GemmIsa isa)
    {
        if (!IsSupported(isa)) throw new NotSupportedException($"{isa} GEMM is not supported by this CPU");
        Isa = isa;
        (MR, NR) = isa switch { GemmIsa.Avx512 => (8, 32), GemmIsa.Avx2 => (6, 16), _ => (4, 8) };
    }

    public GemmIsa Isa { get; }
    public int MR { get; }
    public int NR { get; }

    /// <summary>Floats a packed A of <paramref name="m"/> x <paramref name="k"/> needs.</summary>
    public int PackedASize(int m, int k) => (m + MR - 1) / MR * MR * k;

    /// <summary>Rows rounded up to whole panels (the length a per-row bias array must have).</summary>
    public int PaddedRows(int m) => (m + MR - 1) / MR * MR;

    /// <summary>
    /// Packs A[i, k] = scale * src[offset + i*rowStride + k*colStride] into dst[dstOffset..]: panel p
    /// holds rows p*MR..p*MR+MR-1 at [(p*K + k)*MR + r]; rows beyond M are zero.
    /// With <paramref name="flushSubnormals"/>, subnormal values are packed as (signed) zero: their products
    /// are below 2^-126 times the other factor, far under half an ulp of any normal sum, while every fused
    /// multiply-add on a subnormal operand costs the CPU a microcode assist (trained weights that were
    /// shrunk towards zero hold thousands of them, which made small convolutions 20x slower).
    /// </summary>
    public void PackA(float[] src, int offset, int rowStride, int colStride, int m, int k, float[] dst, int dstOffset, float scale = 1f,
        bool flushSubnormals = false)
    {
        PackARaw(src, offset, rowStride, colStride, m, k, dst, dstOffset, scale);
        if (!flushSubnormals) return;
        var packed = dst.AsSpan(dstOffset, PackedASize(m, k));
        for (int i = 0; i < packed.Length; i++)
            if (float.IsSubnormal(packed[i])) packed[i] = MathF.CopySign(0f, packed[i]);
    }

    /// <summary>A copy of <paramref name="src"/> with subnormal values replaced by signed zeros (see <see cref="PackA(float[], int, int, int, int, int, float[], int, float, bool)"/>).</summary>
    public static float[] FlushSubnormals(ReadOnlySpan<float> src)
    {
        var dst = src.ToArray();
        for (int i = 0; i < dst.Length; i++)
            if (float.IsSubnormal(dst[i])) dst[i] = MathF.CopySign(0f, dst[i]);
        return dst;
    }

    private void PackARaw(float[] src, int offset, int rowStride, int colStride, int m, int k, float[] dst, int dstOffset, float scale)
    {
        int panels = (m + MR - 1) / MR;
        for (int p = 0; p < panels; p++)
        {
            int baseD = dstOffset + p * k * MR;
            for (int r = 0; r < MR; r++)
            {
                int i = p * MR + r;
                if (i >= m)
                {
                    for (int kk = 0; kk < k; kk++) dst[baseD + kk * MR + r] = 0;
                    continue;
                }
                int s = offset + i * rowStride;
                if (scale == 1f)
                    for (int kk = 0; kk < k; kk++) dst[baseD + kk * MR + r] = src[s + kk * colStride];
                else
                    for (int kk = 0; kk < k; kk++) dst[baseD + kk * MR + r] = scale * src[s + kk * colStride];
            }
        }
    }

    public float[] PackA(float[] src, int offset, int rowStride, int colStride, int m, int k, float scale = 1f)
    {
        var dst = new float[Math.Max(1, PackedASize(m, k))];
        PackA(src, offset, rowStride, colStride, m, k, dst, 0, scale);
        return dst;
    }

    /// <summary>
    /// C[i, n] (at c[cOffset + i*ldc + n]) = init + Σ_k A[i,k]·B[k,n] for i &lt; M, n &lt; N, where init is
    /// C's current value when <paramref name="accumulate"/>, else bias[biasOffset + i] when a bias is
    /// given (it must have <see cref="PaddedRows"/> entries from biasOffset), else 0.
    /// <paramref name="aPacked"/> is from <see cref="PackA(float[], int, int, int, int, int, float[], int, float)"/>.
    /// </summary>
    public void Multiply(KernelContext? ctx, int m, int n, int k, float[] aPacked, int aOffset, GemmBSource b,
        float[] c, int cOffset, int ldc, float[]? bias = null, int biasOffset = 0, bool accumulate = false)
    {
        if (m <= 0 || n <= 0) return;
        if (k == 0)
        {
            if (accumulate) return;
            for (int i = 0; i < m; i++)
                c.AsSpan(cOffset + i * ldc, n).Fill(bias is null ? 0f : bias[biasOffset + i]);
            return;
        }
        if (b is PrepackedB pb && (pb.K != k || pb.N != n || pb.NR != NR))
            throw new ArgumentException("prepacked B does not match the GEMM shape");

        if (Isa == GemmIsa.Avx512 && n <= NarrowColumns)
        {
            MultiplyNarrow(ctx, m, n, k, aPacked, aOffset, b, c, cOffset, ldc, bias, biasOffset, accumulate);
            return;
        }
        int nPanels = (n + NR - 1) / NR;
        int mPanels = (m + MR - 1) / MR;
        var plan = GemmSchedule.Plan(ctx, (long)m * n * k, nPanels, NC / NR, mPanels);

        void Task(int t)
        {
            var (p0, p1, mp0, mp1) = plan.Task(t);
            int n0 = p0 * NR, nc = Math.Min(n, p1 * NR) - n0;
            float[]? scratch = null;
            if (b is not PrepackedB)
                scratch = ctx?.RentScratch(KC * NC) ?? new float[KC * NC];
            try { RunTile(m, k, aPacked, aOffset, b, c, cOffset, ldc, bias, biasOffset, accumulate, n0, nc, mp0, mp1, scratch); }
            finally { if (scratch is not null) ctx?.ReturnScratch(scratch); }
        }

        if (ctx is null || plan.Tasks == 1)
            for (int t = 0; t < plan.Tasks; t++) Task(t);
        else
            ctx.For(plan.Tasks, Task);
    }

    /// <summary>Widest N that runs as matrix-vector products (<see cref="MultiplyNarrow"/>) instead of 32-column tiles.</summary>
    public const int NarrowColumns = 4;

    /// <summary>
    /// Few columns (squeeze-excitation convolutions on 1x1 maps, matrix-vector products): one column at a time
    /// with the 8 rows of an A panel in one vector, four panels per pass for independent FMA chains, instead of
    /// a 32-column tile that would be almost all padding. Each element is still init + Σ_k A[i,k]·B[k,j] in
    /// increasing k with one fused multiply-add per term, as in the tiled kernel.
    /// </summary>
    private unsafe void MultiplyNarrow(KernelContext? ctx, int m, int n, int k, float[] aPacked, int aOffset, GemmBSource b,
        float[] c, int cOffset, int ldc, float[]? bias, int biasOffset, bool accumulate)
    {
        int mPanels = (m + MR - 1) / MR;
        var pre = b as PrepackedB;
        float[]? packedB = null;
        try
        {
            if (pre is null)
            {
                packedB = ctx?.RentScratch(k * NR) ?? new float[k * NR];
                fixed (float* d = packedB) b.Pack(0, k, 0, n, NR, d);
            }
            float[] bData = pre?.Data ?? packedB!;
            int tasks = ParallelTasks(ctx, (long)m * n * k, mPanels);
            void Panels(int t)
            {
                int mp0 = (int)((long)mPanels * t / tasks), mp1 = (int)((long)mPanels * (t + 1) / tasks);
                fixed (float* aBase = aPacked)
                fixed (float* bBase = bData)
                fixed (float* cBase = c)
                fixed (float* biasBase = bias)
                    for (int j = 0; j < n; j++)
                        for (int mp = mp0; mp < mp1; mp += 4)
                            NarrowPanels(m, k, aBase + aOffset, mp, Math.Min(4, mp1 - mp), bBase + j, cBase + cOffset + j, ldc,
                                biasBase == null ? null : biasBase + biasOffset, accumulate);
            }
            if (tasks == 1) Panels(0);
            else ctx!.For(tasks, Panels);
        }
        finally
        {
            if (packedB is not null) ctx?.ReturnScratch(packedB);
        }
    }

    /// <summary>Rows of panels mp..mp+count-1 (count 1..4) of one column: B[k] at b[k*32], C[i] at c[i*ldc].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void NarrowPanels(int m, int k, float* a, int mp, int count, float* b, float* c, nint ldc, float* bias, bool accumulate)
    {
        const int mr = 8, nr = 32;
        // Missing panels repeat the last one; their results are not stored.
        float* a0 = a + (nint)mp * mr * k;
        float* a1 = a0 + (nint)Math.Min(1, count - 1) * mr * k;
        float* a2 = a0 + (nint)Math.Min(2, count - 1) * mr * k;
        float* a3 = a0 + (nint)Math.Min(3, count - 1) * mr * k;
        Vector256<float> acc0 = Init(0), acc1 = Init(1), acc2 = Init(2), acc3 = Init(3);
        for (int kk = 0; kk < k; kk++)
        {
            var bv = Vector256.Create(b[(nint)kk * nr]);
            nint o = (nint)kk * mr;
            acc0 = Fma.MultiplyAdd(Vector256.Load(a0 + o), bv, acc0);
            acc1 = Fma.MultiplyAdd(Vector256.Load(a1 + o), bv, acc1);
            acc2 = Fma.MultiplyAdd(Vector256.Load(a2 + o), bv, acc2);
            acc3 = Fma.MultiplyAdd(Vector256.Load(a3 + o), bv, acc3);
        }
        Store(0, acc0);
        if (count > 1) Store(1, acc1);
        if (count > 2) Store(2, acc2);
        if (count > 3) Store(3, acc3);

        Vector256<float> Init(int i)
        {
            int p = mp + Math.Min(i, count - 1), rows = Math.Min(mr, m - p * mr);
            if (accumulate)
            {
                var v = Vector256<float>.Zero;
                float* lanes = (float*)&v;
                for (int r = 0; r < rows; r++) lanes[r] = c[(nint)(p * mr + r) * ldc];
                return v;
            }
            return bias is null ? Vector256<float>.Zero : Vector256.Load(bias + p * mr);
        }

        void Store(int i, Vector256<float> v)
        {
            int p = mp + i, rows = Math.Min(mr, m - p * mr);
            float* lanes = (float*)&v;
            for (int r = 0; r < rows; r++) c[(nint)(p * mr + r) * ldc] = lanes[r];
        }
    }

    private unsafe void RunTile(int m, int k, float[] aPacked, int aOffset, GemmBSource b, float[] c, int cOffset, int ldc,
        float[]? bias, int biasOffset, bool accumulate, int n0, int nc, int mp0, int mp1, float[]? scratch)
    {
        int nPanels = (nc + NR - 1) / NR;
        float* tile = stackalloc float[MR * NR];
        fixed (float* aBase = aPacked)
        fixed (float* cBase = c)
        fixed (float* scratchBase = scratch)
        fixed (float* biasBase = bias)
        {
            PrepackedB? pre = b as PrepackedB;
            fixed (float* preBase = pre?.Data)
            {
                for (int k0 = 0; k0 < k; k0 += KC)
                {
                    int kc = Math.Min(KC, k - k0);
                    float* bBlock;
                    nint panelStride;
                    if (pre is not null)
                    {
                        bBlock = preBase + (nint)(n0 / NR) * NR * k + (nint)k0 * NR;
                        panelStride = (nint)NR * k;
                    }
                    else
                    {
                        b.Pack(k0, kc, n0, nc, NR, scratchBase);
                        bBlock = scratchBase;
                        panelStride = (nint)NR * kc;
                    }
                    int init = k0 > 0 || accumulate ? 2 : bias is not null ? 1 : 0;
                    for (int np = 0; np < nPanels; np++)
                    {
                        int cols = Math.Min(NR, nc - np * NR);
                        float* bp = bBlock + np * panelStride;
                        for (int mp = mp0; mp < mp1; mp++)
                        {
                            int rows = Math.Min(MR, m - mp * MR);
                            float* ap = aBase + aOffset + (nint)mp * MR * k + (nint)k0 * MR;
                            float* cp = cBase + cOffset + (nint)mp * MR * ldc + n0 + np * NR;
                            float* bi = biasBase + biasOffset + mp * MR;
                            if (rows == MR && cols == NR)
                            {
                                Kernel(kc, ap, bp, cp, ldc, bi, init);
                                continue;
                            }
                            // Edge tile: run the same kernel on a full-size copy so every element gets the same arithmetic.
                            if (init == 2)
                            {
                                for (int r = 0; r < MR; r++)
                                    for (int j = 0; j < NR; j++)
                                        tile[r * NR + j] = r < rows && j < cols ? cp[(nint)r * ldc + j] : 0f;
                            }
                            Kernel(kc, ap, bp, tile, NR, bi, init);
                            for (int r = 0; r < rows; r++)
                                for (int j = 0; j < cols; j++)
                                    cp[(nint)r * ldc + j] = tile[r * NR + j];
                        }
                    }
                }
            }
        }
    }

    private unsafe void Kernel(int kc, float* a, float* b, float* c, nint ldc, float* bias, int init)
    {
        switch (Isa)
        {
            case GemmIsa.Avx512: Kernel8x32(kc, a, b, c, ldc, bias, init); break;
            case GemmIsa.Avx2: Kernel6x16(kc, a, b, c, ldc, bias, init); break;
            default: Kernel4x8(kc, a, b, c, ldc, bias, init); break;
        }
    }

    /// <summary>
    /// The micro-kernel with B read in place: row k of the MR x NR tile's B comes from b + offs[k] (NR
    /// consecutive floats). Same arithmetic, in the same order, as the packed kernel.
    /// </summary>
    public unsafe void KernelIndirect(int kc, float* a, float* b, int* offs, float* c, nint ldc, float* bias, int init)
    {
        switch (Isa)
        {
            case GemmIsa.Avx512: Kernel8x32Indirect(kc, a, b, offs, c, ldc, bias, init); break;
            case GemmIsa.Avx2: Kernel6x16Indirect(kc, a, b, offs, c, ldc, bias, init); break;
            default: throw new NotSupportedException("the in-place B kernel needs AVX2 or AVX-512");
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Kernel8x32Indirect(int kc, float* a, float* b, int* offs, float* c, nint ldc, float* bias, int init)
    {
        Vector512<float> c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
        if (init == 2)
        {
            float* r = c;
            c00 = Vector512.Load(r); c01 = Vector512.Load(r + 16); r += ldc;
            c10 = Vector512.Load(r); c11 = Vector512.Load(r + 16); r += ldc;
            c20 = Vector512.Load(r); c21 = Vector512.Load(r + 16); r += ldc;
            c30 = Vector512.Load(r); c31 = Vector512.Load(r + 16); r += ldc;
            c40 = Vector512.Load(r); c41 = Vector512.Load(r + 16); r += ldc;
            c50 = Vector512.Load(r); c51 = Vector512.Load(r + 16); r += ldc;
            c60 = Vector512.Load(r); c61 = Vector512.Load(r + 16); r += ldc;
            c70 = Vector512.Load(r); c71 = Vector512.Load(r + 16);
        }
        else if (init == 1)
        {
            c00 = c01 = Vector512.Create(bias[0]);
            c10 = c11 = Vector512.Create(bias[1]);
            c20 = c21 = Vector512.Create(bias[2]);
            c30 = c31 = Vector512.Create(bias[3]);
            c40 = c41 = Vector512.Create(bias[4]);
            c50 = c51 = Vector512.Create(bias[5]);
            c60 = c61 = Vector512.Create(bias[6]);
            c70 = c71 = Vector512.Create(bias[7]);
        }
        else
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = c60 = c61 = c70 = c71 = Vector512<float>.Zero;
        }
        for (int k = 0; k < kc; k++)
        {
            float* bk = b + offs[k];
            var b0 = Vector512.Load(bk);
            var b1 = Vector512.Load(bk + 16);
            var av = Vector512.Create(a[0]); c00 = Avx512F.FusedMultiplyAdd(av, b0, c00); c01 = Avx512F.FusedMultiplyAdd(av, b1, c01);
            av = Vector512.Create(a[1]); c10 = Avx512F.FusedMultiplyAdd(av, b0, c10); c11 = Avx512F.FusedMultiplyAdd(av, b1, c11);
            av = Vector512.Create(a[2]); c20 = Avx512F.FusedMultiplyAdd(av, b0, c20); c21 = Avx512F.FusedMultiplyAdd(av, b1, c21);
            av = Vector512.Create(a[3]); c30 = Avx512F.FusedMultiplyAdd(av, b0, c30); c31 = Avx512F.FusedMultiplyAdd(av, b1, c31);
            av = Vector512.Create(a[4]); c40 = Avx512F.FusedMultiplyAdd(av, b0, c40); c41 = Avx512F.FusedMultiplyAdd(av, b1, c41);
            av = Vector512.Create(a[5]); c50 = Avx512F.FusedMultiplyAdd(av, b0, c50); c51 = Avx512F.FusedMultiplyAdd(av, b1, c51);
            av = Vector512.Create(a[6]); c60 = Avx512F.FusedMultiplyAdd(av, b0, c60); c61 = Avx512F.FusedMultiplyAdd(av, b1, c61);
            av = Vector512.Create(a[7]); c70 = Avx512F.FusedMultiplyAdd(av, b0, c70); c71 = Avx512F.FusedMultiplyAdd(av, b1, c71);
            a += 8;
        }
        float* o = c;
        c00.Store(o); c01.Store(o + 16); o += ldc;
        c10.Store(o); c11.Store(o + 16); o += ldc;
        c20.Store(o); c21.Store(o + 16); o += ldc;
        c30.Store(o); c31.Store(o + 16); o += ldc;
        c40.Store(o); c41.Store(o + 16); o += ldc;
        c50.Store(o); c51.Store(o + 16); o += ldc;
        c60.Store(o); c61.Store(o + 16); o += ldc;
        c70.Store(o); c71.Store(o + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Kernel6x16Indirect(int kc, float* a, float* b, int* offs, float* c, nint ldc, float* bias, int init)
    {
        Vector256<float> c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
        if (init == 2)
        {
            float* r = c;
            c00 = Vector256.Load(r); c01 = Vector256.Load(r + 8); r += ldc;
            c10 = Vector256.Load(r); c11 = Vector256.Load(r + 8); r += ldc;
            c20 = Vector256.Load(r); c21 = Vector256.Load(r + 8); r += ldc;
            c30 = Vector256.Load(r); c31 = Vector256.Load(r + 8); r += ldc;
            c40 = Vector256.Load(r); c41 = Vector256.Load(r + 8); r += ldc;
            c50 = Vector256.Load(r); c51 = Vector256.Load(r + 8);
        }
        else if (init == 1)
        {
            c00 = c01 = Vector256.Create(bias[0]);
            c10 = c11 = Vector256.Create(bias[1]);
            c20 = c21 = Vector256.Create(bias[2]);
            c30 = c31 = Vector256.Create(bias[3]);
            c40 = c41 = Vector256.Create(bias[4]);
            c50 = c51 = Vector256.Create(bias[5]);
        }
        else
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = Vector256<float>.Zero;
        }
        for (int k = 0; k < kc; k++)
        {
            float* bk = b + offs[k];
            var b0 = Vector256.Load(bk);
            var b1 = Vector256.Load(bk + 8);
            var av = Vector256.Create(a[0]); c00 = Fma.MultiplyAdd(av, b0, c00); c01 = Fma.MultiplyAdd(av, b1, c01);
            av = Vector256.Create(a[1]); c10 = Fma.MultiplyAdd(av, b0, c10); c11 = Fma.MultiplyAdd(av, b1, c11);
            av = Vector256.Create(a[2]); c20 = Fma.MultiplyAdd(av, b0, c20); c21 = Fma.MultiplyAdd(av, b1, c21);
            av = Vector256.Create(a[3]); c30 = Fma.MultiplyAdd(av, b0, c30); c31 = Fma.MultiplyAdd(av, b1, c31);
            av = Vector256.Create(a[4]); c40 = Fma.MultiplyAdd(av, b0, c40); c41 = Fma.MultiplyAdd(av, b1, c41);
            av = Vector256.Create(a[5]); c50 = Fma.MultiplyAdd(av, b0, c50); c51 = Fma.MultiplyAdd(av, b1, c51);
            a += 6;
        }
        float* o = c;
        c00.Store(o); c01.Store(o + 8); o += ldc;
        c10.Store(o); c11.Store(o + 8); o += ldc;
        c20.Store(o); c21.Store(o + 8); o += ldc;
        c30.Store(o); c31.Store(o + 8); o += ldc;
        c40.Store(o); c41.Store(o + 8); o += ldc;
        c50.Store(o); c51.Store(o + 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Kernel8x32(int kc, float* a, float* b, float* c, nint ldc, float* bias, int init)
    {
        Vector512<float> c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
        if (init == 2)
        {
            float* r = c;
            c00 = Vector512.Load(r); c01 = Vector512.Load(r + 16); r += ldc;
            c10 = Vector512.Load(r); c11 = Vector512.Load(r + 16); r += ldc;
            c20 = Vector512.Load(r); c21 = Vector512.Load(r + 16); r += ldc;
            c30 = Vector512.Load(r); c31 = Vector512.Load(r + 16); r += ldc;
            c40 = Vector512.Load(r); c41 = Vector512.Load(r + 16); r += ldc;
            c50 = Vector512.Load(r); c51 = Vector512.Load(r + 16); r += ldc;
            c60 = Vector512.Load(r); c61 = Vector512.Load(r + 16); r += ldc;
            c70 = Vector512.Load(r); c71 = Vector512.Load(r + 16);
        }
        else if (init == 1)
        {
            c00 = c01 = Vector512.Create(bias[0]);
            c10 = c11 = Vector512.Create(bias[1]);
            c20 = c21 = Vector512.Create(bias[2]);
            c30 = c31 = Vector512.Create(bias[3]);
            c40 = c41 = Vector512.Create(bias[4]);
            c50 = c51 = Vector512.Create(bias[5]);
            c60 = c61 = Vector512.Create(bias[6]);
            c70 = c71 = Vector512.Create(bias[7]);
        }
        else
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = c60 = c61 = c70 = c71 = Vector512<float>.Zero;
        }
        for (int k = 0; k < kc; k++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var av = Vector512.Create(a[0]); c00 = Avx512F.FusedMultiplyAdd(av, b0, c00); c01 = Avx512F.FusedMultiplyAdd(av, b1, c01);
            av = Vector512.Create(a[1]); c10 = Avx512F.FusedMultiplyAdd(av, b0, c10); c11 = Avx512F.FusedMultiplyAdd(av, b1, c11);
            av = Vector512.Create(a[2]); c20 = Avx512F.FusedMultiplyAdd(av, b0, c20); c21 = Avx512F.FusedMultiplyAdd(av, b1, c21);
            av = Vector512.Create(a[3]); c30 = Avx512F.FusedMultiplyAdd(av, b0, c30); c31 = Avx512F.FusedMultiplyAdd(av, b1, c31);
            av = Vector512.Create(a[4]); c40 = Avx512F.FusedMultiplyAdd(av, b0, c40); c41 = Avx512F.FusedMultiplyAdd(av, b1, c41);
            av = Vector512.Create(a[5]); c50 = Avx512F.FusedMultiplyAdd(av, b0, c50); c51 = Avx512F.FusedMultiplyAdd(av, b1, c51);
            av = Vector512.Create(a[6]); c60 = Avx512F.FusedMultiplyAdd(av, b0, c60); c61 = Avx512F.FusedMultiplyAdd(av, b1, c61);
            av = Vector512.Create(a[7]); c70 = Avx512F.FusedMultiplyAdd(av, b0, c70); c71 = Avx512F.FusedMultiplyAdd(av, b1, c71);
            a += 8;
            b += 32;
        }
        float* o = c;
        c00.Store(o); c01.Store(o + 16); o += ldc;
        c10.Store(o); c11.Store(o + 16); o += ldc;
        c20.Store(o); c21.Store(o + 16); o += ldc;
        c30.Store(o); c31.Store(o + 16); o += ldc;
        c40.Store(o); c41.Store(o + 16); o += ldc;
        c50.Store(o); c51.Store(o + 16); o += ldc;
        c60.Store(o); c61.Store(o + 16); o += ldc;
        c70.Store(o); c71.Store(o + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Kernel6x16(int kc, float* a, float* b, float* c, nint ldc, float* bias, int init)
    {
        Vector256<float> c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
        if (init == 2)
        {
            float* r = c;
            c00 = Vector256.Load(r); c01 = Vector256.Load(r + 8); r += ldc;
            c10 = Vector256.Load(r); c11 = Vector256.Load(r + 8); r += ldc;
            c20 = Vector256.Load(r); c21 = Vector256.Load(r + 8); r += ldc;
            c30 = Vector256.Load(r); c31 = Vector256.Load(r + 8); r += ldc;
            c40 = Vector256.Load(r); c41 = Vector256.Load(r + 8); r += ldc;
            c50 = Vector256.Load(r); c51 = Vector256.Load(r + 8);
        }
        else if (init == 1)
        {
            c00 = c01 = Vector256.Create(bias[0]);
            c10 = c11 = Vector256.Create(bias[1]);
            c20 = c21 = Vector256.Create(bias[2]);
            c30 = c31 = Vector256.Create(bias[3]);
            c40 = c41 = Vector256.Create(bias[4]);
            c50 = c51 = Vector256.Create(bias[5]);
        }
        else
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = Vector256<float>.Zero;
        }
        for (int k = 0; k < kc; k++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var av = Vector256.Create(a[0]); c00 = Fma.MultiplyAdd(av, b0, c00); c01 = Fma.MultiplyAdd(av, b1, c01);
            av = Vector256.Create(a[1]); c10 = Fma.MultiplyAdd(av, b0, c10); c11 = Fma.MultiplyAdd(av, b1, c11);
            av = Vector256.Create(a[2]); c20 = Fma.MultiplyAdd(av, b0, c20); c21 = Fma.MultiplyAdd(av, b1, c21);
            av = Vector256.Create(a[3]); c30 = Fma.MultiplyAdd(av, b0, c30); c31 = Fma.MultiplyAdd(av, b1, c31);
            av = Vector256.Create(a[4]); c40 = Fma.MultiplyAdd(av, b0, c40); c41 = Fma.MultiplyAdd(av, b1, c41);
            av = Vector256.Create(a[5]); c50 = Fma.MultiplyAdd(av, b0, c50); c51 = Fma.MultiplyAdd(av, b1, c51);
            a += 6;
            b += 16;
        }
        float* o = c;
        c00.Store(o); c01.Store(o + 8); o += ldc;
        c10.Store(o); c11.Store(o + 8); o += ldc;
        c20.Store(o); c21.Store(o + 8); o += ldc;
        c30.Store(o); c31.Store(o + 8); o += ldc;
        c40.Store(o); c41.Store(o + 8); o += ldc;
        c50.Store(o); c51.Store(o + 8);
    }

    private static unsafe void Kernel4x8(int kc, float* a, float* b, float* c, nint ldc, float* bias, int init)
    {
        float* acc = stackalloc float[32];
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < 8; j++)
                acc[r * 8 + j] = init == 2 ? c[r * ldc + j] : init == 1 ? bias[r] : 0f;
        for (int k = 0; k < kc; k++, a += 4, b += 8)
            for (int r = 0; r < 4; r++)
            {
                float av = a[r];
                for (int j = 0; j < 8; j++) acc[r * 8 + j] += av * b[j];
            }
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < 8; j++)
                c[r * ldc + j] = acc[r * 8 + j];
    }
}
