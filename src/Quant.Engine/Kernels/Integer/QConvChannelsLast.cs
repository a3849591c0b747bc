using System.Runtime.InteropServices;
using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// The int8 activations of one image (or one group) as channels-last offset bytes u = x + 128, the form
/// <see cref="Int8Gemm.RunOffset"/> reads (spec §5.1): pixel p's channels at [p·pitch, p·pitch + channels), the
/// pitch a multiple of 4. Written once per node, so the offset and the transpose cost one pass over the input.
/// </summary>
internal static class QConvChannelsLast
{
    /// <summary>Pixels per job: each job reads <c>channels</c> short runs and writes one contiguous stretch.</summary>
    private const int PixelBlock = 256;

    /// <summary>Fills <paramref name="dst"/>[0, plane·pitch) from the channel planes of <paramref name="x"/> starting at
    /// element <paramref name="offset"/>. The padding channels (meeting zero weights) get 0x80, so every byte is defined.</summary>
    public static void Write(Tensor x, int offset, int channels, int plane, int pitch, byte[] dst, Action<int, Action<int>> forEach)
    {
        forEach((plane + PixelBlock - 1) / PixelBlock, blk =>
        {
            var src = x.ReadOnlySpan<sbyte>().Slice(offset, channels * plane);
            int p0 = blk * PixelBlock, count = Math.Min(PixelBlock, plane - p0);
            var d = dst.AsSpan(p0 * pitch, count * pitch);
            int ch = 0;
            // Four channels at a time: one 32-bit store per pixel instead of four byte stores.
            for (; ch + 4 <= channels; ch += 4)
            {
                var s0 = MemoryMarshal.AsBytes(src.Slice(ch * plane + p0, count));
                var s1 = MemoryMarshal.AsBytes(src.Slice((ch + 1) * plane + p0, count));
                var s2 = MemoryMarshal.AsBytes(src.Slice((ch + 2) * plane + p0, count));
                var s3 = MemoryMarshal.AsBytes(src.Slice((ch + 3) * plane + p0, count));
                for (int p = 0; p < count; p++)
                {
                    uint v = (s0[p] | (uint)s1[p] << 8 | (uint)s2[p] << 16 | (uint)s3[p] << 24) ^ 0x80808080u;
                    MemoryMarshal.Write(d.Slice(p * pitch + ch, 4), in v);
                }
            }
            for (; ch < channels; ch++)
            {
                var s = MemoryMarshal.AsBytes(src.Slice(ch * plane + p0, count));
                for (int p = 0; p < count; p++) d[p * pitch + ch] = (byte)(s[p] ^ 0x80);
            }
            for (ch = channels; ch < pitch; ch++)
                for (int p = 0; p < count; p++) d[p * pitch + ch] = 0x80;
        });
    }
}
