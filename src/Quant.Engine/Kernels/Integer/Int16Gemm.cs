using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// Weights B[K, N] as int16 words, packed once for <see cref="Int16Gemm"/>: column blocks of 16, and inside a block
/// pairs of consecutive k, so one 64-byte load holds B[k..k+1, n..n+15] in the lane order of <c>vpdpwssd</c>
/// (lane j: the 2 words of column n + j). int8 weights are sign-extended (docs/quantization-spec.md §5.2). K is padded
/// to even and N to a multiple of 16 with zero weights, which contribute nothing whatever the activation.
/// </summary>
internal sealed class Int16Weights : IPackedGemm<Int16Weights>
{
    public const int Lanes = 16;

    public int K { get; }
    public int N { get; }
    /// <summary>K rounded up to even.</summary>
    public int PaddedK { get; }
    /// <summary>Number of 16-column blocks.</summary>
    public int Blocks { get; }
    /// <summary>True when packed from int8 (|w| ≤ 128): the 16 × 8 case, whose int64 path needs no split.</summary>
    public bool FromInt8 { get; }
    /// <summary>[block][k / 2][lane][k % 2] words.</summary>
    internal short[] Data { get; }

    private Int16Weights(int k, int n, bool fromInt8, short[]? data = null)
    {
        K = k;
        N = n;
        FromInt8 = fromInt8;
        PaddedK = (k + 1) & ~1;
        Blocks = (n + Lanes - 1) / Lanes;
        Data = data ?? new short[Blocks * PaddedK * Lanes];
    }

    /// <summary>
    /// Weights stored already packed (a compiled model), taken as they are. Words claimed to come from int8 are checked
    /// to be within int8 (the 16 × 8 paths rely on |w| ≤ 128).
    /// </summary>
    public static Int16Weights FromPacked(PackedGemmWeights packed)
    {
        if (packed.Layout is not (PackedLayout.Int16Vnni or PackedLayout.Int16VnniFromInt8))
            throw new ArgumentException($"int16 GEMM weights cannot use the {packed.Layout} layout");
        var data = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, short>(packed.Data).ToArray();
        bool fromInt8 = packed.Layout == PackedLayout.Int16VnniFromInt8;
        if (fromInt8 && Array.Exists(data, v => v is < sbyte.MinValue or > sbyte.MaxValue))
            throw new ArgumentException("weights packed from int8 hold a value outside int8");
        return new Int16Weights(packed.K, packed.N, fromInt8, data);
    }

    public PackedGemmWeights ToPacked() => new(FromInt8 ? PackedLayout.Int16VnniFromInt8 : PackedLayout.Int16Vnni, K, N,
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(Data.AsSpan()).ToArray());

    /// <summary>Packs row-major int8 B[K, N] (16 × 8), sign-extending every weight.</summary>
    public static Int16Weights Pack(ReadOnlySpan<sbyte> b, int k, int n) => Pack(b, k, n, fromInt8: true);

    /// <summary>Packs row-major int16 B[K, N] (16 × 16).</summary>
    public static Int16Weights Pack(ReadOnlySpan<short> b, int k, int n) => Pack(b, k, n, fromInt8: false);

    private static Int16Weights Pack<TW>(ReadOnlySpan<TW> b, int k, int n, bool fromInt8) where TW : IBinaryInteger<TW>
    {
        GemmShapes.Weights(b.Length, k, n);
        var w = new Int16Weights(k, n, fromInt8);
        for (int kk = 0; kk < k; kk++)
            for (int col = 0; col < n; col++) w.Data[w.Index(kk, col)] = short.CreateTruncating(b[kk * n + col]);
        return w;
    }

    /// <summary>Where B[k, n] lives in <see cref="Data"/>.</summary>
    internal int Index(int k, int n) => ((n / Lanes * (PaddedK / 2) + k / 2) * Lanes + n % Lanes) * 2 + k % 2;
}

/// <summary>
/// C[M, N] = A[M, K] (int16 activations) × B[K, N] (int8 or int16 weights), the exact integer sum of §4.1 with zero
/// points 0 and no bias.
/// <list type="bullet">
/// <item><b>int32 accumulator</b> (<see cref="RunInt32"/>, <see cref="Scalar16x8"/>): exact when the caller has proven
/// the bound of §4.3 (<see cref="FitsInt32"/>); otherwise every path gives the same value modulo 2^32, because all of
/// them wrap (the saturating <c>vpdpwssds</c> is never used).</item>
/// <item><b>int64 accumulator</b> (<see cref="RunInt64"/>, <see cref="Scalar16x8Wide"/>, <see cref="Scalar16x16"/>):
/// always exact for K &lt; 2^33. The vector path sums blocks in int32 lanes that provably cannot overflow (see
/// <see cref="NarrowBlockPairs"/> and <see cref="SplitBlockPairs"/>) and widens each block into int64.</item>
/// </list>
/// </summary>
internal static class Int16Gemm
{
    /// <summary>
    /// 16 × 8 int64 path (§5.2): |x·w| ≤ 32768·128 = 2^22, so one <c>vpdpwssd</c> step adds at most 2^23 to a lane;
    /// 255 steps reach at most 255·2^23 = 2^31 − 2^23 &lt; 2^31. 256 steps could reach 2^31 (all (−32768)·(−128)).
    /// </summary>
    public const int NarrowBlockPairs = 255;

    /// <summary>
    /// 16 × 16 int64 path (§5.3): x = 256·h + l with h = x &gt;&gt; 8 ∈ [−128, 127], l = x &amp; 0xFF ∈ [0, 255].
    /// A step adds at most 2·128·32768 = 2^23 to the h lane and at most 2·255·32768 = 16 711 680 to the l lane.
    /// 128 steps: h ≤ 2^30, l ≤ 2 139 095 040 &lt; 2^31 − 1; 129 steps of l could reach 2 155 806 720 &gt; 2^31.
    /// Raw int16 × int16 pairs are not used: one pair (−32768)·(−32768)·2 = 2^31 already wraps (§5.3 pitfall).
    /// </summary>
    public const int SplitBlockPairs = 128;

    /// <summary>
    /// The accumulator-width proof of §4.3 with the conservative per-tap bound: true when
    /// K·maxAbsA·maxAbsB + maxAbsBias &lt; 2^31, so every sum (plus bias) lies in int32 whatever the values.
    /// maxAbsA and maxAbsB are the largest magnitudes the operands may take (32768 for int16 with −32768 allowed).
    /// </summary>
    public static bool FitsInt32(int k, int maxAbsA, int maxAbsB, long maxAbsBias = 0)
    {
        if (k < 0) throw new ArgumentOutOfRangeException(nameof(k), k, "GEMM depth cannot be negative");
        if (maxAbsA is < 0 or > 32768) throw new ArgumentOutOfRangeException(nameof(maxAbsA), maxAbsA, "an int16 magnitude lies in [0, 32768]");
        if (maxAbsB is < 0 or > 32768) throw new ArgumentOutOfRangeException(nameof(maxAbsB), maxAbsB, "an int16 magnitude lies in [0, 32768]");
        if (maxAbsBias is < 0 or > 1L << 31) throw new ArgumentOutOfRangeException(nameof(maxAbsBias), maxAbsBias, "an int32 bias magnitude lies in [0, 2^31]");
        // k < 2^31 and both magnitudes ≤ 2^15: the product is below 2^61, no long overflow.
        return (long)k * maxAbsA * maxAbsB + maxAbsBias < 1L << 31;
    }

    /// <summary>Reference for the int32 path: the plain triple loop, wrapping int32 arithmetic.</summary>
    public static void Scalar16x8(ReadOnlySpan<short> a, ReadOnlySpan<sbyte> b, int m, int k, int n, Span<int> c)
    {
        CheckShapes(a.Length, b.Length, m, k, n, c.Length);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                int s = 0;
                for (int t = 0; t < k; t++) s = unchecked(s + a[i * k + t] * b[t * n + j]);
                c[i * n + j] = s;
            }
    }

    /// <summary>Reference for 16 × 8 when the int32 bound does not hold: int64 sums.</summary>
    public static void Scalar16x8Wide(ReadOnlySpan<short> a, ReadOnlySpan<sbyte> b, int m, int k, int n, Span<long> c) =>
        ScalarWide(a, b, m, k, n, c);

    /// <summary>Reference for 16 × 16: int64 sums (each product fits int32: |a·b| ≤ 2^30).</summary>
    public static void Scalar16x16(ReadOnlySpan<short> a, ReadOnlySpan<short> b, int m, int k, int n, Span<long> c) =>
        ScalarWide(a, b, m, k, n, c);

    private static void ScalarWide<TW>(ReadOnlySpan<short> a, ReadOnlySpan<TW> b, int m, int k, int n, Span<long> c)
        where TW : IBinaryInteger<TW>
    {
        CheckShapes(a.Length, b.Length, m, k, n, c.Length);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                long s = 0;
                for (int t = 0; t < k; t++) s += a[i * k + t] * long.CreateTruncating(b[t * n + j]);
                c[i * n + j] = s;
            }
    }

    private static void CheckShapes(int aLength, int bLength, int m, int k, int n, int cLength)
    {
        GemmShapes.Weights(bLength, k, n);
        GemmShapes.Operands(aLength, m, k, n, cLength);
    }

    /// <summary>
    /// C = A × B in int32 lanes (the path for a proven bound, §5.2): <c>vpdpwssd</c> when the CPU has AVX-VNNI, else a
    /// scalar loop over the packing. Exact when <see cref="FitsInt32"/> holds; otherwise the sum modulo 2^32.
    /// </summary>
    public static void RunInt32(ReadOnlySpan<short> a, Int16Weights b, int m, Span<int> c, bool vector = true)
    {
        GemmShapes.Operands(a.Length, m, b.K, b.N, c.Length);
        if (vector && AvxVnni.IsSupported)
        {
            var pairs = new int[b.PaddedK / 2];
            for (int i = 0; i < m; i++)
            {
                a.Slice(i * b.K, b.K).CopyTo(MemoryMarshal.Cast<int, short>(pairs.AsSpan()));
                RowInt32(pairs, b, c.Slice(i * b.N, b.N));
            }
            return;
        }
        for (int i = 0; i < m; i++)
            for (int j = 0; j < b.N; j++)
            {
                int s = 0;
                for (int t = 0; t < b.K; t++) s = unchecked(s + a[i * b.K + t] * b.Data[b.Index(t, j)]);
                c[i * b.N + j] = s;
            }
    }

    /// <summary>
    /// C = A × B in int64, always exact: for int8 weights blocks of <see cref="NarrowBlockPairs"/> raw pairs, for int16
    /// weights the activation split of §5.3 with blocks of <see cref="SplitBlockPairs"/>. Without AVX-VNNI, a scalar
    /// int64 loop over the packing.
    /// </summary>
    public static void RunInt64(ReadOnlySpan<short> a, Int16Weights b, int m, Span<long> c, bool vector = true)
    {
        GemmShapes.Operands(a.Length, m, b.K, b.N, c.Length);
        if (vector && AvxVnni.IsSupported)
        {
            int half = b.PaddedK / 2;
            var high = new int[half];
            var low = b.FromInt8 ? null : new int[half];
            var hs = MemoryMarshal.Cast<int, short>(high.AsSpan());
            var ls = low is null ? default : MemoryMarshal.Cast<int, short>(low.AsSpan());
            for (int i = 0; i < m; i++)
            {
                var row = a.Slice(i * b.K, b.K);
                if (low is null) row.CopyTo(hs);
                else
                    for (int t = 0; t < row.Length; t++)
                    {
                        hs[t] = (short)(row[t] >> 8);
                        ls[t] = (short)(row[t] & 0xFF);
                    }
                RowInt64(high, low, b, c.Slice(i * b.N, b.N));
            }
            return;
        }
        for (int i = 0; i < m; i++)
            for (int j = 0; j < b.N; j++)
            {
                long s = 0;
                for (int t = 0; t < b.K; t++) s += a[i * b.K + t] * b.Data[b.Index(t, j)];
                c[i * b.N + j] = s;
            }
    }

    /// <summary>One row, int32 lanes: two 8-lane accumulators per 16-column block. No calls in the inner loop.</summary>
    private static void RowInt32(int[] pairs, Int16Weights b, Span<int> c)
    {
        int steps = b.PaddedK / 2;
        ref short data = ref MemoryMarshal.GetArrayDataReference(b.Data);
        ref int x = ref MemoryMarshal.GetArrayDataReference(pairs);
        Span<int> scratch = stackalloc int[Int16Weights.Lanes];
        for (int blk = 0; blk < b.Blocks; blk++)
        {
            var (lo, hi) = PairSums(ref data, (nuint)(blk * steps * 2 * Int16Weights.Lanes), ref x, 0, steps);
            Store(lo, hi, blk, c, scratch);
        }
    }

    /// <summary>
    /// Σ over pair steps [from, end) of one 16-column block starting at <paramref name="block"/> in the packing, in two
    /// 8-lane int32 vectors (wrapping). Step g broadcasts activations 2g, 2g+1 (one int of <paramref name="x"/>) to every
    /// lane. Inlined so the accumulators stay in registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<int> Lo, Vector256<int> Hi) PairSums(ref short data, nuint block, ref int x, int from, int end)
    {
        var lo = Vector256<int>.Zero;
        var hi = Vector256<int>.Zero;
        nuint at = block + (nuint)(from * 2 * Int16Weights.Lanes);
        for (int g = from; g < end; g++, at += 2 * Int16Weights.Lanes)
        {
            var xv = Vector256.Create(Unsafe.Add(ref x, g)).AsInt16();
            lo = AvxVnni.MultiplyWideningAndAdd(lo, xv, Vector256.LoadUnsafe(ref data, at));
            hi = AvxVnni.MultiplyWideningAndAdd(hi, xv, Vector256.LoadUnsafe(ref data, at + 16));
        }
        return (lo, hi);
    }

    private static void Store(Vector256<int> lo, Vector256<int> hi, int blk, Span<int> c, Span<int> scratch)
    {
        int col = blk * Int16Weights.Lanes, width = Math.Min(Int16Weights.Lanes, c.Length - col);
        lo.CopyTo(scratch);
        hi.CopyTo(scratch[8..]);
        scratch[..width].CopyTo(c.Slice(col, width));
    }

    /// <summary>
    /// One row, int64: per 16-column block, int32 partial sums over blocks of k that cannot overflow, widened into four
    /// int64 vectors. With <paramref name="low"/> null the activations are used raw (int8 weights); otherwise
    /// <paramref name="high"/>/<paramref name="low"/> hold h and l of §5.3 and each block adds (H &lt;&lt; 8) + L.
    /// </summary>
    private static void RowInt64(int[] high, int[]? low, Int16Weights b, Span<long> c)
    {
        int steps = b.PaddedK / 2;
        int blockSteps = low is null ? NarrowBlockPairs : SplitBlockPairs;
        ref short data = ref MemoryMarshal.GetArrayDataReference(b.Data);
        ref int xh = ref MemoryMarshal.GetArrayDataReference(high);
        ref int xl = ref low is null ? ref xh : ref MemoryMarshal.GetArrayDataReference(low);
        Span<long> scratch = stackalloc long[Int16Weights.Lanes];
        for (int blk = 0; blk < b.Blocks; blk++)
        {
            Vector256<long> s0 = default, s1 = default, s2 = default, s3 = default;
            nuint first = (nuint)(blk * steps * 2 * Int16Weights.Lanes);
            for (int g0 = 0; g0 < steps; g0 += blockSteps)
            {
                int end = Math.Min(steps, g0 + blockSteps);
                var (hLo, hHi) = PairSums(ref data, first, ref xh, g0, end);
                var (w0, w1) = Vector256.Widen(hLo);
                var (w2, w3) = Vector256.Widen(hHi);
                if (low is not null)
                {
                    var (lLo, lHi) = PairSums(ref data, first, ref xl, g0, end);
                    var (v0, v1) = Vector256.Widen(lLo);
                    var (v2, v3) = Vector256.Widen(lHi);
                    w0 = (w0 << 8) + v0;
                    w1 = (w1 << 8) + v1;
                    w2 = (w2 << 8) + v2;
                    w3 = (w3 << 8) + v3;
                }
                s0 += w0;
                s1 += w1;
                s2 += w2;
                s3 += w3;
            }
            int col = blk * Int16Weights.Lanes, width = Math.Min(Int16Weights.Lanes, c.Length - col);
            s0.CopyTo(scratch);
            s1.CopyTo(scratch[4..]);
            s2.CopyTo(scratch[8..]);
            s3.CopyTo(scratch[12..]);
            scratch[..width].CopyTo(c.Slice(col, width));
        }
    }
}
