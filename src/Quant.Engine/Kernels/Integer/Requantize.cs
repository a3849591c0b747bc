using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// Requantization of the integer contract (docs/quantization-spec.md §1, §2):
/// <c>Rq(v; m, n, z_y, T) = sat_T(RoundShift(v·m, n) + z_y)</c> with the multiplier pair <c>(m, n) = Mult(M)</c>.
/// Every path is exact integer arithmetic, so the scalar and the AVX-512 paths give the same bits.
/// </summary>
public static class Requantize
{
    /// <summary>Largest shift the spec produces (§2.1: n ∈ [0, 94]).</summary>
    public const int MaxShift = 94;

    /// <summary>
    /// §2.1: turns a real multiplier M &gt; 0 into (m, n) with M ≈ m·2^−n, m ∈ {0} ∪ [2^30, 2^31), n ∈ [0, 94].
    /// M ≥ 2^31 (n &lt; 0) gives (2^31 − 1, 0) so every non-zero v saturates; a multiplier whose n would exceed 94
    /// gives (0, 0) so the output is z_y.
    /// </summary>
    public static (int M, int N) Mult(double multiplier)
    {
        if (!(multiplier > 0))
            throw new ArgumentOutOfRangeException(nameof(multiplier), multiplier, "a requantization multiplier must be a positive real number");
        if (double.IsPositiveInfinity(multiplier)) return (int.MaxValue, 0);
        // frexp: M = f·2^e with f in [0.5, 1). ILogB is exact for subnormals too, and ScaleB by a power of two is exact.
        int e = Math.ILogB(multiplier) + 1;
        double f = Math.ScaleB(multiplier, -e);
        // f·2^31 is exact (a power-of-two scaling); rounding it is the one rounding of the multiplier.
        long m = (long)Math.Round(Math.ScaleB(f, 31), MidpointRounding.ToEven);
        if (m == 1L << 31)
        {
            m = 1L << 30;
            e++;
        }
        int n = 31 - e;
        if (n < 0) return (int.MaxValue, 0);
        if (n > MaxShift) return (0, 0);
        return ((int)m, n);
    }

    /// <summary>
    /// §1: rne(v / 2^n), exact for every long v and n ≥ 0. For 1 ≤ n ≤ 63 it is the branch-free form of the spec,
    /// with the rounding carry computed in unsigned arithmetic so it cannot overflow even for |v| &gt; 2^62.
    /// For n ≥ 64, |v / 2^n| ≤ 1/2 and the result is 0 (the only tie, −2^63 / 2^64, rounds to the even 0).
    /// </summary>
    public static long RoundShift(long v, int n)
    {
        if (n == 0) return v;
        if ((uint)n >= 64)
        {
            if (n < 0) throw new ArgumentOutOfRangeException(nameof(n), n, "a shift count cannot be negative");
            return 0;
        }
        long q = v >> n;
        ulong rest = (ulong)(v - (q << n));                // v mod 2^n, in [0, 2^n)
        ulong carry = (rest + (1UL << (n - 1)) - 1 + ((ulong)q & 1)) >> n; // 1 above half, or at half with q odd
        return q + (long)carry;
    }

    /// <summary>rne(v / 2^n) for a 128-bit v (§2.2's wide products), same rounding as <see cref="RoundShift(long, int)"/>.</summary>
    private static Int128 RoundShift(Int128 v, int n)
    {
        if (n == 0) return v;
        if (n >= 127) return 0; // |v| < 2^126 for every product formed here
        Int128 q = v >> n;
        Int128 rest = v - (q << n);
        Int128 half = Int128.One << (n - 1);
        if (rest > half || (rest == half && (q & 1) != 0)) q++;
        return q;
    }

    /// <summary>The output range of an integer qtype (int8 or int16; §1).</summary>
    public static (int Min, int Max) Range(ElementType t) => t switch
    {
        ElementType.Int8 => (sbyte.MinValue, sbyte.MaxValue),
        ElementType.Int16 => (short.MinValue, short.MaxValue),
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "requantization outputs are int8 or int16"),
    };

    /// <summary>
    /// §2.2: sat_T(RoundShift(v·m, n) + z_y), saturated once at the end. The product is exact: in int64 while
    /// |v| &lt; 2^31 (every int32 accumulator, |v·m| &lt; 2^62), in 128 bits otherwise (int64 accumulators).
    /// </summary>
    public static int Rq(long v, int m, int n, int zy, ElementType t)
    {
        if (n < 0) throw new ArgumentOutOfRangeException(nameof(n), n, "a shift count cannot be negative");
        var (qmin, qmax) = Range(t);
        long r = v == (int)v ? RoundShift(v * m, n) : Narrow(RoundShift((Int128)v * m, n));
        return (int)Math.Clamp(r + zy, qmin, qmax);
    }

    /// <summary>A wide rounded value clamped into long; the final saturation to int8/int16 is unaffected.</summary>
    private static long Narrow(Int128 r) => r > long.MaxValue / 2 ? long.MaxValue / 2 : r < long.MinValue / 2 ? long.MinValue / 2 : (long)r;

    /// <summary>
    /// For int32 accumulators the products satisfy |v·m| &lt; 2^62, so any n ≥ 63 gives 0 (§2.2) and is replaced by
    /// (m, n) = (0, 0); the remaining n ∈ [0, 62] fits the spec's branch-free RoundShift on 64-bit lanes.
    /// </summary>
    private static (long M, int N) ForInt32(int m, int n)
    {
        if (n < 0) throw new ArgumentOutOfRangeException(nameof(n), n, "a shift count cannot be negative");
        return n >= 63 ? (0, 0) : (m, n);
    }

    /// <summary>The constants of the branch-free form: 2^(n−1) − 1 and the parity mask; both 0 for n = 0 (identity).</summary>
    private static (long Bias, long Parity) RoundingConstants(int n) => n == 0 ? (0, 0) : ((1L << (n - 1)) - 1, 1);

    private static bool UseAvx512(bool vector) => vector && Vector512.IsHardwareAccelerated && Avx512F.IsSupported;

    /// <summary>Requantizes an int32 accumulator span with one (m, n) and zero point to int8.</summary>
    public static void Run(ReadOnlySpan<int> acc, int m, int n, int zy, Span<sbyte> y, bool vector = true) => Uniform(acc, m, n, zy, y, vector);

    /// <summary>Requantizes an int32 accumulator span with one (m, n) and zero point to int16.</summary>
    public static void Run(ReadOnlySpan<int> acc, int m, int n, int zy, Span<short> y, bool vector = true) => Uniform(acc, m, n, zy, y, vector);

    /// <summary>
    /// Channels outermost (NCHW-like, acc is [channels, inner] row-major): channel c uses (m[c], n[c]) for its
    /// <paramref name="inner"/> contiguous elements.
    /// </summary>
    public static void RunPerChannel<T>(ReadOnlySpan<int> acc, int inner, ReadOnlySpan<int> m, ReadOnlySpan<int> n, int zy, Span<T> y, bool vector = true)
        where T : unmanaged
    {
        CheckChannels(acc.Length, m.Length, n.Length, y.Length);
        if (acc.Length != m.Length * inner) throw new ArgumentException($"accumulator length {acc.Length} is not {m.Length} channels × {inner}");
        for (int c = 0; c < m.Length; c++)
            Uniform(acc.Slice(c * inner, inner), m[c], n[c], zy, y.Slice(c * inner, inner), vector);
    }

    /// <summary>
    /// Channels innermost (MatMul/Gemm-like, acc is [rows, channels] row-major): column j uses (m[j], n[j]).
    /// </summary>
    public static void RunPerColumn<T>(ReadOnlySpan<int> acc, ReadOnlySpan<int> m, ReadOnlySpan<int> n, int zy, Span<T> y, bool vector = true)
        where T : unmanaged
    {
        CheckChannels(acc.Length, m.Length, n.Length, y.Length);
        int cols = m.Length;
        if (cols == 0 ? acc.Length != 0 : acc.Length % cols != 0)
            throw new ArgumentException($"accumulator length {acc.Length} is not a multiple of {cols} channels");
        // The per-column constants live in one buffer: on the stack for the usual widths, pooled beyond, so a call
        // allocates nothing.
        long[]? rented = cols > MaxStackColumns ? ArrayPool<long>.Shared.Rent(4 * cols) : null;
        Span<long> constants = rented is null ? stackalloc long[4 * MaxStackColumns] : rented;
        var mm = constants[..cols];
        var sh = MemoryMarshal.Cast<long, ulong>(constants.Slice(cols, cols));
        var bias = constants.Slice(2 * cols, cols);
        var parity = constants.Slice(3 * cols, cols);
        for (int j = 0; j < cols; j++)
        {
            var (mj, nj) = ForInt32(m[j], n[j]);
            mm[j] = mj;
            sh[j] = (ulong)nj;
            (bias[j], parity[j]) = RoundingConstants(nj);
        }
        var (qmin, qmax) = OutputRange<T>();
        for (int row = 0; row < acc.Length; row += cols)
        {
            var a = acc.Slice(row, cols);
            var o = y.Slice(row, cols);
            int j = 0;
            if (UseAvx512(vector))
            {
                var z = Vector512.Create((long)zy);
                for (; j <= cols - 8; j += 8)
                {
                    var v = Avx512F.ConvertToVector512Int64(Vector256.Create(a.Slice(j, 8)));
                    var p = v * Vector512.Create<long>(mm.Slice(j, 8));
                    var s = Vector512.Create<ulong>(sh.Slice(j, 8));
                    var t = p + Vector512.Create<long>(bias.Slice(j, 8)) + (Avx512F.ShiftRightArithmeticVariable(p, s) & Vector512.Create<long>(parity.Slice(j, 8)));
                    Store(Avx512F.ShiftRightArithmeticVariable(t, s) + z, o, j);
                }
            }
            for (; j < cols; j++)
                o[j] = FromInt<T>(Math.Clamp(RoundShift(a[j] * mm[j], (int)sh[j]) + zy, qmin, qmax));
        }
        // Not returned when a shift is rejected above: the pool then just allocates afresh.
        if (rented is not null) ArrayPool<long>.Shared.Return(rented);
    }

    /// <summary>Widest per-column requantization whose constants go on the stack (4 × 128 longs = 4 KiB).</summary>
    private const int MaxStackColumns = 128;

    private static void CheckChannels(int accLength, int mLength, int nLength, int yLength)
    {
        if (mLength != nLength) throw new ArgumentException($"{mLength} multipliers but {nLength} shifts");
        if (yLength != accLength) throw new ArgumentException($"output length {yLength} differs from accumulator length {accLength}");
    }

    private static (int Min, int Max) OutputRange<T>() where T : unmanaged =>
        typeof(T) == typeof(sbyte) ? (sbyte.MinValue, sbyte.MaxValue)
        : typeof(T) == typeof(short) ? (short.MinValue, short.MaxValue)
        : throw new NotSupportedException($"requantization outputs are sbyte or short, not {typeof(T).Name}");

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static T FromInt<T>(long x) where T : unmanaged
    {
        if (typeof(T) == typeof(sbyte)) { sbyte b = (sbyte)x; return Unsafe.As<sbyte, T>(ref b); }
        short s = (short)x;
        return Unsafe.As<short, T>(ref s);
    }

    /// <summary>Eight int64 lanes to eight outputs with the saturating down-conversions (vpmovsqb / vpmovsqw).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<T>(Vector512<long> r, Span<T> y, int at) where T : unmanaged
    {
        ref T dst = ref Unsafe.Add(ref MemoryMarshal.GetReference(y), at);
        if (typeof(T) == typeof(sbyte))
            Unsafe.WriteUnaligned(ref Unsafe.As<T, byte>(ref dst), Avx512F.ConvertToVector128SByteWithSaturation(r).AsUInt64().ToScalar());
        else
            Avx512F.ConvertToVector128Int16WithSaturation(r).StoreUnsafe(ref Unsafe.As<T, short>(ref dst));
    }

    /// <summary>One (m, n) over the whole span: sixteen accumulators per step on AVX-512, the rest scalar.</summary>
    private static void Uniform<T>(ReadOnlySpan<int> acc, int m, int n, int zy, Span<T> y, bool vector) where T : unmanaged
    {
        if (y.Length != acc.Length) throw new ArgumentException($"output length {y.Length} differs from accumulator length {acc.Length}");
        var (qmin, qmax) = OutputRange<T>();
        var (mm, nn) = ForInt32(m, n);
        var (bias, parity) = RoundingConstants(nn);
        int i = 0;
        if (UseAvx512(vector))
        {
            var vm = Vector512.Create(mm);
            var vb = Vector512.Create(bias);
            var vp = Vector512.Create(parity);
            var z = Vector512.Create((long)zy);
            ref int ar = ref MemoryMarshal.GetReference(acc);
            for (; i <= acc.Length - 16; i += 16)
            {
                var both = Vector512.LoadUnsafe(ref ar, (nuint)i);
                var lo = Avx512F.ConvertToVector512Int64(both.GetLower()) * vm;
                var hi = Avx512F.ConvertToVector512Int64(both.GetUpper()) * vm;
                lo = Vector512.ShiftRightArithmetic(lo + vb + (Vector512.ShiftRightArithmetic(lo, nn) & vp), nn);
                hi = Vector512.ShiftRightArithmetic(hi + vb + (Vector512.ShiftRightArithmetic(hi, nn) & vp), nn);
                Store(lo + z, y, i);
                Store(hi + z, y, i + 8);
            }
        }
        for (; i < acc.Length; i++)
            y[i] = FromInt<T>(Math.Clamp(RoundShift(acc[i] * mm, nn) + zy, qmin, qmax));
    }
}
