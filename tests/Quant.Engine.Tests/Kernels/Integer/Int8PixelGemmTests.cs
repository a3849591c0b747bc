using System.Runtime.InteropServices;
using Quant.Engine.Kernels.Integer;
using Quant.Onnx;

namespace Quant.Engine.Tests.Kernels.Integer;

/// <summary>
/// The pixels-in-lanes int8 GEMM of the dense QConv (<see cref="Int8PixelGemm"/>): the VNNI tiles equal the scalar
/// loop and an independent int64 sum of (u − 128)·w plus the row constant, on the shapes det and rec run; the blocked
/// input equals its byte-by-byte definition.
/// </summary>
public class Int8PixelGemmTests
{
    private static void AssertExact(Random rng, int rows, int groups, int pixels, int groupStride, int extreme)
    {
        int mp = Int8PixelGemm.PaddedRows(rows);
        var u = new int[(groups - 1) * groupStride + pixels];
        var ub = MemoryMarshal.AsBytes(u.AsSpan());
        if (extreme == 0) rng.NextBytes(ub); else ub.Fill(extreme > 0 ? (byte)255 : (byte)0);
        var a = new int[mp * groups];
        var ab = MemoryMarshal.Cast<int, sbyte>(a.AsSpan());
        for (int i = 0; i < rows * groups * 4; i++) ab[i] = extreme == 0 ? (sbyte)rng.Next(-128, 128) : sbyte.MinValue;
        var r = new int[mp];
        for (int m = 0; m < rows; m++) r[m] = rng.Next(-1 << 24, 1 << 24);
        int cStride = pixels + 5;
        var vector = new int[mp * cStride];
        var scalar = new int[mp * cStride];
        Int8PixelGemm.Run(u, groupStride, groups, pixels, a, r, rows, vector, cStride, vector: true);
        Int8PixelGemm.Run(u, groupStride, groups, pixels, a, r, rows, scalar, cStride, vector: false);
        for (int m = 0; m < rows; m++)
            for (int p = 0; p < pixels; p++)
            {
                long s = r[m];
                for (int g = 0; g < groups; g++)
                    for (int j = 0; j < 4; j++) s += ub[(g * groupStride + p) * 4 + j] * (long)ab[(m * groups + g) * 4 + j];
                Assert.True(unchecked((int)s) == scalar[m * cStride + p], $"rows {rows} groups {groups}: scalar differs at ({m}, {p})");
                Assert.True(scalar[m * cStride + p] == vector[m * cStride + p], $"rows {rows} groups {groups}: vector differs at ({m}, {p})");
            }
    }

    [Fact]
    public void Vector_tiles_equal_the_scalar_loop_and_the_exact_sum_on_det_and_rec_shapes()
    {
        var rng = new Random(9);
        // det: 3x3 over 96 channels to 24 (216 groups), 1x1 16 → 32 read in place (group stride = a plane plus slack),
        // the stem's 3 channels in one quad x 9 taps to 16, 1x1 96 → 18 (rows off the tile); rec: 1x1 480 → 120.
        AssertExact(rng, rows: 24, groups: 216, pixels: 48, groupStride: 48, extreme: 0);
        AssertExact(rng, rows: 32, groups: 4, pixels: 64, groupStride: 1616, extreme: 0);
        AssertExact(rng, rows: 16, groups: 9, pixels: 32, groupStride: 32, extreme: 0);
        AssertExact(rng, rows: 18, groups: 24, pixels: 16, groupStride: 400 + 16, extreme: 0);
        AssertExact(rng, rows: 120, groups: 120, pixels: 96, groupStride: 96, extreme: 0);
        // The largest products everywhere (255 · −128): the sums are still exact at this depth.
        AssertExact(rng, rows: 7, groups: 216, pixels: 32, groupStride: 32, extreme: 1);
        AssertExact(rng, rows: 7, groups: 216, pixels: 32, groupStride: 32, extreme: -1);
    }

    [Fact]
    public void Blocked_input_equals_the_offset_bytes_of_each_channel()
    {
        var rng = new Random(10);
        // Channel counts on and off the quad (3: det's stem, 42: det's neck, 96) and planes with a tail past 16 pixels.
        foreach (var (channels, plane) in new[] { (3, 6400 + 9), (42, 1600), (96, 400), (5, 4096 * 2 + 3) })
        {
            var values = new sbyte[channels * plane];
            rng.NextBytes(MemoryMarshal.AsBytes(values.AsSpan()));
            var x = Tensor.From(values, 1, channels, plane);
            int quads = (channels + 3) / 4, pitch = plane + 16;
            foreach (var vector in new[] { true, false })
            {
                var blocked = new int[quads * pitch];
                Int8PixelGemm.Block(x, 0, channels, plane, pitch, blocked, QGemmReference.Sequential, vector);
                var bytes = MemoryMarshal.AsBytes(blocked.AsSpan());
                for (int q = 0; q < quads; q++)
                    for (int p = 0; p < plane; p++)
                        for (int j = 0; j < 4; j++)
                        {
                            int c = 4 * q + j;
                            byte expected = c < channels ? (byte)(values[c * plane + p] + 128) : (byte)0x80;
                            Assert.True(expected == bytes[(q * pitch + p) * 4 + j], $"{channels} channels, vector={vector}: quad {q} pixel {p} byte {j}");
                        }
            }
        }
    }
}
