using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// The dense int8 convolution's GEMM with output pixels in the vector lanes: C[m, p] = r[m] + Σ_g Σ_j u[g, p, j]·a[m, g, j]
/// (wrapping int32), where u are offset activations x + 128 (spec §5.1) stored as one int per (group of 4 taps g,
/// pixel p) and a are the int8 weights, row m holding its 4·groups taps in the same order. r[m] carries the bias,
/// the zero-point term and −128·Σ w[m], so C is the exact accumulator (modulo 2^32, like every integer GEMM here).
/// <para>Pixels in lanes means each output channel's results come out as a contiguous run, which is what the
/// requantization of <see cref="QGemmOutput.Write(ReadOnlySpan{int}, int, Tensor, int, bool)"/> reads: no
/// pixel→channel reorder. The register tile is <see cref="Rows"/> channels × <see cref="Pixels"/> pixels: twelve
/// 8-lane accumulators, two activation loads and six weight broadcasts per 4 taps, within the 16 vector registers of
/// the VEX-encoded <c>vpdpbusd</c> (.NET 10 has no 512-bit VNNI intrinsic).</para>
/// </summary>
internal static class Int8PixelGemm
{
    /// <summary>Output channels per register tile; weight rows are padded to a multiple of it with zero rows.</summary>
    public const int Rows = 6;
    /// <summary>Pixels per register tile (two 8-lane vectors).</summary>
    public const int Pixels = 16;

    /// <summary>Rows padded to a multiple of <see cref="Rows"/>.</summary>
    public static int PaddedRows(int m) => (m + Rows - 1) / Rows * Rows;

    /// <summary>Pixels padded to a multiple of <see cref="Pixels"/>.</summary>
    public static int PaddedPixels(int p) => (p + Pixels - 1) / Pixels * Pixels;

    /// <summary>
    /// C[m, p] for m &lt; <see cref="PaddedRows"/>(rows) and p &lt; <paramref name="pixels"/> (a multiple of
    /// <see cref="Pixels"/>): <paramref name="u"/> holds u[g, p] at g·<paramref name="groupStride"/> + p,
    /// <paramref name="a"/> the padded rows [m][groups] (4 weight bytes per int), <paramref name="r"/> the padded row
    /// constants; C row m at m·<paramref name="cStride"/>.
    /// </summary>
    public static void Run(ReadOnlySpan<int> u, int groupStride, int groups, int pixels, int[] a, int[] r, int rows, Span<int> c, int cStride, bool vector = true)
    {
        int mp = PaddedRows(rows);
        if (pixels % Pixels != 0) throw new ArgumentException($"{pixels} pixels is not a multiple of {Pixels}");
        if (a.Length < mp * groups || r.Length < mp) throw new ArgumentException("the weight rows are not padded to the register tile");
        if (groups > 0 && u.Length < (long)(groups - 1) * groupStride + pixels) throw new ArgumentException($"the activations hold {u.Length} ints, too few for {groups} groups of {pixels} pixels");
        if (c.Length < (long)(mp - 1) * cStride + pixels) throw new ArgumentException($"the output holds {c.Length} ints, too few for {mp} rows of {pixels} pixels");
        if (vector && AvxVnni.IsSupported)
        {
            for (int p = 0; p < pixels; p += Pixels)
                for (int m = 0; m < mp; m += Rows)
                    Tile(ref Unsafe.Add(ref MemoryMarshal.GetReference(u), p), groupStride, groups, ref a[m * groups], ref r[m], ref Unsafe.Add(ref MemoryMarshal.GetReference(c), m * cStride + p), cStride);
            return;
        }
        // Reference: byte by byte, wrapping like vpdpbusd (u unsigned, a signed).
        var ub = MemoryMarshal.AsBytes(u);
        var ab = MemoryMarshal.Cast<int, sbyte>(a.AsSpan());
        for (int m = 0; m < mp; m++)
            for (int p = 0; p < pixels; p++)
            {
                int s = r[m];
                for (int g = 0; g < groups; g++)
                    for (int j = 0; j < 4; j++)
                        s = unchecked(s + ub[(g * groupStride + p) * 4 + j] * ab[(m * groups + g) * 4 + j]);
                c[m * cStride + p] = s;
            }
    }

    /// <summary>One 6 × 16 tile. No calls while the twelve accumulators are live, so the JIT keeps them in registers.</summary>
    private static void Tile(ref int u, int groupStride, int groups, ref int a, ref int r, ref int c, int cStride)
    {
        Vector256<int> c00 = Vector256.Create(r), c01 = c00;
        Vector256<int> c10 = Vector256.Create(Unsafe.Add(ref r, 1)), c11 = c10;
        Vector256<int> c20 = Vector256.Create(Unsafe.Add(ref r, 2)), c21 = c20;
        Vector256<int> c30 = Vector256.Create(Unsafe.Add(ref r, 3)), c31 = c30;
        Vector256<int> c40 = Vector256.Create(Unsafe.Add(ref r, 4)), c41 = c40;
        Vector256<int> c50 = Vector256.Create(Unsafe.Add(ref r, 5)), c51 = c50;
        ref int a1 = ref Unsafe.Add(ref a, groups);
        ref int a2 = ref Unsafe.Add(ref a1, groups);
        ref int a3 = ref Unsafe.Add(ref a2, groups);
        ref int a4 = ref Unsafe.Add(ref a3, groups);
        ref int a5 = ref Unsafe.Add(ref a4, groups);
        nuint at = 0;
        for (int g = 0; g < groups; g++, at += (nuint)groupStride)
        {
            var x0 = Vector256.LoadUnsafe(ref u, at).AsByte();
            var x1 = Vector256.LoadUnsafe(ref u, at + 8).AsByte();
            var w = Vector256.Create(Unsafe.Add(ref a, g)).AsSByte();
            c00 = AvxVnni.MultiplyWideningAndAdd(c00, x0, w);
            c01 = AvxVnni.MultiplyWideningAndAdd(c01, x1, w);
            w = Vector256.Create(Unsafe.Add(ref a1, g)).AsSByte();
            c10 = AvxVnni.MultiplyWideningAndAdd(c10, x0, w);
            c11 = AvxVnni.MultiplyWideningAndAdd(c11, x1, w);
            w = Vector256.Create(Unsafe.Add(ref a2, g)).AsSByte();
            c20 = AvxVnni.MultiplyWideningAndAdd(c20, x0, w);
            c21 = AvxVnni.MultiplyWideningAndAdd(c21, x1, w);
            w = Vector256.Create(Unsafe.Add(ref a3, g)).AsSByte();
            c30 = AvxVnni.MultiplyWideningAndAdd(c30, x0, w);
            c31 = AvxVnni.MultiplyWideningAndAdd(c31, x1, w);
            w = Vector256.Create(Unsafe.Add(ref a4, g)).AsSByte();
            c40 = AvxVnni.MultiplyWideningAndAdd(c40, x0, w);
            c41 = AvxVnni.MultiplyWideningAndAdd(c41, x1, w);
            w = Vector256.Create(Unsafe.Add(ref a5, g)).AsSByte();
            c50 = AvxVnni.MultiplyWideningAndAdd(c50, x0, w);
            c51 = AvxVnni.MultiplyWideningAndAdd(c51, x1, w);
        }
        nuint s = (nuint)cStride;
        c00.StoreUnsafe(ref c); c01.StoreUnsafe(ref c, 8);
        c10.StoreUnsafe(ref c, s); c11.StoreUnsafe(ref c, s + 8);
        c20.StoreUnsafe(ref c, 2 * s); c21.StoreUnsafe(ref c, 2 * s + 8);
        c30.StoreUnsafe(ref c, 3 * s); c31.StoreUnsafe(ref c, 3 * s + 8);
        c40.StoreUnsafe(ref c, 4 * s); c41.StoreUnsafe(ref c, 4 * s + 8);
        c50.StoreUnsafe(ref c, 5 * s); c51.StoreUnsafe(ref c, 5 * s + 8);
    }

    /// <summary>
    /// The int8 channel planes of one image as blocked offset activations: quad q (channels 4q..4q+3) of pixel p is the
    /// int at q·<paramref name="pitch"/> + p, its bytes x + 128 of the four channels in order (0x80 past the last
    /// channel, which meets zero weights). <paramref name="pitch"/> ≥ plane leaves slack the GEMM may read as padding
    /// pixels. Sixteen pixels at a time with byte and word interleaves; any tail byte by byte.
    /// </summary>
    public static void Block(Tensor x, int offset, int channels, int plane, int pitch, int[] dst, Action<int, Action<int>> forEach, bool vector = true)
    {
        int quads = (channels + 3) / 4;
        if (pitch < plane || dst.Length < (long)quads * pitch) throw new ArgumentException($"the blocked image needs {quads} × {pitch} ints");
        // A job: one quad over a run of pixels, so each reads four short runs and writes one contiguous stretch.
        const int Run = 4096;
        int runs = (plane + Run - 1) / Run;
        forEach(quads * runs, job =>
        {
            int q = job / runs, p0 = job % runs * Run;
            Interleave(x.ReadOnlySpan<sbyte>().Slice(offset, channels * plane), q, channels, plane, p0, Math.Min(Run, plane - p0),
                MemoryMarshal.AsBytes(dst.AsSpan(q * pitch + p0)), vector);
        });
    }

    /// <summary>Pixels [p0, p0 + count) of quad <paramref name="q"/> into <paramref name="d"/> (4 bytes a pixel).</summary>
    private static void Interleave(ReadOnlySpan<sbyte> src, int q, int channels, int plane, int p0, int count, Span<byte> d, bool vector)
    {
        int c0 = 4 * q;
        var s0 = Channel(src, c0, channels, plane, p0, count);
        var s1 = Channel(src, c0 + 1, channels, plane, p0, count);
        var s2 = Channel(src, c0 + 2, channels, plane, p0, count);
        var s3 = Channel(src, c0 + 3, channels, plane, p0, count);
        int p = 0;
        if (vector && Sse2.IsSupported)
        {
            var flip = Vector128.Create((byte)0x80);
            ref byte dr = ref MemoryMarshal.GetReference(d);
            for (; p + 16 <= count; p += 16)
            {
                // Missing channels read as 0, which the flip turns into 0x80.
                var v0 = Vector128.LoadUnsafe(ref MemoryMarshal.GetReference(s0), (nuint)p);
                var v1 = s1.IsEmpty ? Vector128<byte>.Zero : Vector128.LoadUnsafe(ref MemoryMarshal.GetReference(s1), (nuint)p);
                var v2 = s2.IsEmpty ? Vector128<byte>.Zero : Vector128.LoadUnsafe(ref MemoryMarshal.GetReference(s2), (nuint)p);
                var v3 = s3.IsEmpty ? Vector128<byte>.Zero : Vector128.LoadUnsafe(ref MemoryMarshal.GetReference(s3), (nuint)p);
                var lo01 = Sse2.UnpackLow(v0, v1).AsUInt16();   // pixels 0..7: c0 c1 pairs
                var hi01 = Sse2.UnpackHigh(v0, v1).AsUInt16();  // pixels 8..15
                var lo23 = Sse2.UnpackLow(v2, v3).AsUInt16();
                var hi23 = Sse2.UnpackHigh(v2, v3).AsUInt16();
                (Sse2.UnpackLow(lo01, lo23).AsByte() ^ flip).StoreUnsafe(ref dr, (nuint)(4 * p));
                (Sse2.UnpackHigh(lo01, lo23).AsByte() ^ flip).StoreUnsafe(ref dr, (nuint)(4 * p + 16));
                (Sse2.UnpackLow(hi01, hi23).AsByte() ^ flip).StoreUnsafe(ref dr, (nuint)(4 * p + 32));
                (Sse2.UnpackHigh(hi01, hi23).AsByte() ^ flip).StoreUnsafe(ref dr, (nuint)(4 * p + 48));
            }
        }
        for (; p < count; p++)
        {
            d[4 * p] = (byte)(s0[p] ^ 0x80);
            d[4 * p + 1] = (byte)((s1.IsEmpty ? 0 : s1[p]) ^ 0x80);
            d[4 * p + 2] = (byte)((s2.IsEmpty ? 0 : s2[p]) ^ 0x80);
            d[4 * p + 3] = (byte)((s3.IsEmpty ? 0 : s3[p]) ^ 0x80);
        }
    }

    /// <summary>Channel <paramref name="c"/>'s pixels [p0, p0 + count) as bytes; empty past the last channel.</summary>
    private static ReadOnlySpan<byte> Channel(ReadOnlySpan<sbyte> src, int c, int channels, int plane, int p0, int count) =>
        c < channels ? MemoryMarshal.AsBytes(src.Slice(c * plane + p0, count)) : default;
}
