using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// Int8 weights B[K, N] packed once for <see cref="Int8Gemm"/>: column blocks of 16, and inside a block groups of
/// 4 consecutive k, so one 64-byte load holds B[k..k+3, n..n+15] in the lane order of <c>vpdpbusd</c>
/// (lane j: the 4 bytes of column n + j). K is padded to a multiple of 4 and N to a multiple of 16 with zero weights,
/// which contribute nothing whatever the activation. <see cref="Correction"/> is −128·Σ_k B[k, n]: it removes the
/// +128 offset that makes signed activations unsigned (docs/quantization-spec.md §5.1, with z_x = 0 and no bias).
/// </summary>
internal sealed class Int8Weights : IPackedGemm<Int8Weights>
{
    public const int Lanes = 16;

    public int K { get; }
    public int N { get; }
    /// <summary>K rounded up to a multiple of 4.</summary>
    public int PaddedK { get; }
    /// <summary>Number of 16-column blocks.</summary>
    public int Blocks { get; }
    /// <summary>[block][k / 4][lane][k % 4] bytes.</summary>
    internal sbyte[] Data { get; }
    /// <summary>−128·Σ_k B[k, n] for every padded column; exact (|Σ| ≤ 128·K).</summary>
    internal int[] Correction { get; }

    private Int8Weights(int k, int n, sbyte[]? data = null)
    {
        K = k;
        N = n;
        PaddedK = (k + 3) & ~3;
        Blocks = (n + Lanes - 1) / Lanes;
        Data = data ?? new sbyte[Blocks * PaddedK * Lanes];
        Correction = new int[Blocks * Lanes];
    }

    /// <summary>Weights stored already packed (a compiled model): the bytes are copied as they are, only the correction is summed.</summary>
    public static Int8Weights FromPacked(PackedGemmWeights packed)
    {
        if (packed.Layout != PackedLayout.Int8Vnni) throw new ArgumentException($"int8 GEMM weights cannot use the {packed.Layout} layout");
        var w = new Int8Weights(packed.K, packed.N, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, sbyte>(packed.Data).ToArray());
        // Data is [block][k / 4][lane][k % 4]: walk it in order, summing each lane's bytes into its column.
        int at = 0;
        for (int block = 0; block < w.Blocks; block++)
            for (int k4 = 0; k4 < w.PaddedK / 4; k4++)
                for (int lane = 0; lane < Lanes; lane++, at += 4)
                    w.Correction[block * Lanes + lane] -= 128 * (w.Data[at] + w.Data[at + 1] + w.Data[at + 2] + w.Data[at + 3]);
        return w;
    }

    public PackedGemmWeights ToPacked() =>
        new(PackedLayout.Int8Vnni, K, N, System.Runtime.InteropServices.MemoryMarshal.AsBytes(Data.AsSpan()).ToArray());

    /// <summary>Σ_k B[k, n] per column n &lt; N (the correction is −128 times it).</summary>
    public long[] ColumnSums()
    {
        var sums = new long[N];
        for (int col = 0; col < N; col++) sums[col] = -Correction[col] / 128;
        return sums;
    }

    /// <summary>Packs row-major B[K, N].</summary>
    public static Int8Weights Pack(ReadOnlySpan<sbyte> b, int k, int n)
    {
        GemmShapes.Weights(b.Length, k, n);
        var w = new Int8Weights(k, n);
        for (int kk = 0; kk < k; kk++)
        {
            for (int col = 0; col < n; col++)
            {
                sbyte v = b[kk * n + col];
                w.Data[w.Index(kk, col)] = v;
                w.Correction[col] -= 128 * v;
            }
        }
        return w;
    }

    /// <summary>Where B[k, n] lives in <see cref="Data"/>.</summary>
    internal int Index(int k, int n) => ((n / Lanes * (PaddedK / 4) + k / 4) * Lanes + n % Lanes) * 4 + k % 4;
}

/// <summary>
/// C[M, N] (int32) = A[M, K] (int8 activations) × B[K, N] (int8 weights), the exact integer sum of §4.1 with zero
/// points 0 and no bias. The sum is exact while it fits int32 (always for K &lt; 2^17: |a·b| ≤ 2^14); beyond that every
/// path gives the same value modulo 2^32, because all of them wrap instead of saturating.
/// <para>The VNNI path (§5.1) offsets each activation by +128 (x XOR 0x80) so <c>vpdpbusd</c> (u8 × s8, four
/// products per int32 lane, wrapping) applies, and starts each accumulator at the column's correction −128·Σ_k B[k, n].
/// The saturating <c>vpdpbusds</c> is never used: it would break the modulo-2^32 argument.</para>
/// </summary>
internal static class Int8Gemm
{
    /// <summary>Reference: the plain triple loop on row-major A[M, K] and B[K, N], wrapping int32 arithmetic.</summary>
    public static void Scalar(ReadOnlySpan<sbyte> a, ReadOnlySpan<sbyte> b, int m, int k, int n, Span<int> c)
    {
        GemmShapes.Operands(a.Length, m, k, n, c.Length);
        GemmShapes.WeightsLength(b.Length, k, n);
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                int s = 0;
                for (int t = 0; t < k; t++) s = unchecked(s + a[i * k + t] * b[t * n + j]);
                c[i * n + j] = s;
            }
        }
    }

    /// <summary>C = A × B with packed weights: VNNI when the CPU has it, else a scalar loop over the packing.</summary>
    public static void Run(ReadOnlySpan<sbyte> a, Int8Weights b, int m, Span<int> c, bool vector = true)
    {
        GemmShapes.Operands(a.Length, m, b.K, b.N, c.Length);
        if (vector && AvxVnni.IsSupported) RunVnni(a, b, m, c);
        else RunPacked(a, b, m, c);
    }

    /// <summary>
    /// C = A × B where the caller has already written the offset activations u = a + 128 (a XOR 0x80) as
    /// <paramref name="m"/> rows of <see cref="Int8Weights.PaddedK"/> bytes: the convolutions build their panels
    /// straight in this form, so no pass converts them. Bytes of a row past K meet zero weights; any value works there.
    /// </summary>
    public static void RunOffset(ReadOnlySpan<byte> u, Int8Weights b, int m, Span<int> c, bool vector = true)
    {
        int pk = b.PaddedK, n = b.N;
        if (m < 0) throw new ArgumentOutOfRangeException(nameof(m), m, "GEMM dimensions cannot be negative");
        if (c.Length != (long)m * n) throw new ArgumentException($"output holds {c.Length} values, not {m} × {n}");
        if (u.Length < (long)m * pk) throw new ArgumentException($"offset activations hold {u.Length} bytes, not {m} × {pk}");
        if (vector && AvxVnni.IsSupported)
        {
            var u4 = MemoryMarshal.Cast<byte, int>(u[..(m * pk)]);
            int groups = pk / 4, i = 0;
            for (; i + 4 <= m; i += 4) FourRows(u4.Slice(i * groups, 4 * groups), b, i, c);
            for (; i < m; i++) OneRow(u4.Slice(i * groups, groups), b, i, c);
            return;
        }
        // Σ_k (u − 128)·w = Σ_k u·w + Correction, in wrapping int32 like the vector path.
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                int s = b.Correction[j];
                for (int t = 0; t < b.K; t++) s = unchecked(s + u[i * pk + t] * b.Data[b.Index(t, j)]);
                c[i * n + j] = s;
            }
    }

    /// <summary>Fallback without VNNI: the same sums, read through the packed layout.</summary>
    private static void RunPacked(ReadOnlySpan<sbyte> a, Int8Weights b, int m, Span<int> c)
    {
        int k = b.K, n = b.N;
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                int s = 0;
                for (int t = 0; t < k; t++) s = unchecked(s + a[i * k + t] * b.Data[b.Index(t, j)]);
                c[i * n + j] = s;
            }
        }
    }

    /// <summary>
    /// The VNNI body. .NET 10 exposes <c>vpdpbusd</c> only in its VEX form (AVX-VNNI, 256-bit: <c>AvxVnni</c>); it has
    /// no 512-bit (AVX512-VNNI) intrinsic. So each 16-column block runs as two 8-lane halves over the same 64-byte
    /// packing; a 512-bit body would read the same packing and give the same bits. CPUs with AVX512-VNNI but without
    /// AVX-VNNI (Cascade Lake, Ice Lake server) take the scalar fallback.
    /// </summary>
    private static void RunVnni(ReadOnlySpan<sbyte> a, Int8Weights b, int m, Span<int> c)
    {
        int k = b.K, pk = b.PaddedK;
        // Offset activations u = x + 128 for up to four rows, each padded to PaddedK (the padding meets zero weights).
        var u = new byte[4 * pk];
        var u4 = MemoryMarshal.Cast<byte, int>(u.AsSpan());
        for (int i = 0; i < m; i += 4)
        {
            int rows = Math.Min(4, m - i);
            for (int r = 0; r < rows; r++)
                System.Numerics.Tensors.TensorPrimitives.Xor(MemoryMarshal.AsBytes(a.Slice((i + r) * k, k)), (byte)0x80, u.AsSpan(r * pk, k));
            if (rows == 4) FourRows(u4, b, i, c);
            else
                for (int r = 0; r < rows; r++) OneRow(u4.Slice(r * pk / 4, pk / 4), b, i + r, c);
        }
    }

    /// <summary>One row against every column block: two 8-lane accumulators per block.</summary>
    private static void OneRow(ReadOnlySpan<int> u4, Int8Weights b, int i, Span<int> c)
    {
        int groups = b.PaddedK / 4;
        ref sbyte data = ref MemoryMarshal.GetArrayDataReference(b.Data);
        ref int corr = ref MemoryMarshal.GetArrayDataReference(b.Correction);
        ref int ur = ref MemoryMarshal.GetReference(u4);
        Span<int> scratch = stackalloc int[Int8Weights.Lanes];
        for (int blk = 0; blk < b.Blocks; blk++)
        {
            nuint first = (nuint)(blk * Int8Weights.Lanes);
            var lo = Vector256.LoadUnsafe(ref corr, first);
            var hi = Vector256.LoadUnsafe(ref corr, first + 8);
            nuint at = (nuint)(blk * groups * 64);
            for (int g = 0; g < groups; g++, at += 64)
            {
                var x = Vector256.Create(Unsafe.Add(ref ur, g)).AsByte(); // u[4g..4g+3] in every lane
                lo = AvxVnni.MultiplyWideningAndAdd(lo, x, Vector256.LoadUnsafe(ref data, at));
                hi = AvxVnni.MultiplyWideningAndAdd(hi, x, Vector256.LoadUnsafe(ref data, at + 32));
            }
            int col = (int)first, width = Math.Min(Int8Weights.Lanes, b.N - col);
            var full = width == Int8Weights.Lanes;
            ref int dst = ref full ? ref c[i * b.N + col] : ref scratch[0];
            lo.StoreUnsafe(ref dst);
            hi.StoreUnsafe(ref dst, 8);
            if (!full) scratch[..width].CopyTo(c.Slice(i * b.N + col, width));
        }
    }

    /// <summary>
    /// Four rows at once, so each weight load feeds four rows and eight independent accumulator chains hide the
    /// latency of <c>vpdpbusd</c>. No calls while the accumulators are live: the JIT would spill them every step.
    /// </summary>
    private static void FourRows(ReadOnlySpan<int> u4, Int8Weights b, int i, Span<int> c)
    {
        int groups = b.PaddedK / 4, n = b.N;
        ref sbyte data = ref MemoryMarshal.GetArrayDataReference(b.Data);
        ref int corr = ref MemoryMarshal.GetArrayDataReference(b.Correction);
        ref int u0 = ref MemoryMarshal.GetReference(u4);
        ref int u1 = ref Unsafe.Add(ref u0, groups);
        ref int u2 = ref Unsafe.Add(ref u1, groups);
        ref int u3 = ref Unsafe.Add(ref u2, groups);
        Span<int> scratch = stackalloc int[4 * Int8Weights.Lanes];
        for (int blk = 0; blk < b.Blocks; blk++)
        {
            nuint first = (nuint)(blk * Int8Weights.Lanes);
            var lo0 = Vector256.LoadUnsafe(ref corr, first);
            var hi0 = Vector256.LoadUnsafe(ref corr, first + 8);
            Vector256<int> lo1 = lo0, hi1 = hi0, lo2 = lo0, hi2 = hi0, lo3 = lo0, hi3 = hi0;
            nuint at = (nuint)(blk * groups * 64);
            for (int g = 0; g < groups; g++, at += 64)
            {
                var w0 = Vector256.LoadUnsafe(ref data, at);
                var w1 = Vector256.LoadUnsafe(ref data, at + 32);
                var x = Vector256.Create(Unsafe.Add(ref u0, g)).AsByte();
                lo0 = AvxVnni.MultiplyWideningAndAdd(lo0, x, w0);
                hi0 = AvxVnni.MultiplyWideningAndAdd(hi0, x, w1);
                x = Vector256.Create(Unsafe.Add(ref u1, g)).AsByte();
                lo1 = AvxVnni.MultiplyWideningAndAdd(lo1, x, w0);
                hi1 = AvxVnni.MultiplyWideningAndAdd(hi1, x, w1);
                x = Vector256.Create(Unsafe.Add(ref u2, g)).AsByte();
                lo2 = AvxVnni.MultiplyWideningAndAdd(lo2, x, w0);
                hi2 = AvxVnni.MultiplyWideningAndAdd(hi2, x, w1);
                x = Vector256.Create(Unsafe.Add(ref u3, g)).AsByte();
                lo3 = AvxVnni.MultiplyWideningAndAdd(lo3, x, w0);
                hi3 = AvxVnni.MultiplyWideningAndAdd(hi3, x, w1);
            }
            int col = (int)first, width = Math.Min(Int8Weights.Lanes, n - col);
            var full = width == Int8Weights.Lanes;
            // Full blocks go straight to C (row stride n); the narrower last block goes through a 4 × 16 scratch.
            ref int dst = ref full ? ref c[i * n + col] : ref scratch[0];
            nuint stride = full ? (nuint)n : Int8Weights.Lanes;
            lo0.StoreUnsafe(ref dst);
            hi0.StoreUnsafe(ref dst, 8);
            lo1.StoreUnsafe(ref dst, stride);
            hi1.StoreUnsafe(ref dst, stride + 8);
            lo2.StoreUnsafe(ref dst, 2 * stride);
            hi2.StoreUnsafe(ref dst, 2 * stride + 8);
            lo3.StoreUnsafe(ref dst, 3 * stride);
            hi3.StoreUnsafe(ref dst, 3 * stride + 8);
            if (!full)
                for (int r = 0; r < 4; r++)
                    scratch.Slice(r * Int8Weights.Lanes, width).CopyTo(c.Slice((i + r) * n + col, width));
        }
    }
}
