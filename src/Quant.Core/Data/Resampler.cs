using Quant.Core.Config;

namespace Quant.Core.Data;

/// <summary>
/// Resizes interleaved uint8 images (HWC) with the arithmetic of OpenCV's <c>cv::resize</c> (4.x, x86 build), so
/// calibration images come out as they do in a Python pipeline that uses <c>cv2.resize</c>:
/// <list type="bullet">
/// <item><b>bilinear</b> (<c>INTER_LINEAR</c>): half-pixel centres, no antialiasing, edge pixels repeated. Weights are
/// float32 fractions rounded to 11-bit integers; the horizontal pass is exact in integers; the vertical pass drops
/// 4 bits, keeps the high 16 bits of each product and rounds off 2 more bits, as OpenCV's uint8 path does in its
/// SIMD loop and its scalar tail alike. An exact 2x reduction on both axes is a rounded 2x2 mean instead, as OpenCV
/// switches to <c>INTER_AREA</c> there.</item>
/// <item><b>nearest</b> (<c>INTER_NEAREST</c>): source index <c>floor(dst * src_size / dst_size)</c> (OpenCV's
/// nearest does not use half-pixel centres).</item>
/// </list>
/// </summary>
internal static class Resampler
{
    private const int CoefBits = 11;
    private const int CoefScale = 1 << CoefBits;

    public static byte[] Resize(byte[] src, int height, int width, int channels, int dstHeight, int dstWidth, Interpolation mode)
    {
        if (dstHeight == height && dstWidth == width) return src;
        if (mode == Interpolation.Nearest) return Nearest(src, height, width, channels, dstHeight, dstWidth);
        // The scale is computed as OpenCV does (1 / (dst / src)), which can differ from src / dst in the last bit.
        double scaleX = 1.0 / ((double)dstWidth / width), scaleY = 1.0 / ((double)dstHeight / height);
        if (IsTwo(scaleX) && IsTwo(scaleY)) return HalveByAveraging(src, width, channels, dstHeight, dstWidth);
        return Bilinear(src, height, width, channels, dstHeight, dstWidth, scaleX, scaleY);
    }

    /// <summary>C's DBL_EPSILON, OpenCV's tolerance for "the scale is an integer".</summary>
    private const double DblEpsilon = 2.220446049250313e-16;

    private static bool IsTwo(double scale) => Math.Abs(scale - 2.0) < DblEpsilon;

    private static byte[] Nearest(byte[] src, int height, int width, int channels, int dstHeight, int dstWidth)
    {
        double fx = 1.0 / ((double)dstWidth / width), fy = 1.0 / ((double)dstHeight / height);
        var xs = new int[dstWidth];
        for (int x = 0; x < dstWidth; x++) xs[x] = Math.Min((int)Math.Floor(x * fx), width - 1) * channels;
        var dst = new byte[dstHeight * dstWidth * channels];
        for (int y = 0; y < dstHeight; y++)
        {
            int row = Math.Min((int)Math.Floor(y * fy), height - 1) * width * channels;
            var d = dst.AsSpan(y * dstWidth * channels, dstWidth * channels);
            for (int x = 0; x < dstWidth; x++)
                for (int k = 0; k < channels; k++) d[x * channels + k] = src[row + xs[x] + k];
        }
        return dst;
    }

    /// <summary>Each output is the rounded mean of a 2x2 block: (a + b + c + d + 2) >> 2.</summary>
    private static byte[] HalveByAveraging(byte[] src, int width, int channels, int dstHeight, int dstWidth)
    {
        var dst = new byte[dstHeight * dstWidth * channels];
        int stride = width * channels;
        for (int y = 0; y < dstHeight; y++)
        {
            int r0 = 2 * y * stride, r1 = r0 + stride;
            for (int x = 0; x < dstWidth; x++)
                for (int k = 0; k < channels; k++)
                {
                    int s = 2 * x * channels + k;
                    dst[(y * dstWidth + x) * channels + k] =
                        (byte)((src[r0 + s] + src[r0 + s + channels] + src[r1 + s] + src[r1 + s + channels] + 2) >> 2);
                }
        }
        return dst;
    }

    /// <summary>A source position and its two 11-bit weights for one output coordinate.</summary>
    private readonly record struct Tap(int Index, short W0, short W1);

    /// <summary>
    /// The source index and weights of output coordinate <paramref name="d"/>: the position is computed in double and
    /// rounded to float, its floor is the index, the float fraction f gives weights round((1-f)*2048) and
    /// round(f*2048) (halves to even). <paramref name="clampWeights"/>: outside the source the weights become (1, 0)
    /// (OpenCV does this horizontally; vertically it keeps the weights and repeats the edge row).
    /// </summary>
    private static Tap Position(int d, double scale, int size, bool clampWeights)
    {
        float f = (float)((d + 0.5) * scale - 0.5);
        int s = (int)MathF.Floor(f);
        f -= s;
        if (clampWeights)
        {
            if (s < 0) { f = 0; s = 0; }
            if (s >= size - 1) { f = 0; s = size - 1; }
        }
        return new Tap(s, Weight(1f - f), Weight(f));
    }

    private static short Weight(float w) => (short)Math.Clamp((int)MathF.Round(w * CoefScale, MidpointRounding.ToEven), short.MinValue, short.MaxValue);

    private static byte[] Bilinear(byte[] src, int height, int width, int channels, int dstHeight, int dstWidth, double scaleX, double scaleY)
    {
        var xTaps = new Tap[dstWidth];
        for (int x = 0; x < dstWidth; x++) xTaps[x] = Position(x, scaleX, width, clampWeights: true);

        int rowLength = dstWidth * channels;
        // Horizontal pass results (value * 2048) of the source rows the current output row reads; rows only move
        // downwards, so two cached rows suffice.
        var cache = new Dictionary<int, int[]>(2);
        int[] Horizontal(int sourceRow, int keep)
        {
            if (cache.TryGetValue(sourceRow, out var cached)) return cached;
            var values = new int[rowLength];
            foreach (var old in cache.Keys.Where(k => k != keep).ToList())
            {
                values = cache[old];
                cache.Remove(old);
            }
            cache[sourceRow] = values;
            var s = src.AsSpan(sourceRow * width * channels, width * channels);
            for (int x = 0; x < dstWidth; x++)
            {
                var t = xTaps[x];
                int i0 = t.Index * channels;
                bool second = t.Index + 1 < width;
                for (int k = 0; k < channels; k++)
                    values[x * channels + k] = s[i0 + k] * t.W0 + (second ? s[i0 + channels + k] * t.W1 : 0);
            }
            return values;
        }

        var dst = new byte[dstHeight * rowLength];
        for (int y = 0; y < dstHeight; y++)
        {
            var t = Position(y, scaleY, height, clampWeights: false);
            int r0 = Math.Clamp(t.Index, 0, height - 1), r1 = Math.Clamp(t.Index + 1, 0, height - 1);
            var s0 = Horizontal(r0, keep: r1);
            var s1 = Horizontal(r1, keep: r0);
            var d = dst.AsSpan(y * rowLength, rowLength);
            int b0 = t.W0, b1 = t.W1;
            for (int x = 0; x < rowLength; x++)
            {
                // Not (s0*b0 + s1*b1) rounded once: OpenCV keeps 16-bit intermediates, which rounds a level
                // differently on some pixels (measured against cv2.resize, tests/data/opencv-resize).
                int v = (((s0[x] >> 4) * b0) >> 16) + (((s1[x] >> 4) * b1) >> 16);
                d[x] = Saturate((v + 2) >> 2);
            }
        }
        return dst;
    }

    private static byte Saturate(int v) => (byte)Math.Clamp(v, 0, 255);
}
