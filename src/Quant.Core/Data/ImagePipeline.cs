using Quant.Core.Config;
using Quant.Engine;

namespace Quant.Core.Data;

/// <summary>
/// An image file as a uint8 [1,C,H,W] sample, in this order: decode to <c>color</c> (HWC; C = 3, or 1 for gray),
/// resize, centre crop, pad right and bottom, HWC to CHW. The float steps (scale, channel_order, mean, std) follow
/// in <see cref="Preprocessor"/> as for any stored array.
/// </summary>
internal static class ImagePipeline
{
    /// <summary>
    /// The image settings for the data fingerprint, with the decoder's version (a new decoder may decode JPEGs a
    /// level differently) and the resampler's revision (bump it when its arithmetic changes).
    /// </summary>
    public static string Describe(ImagePreprocessing ip)
    {
        var resize = ip.Resize is not { } r ? "none" : r.Mode == ResizeMode.Exact ? $"{r.Height}x{r.Width}" : $"{r.Mode}:{r.Side}";
        var crop = ip.Crop is { } c ? $"{c.Height}x{c.Width}" : "none";
        var pad = ip.Pad is { } p ? $"{p.Height}x{p.Width}:{p.Value}" : "none";
        var decoder = typeof(SkiaSharp.SKCodec).Assembly.GetName().Version;
        return $"image color={ip.Color} resize={resize} interpolation={ip.Interpolation} crop={crop} pad={pad} decoder=SkiaSharp/{decoder} resampler=opencv-4.x/1";
    }

    public static int Channels(ImagePreprocessing ip) => ip.Color == ImageColor.Gray ? 1 : 3;

    /// <summary>
    /// The sample's NCHW shape from the header size alone, so samples are planned and checked without decoding.
    /// A crop or pad that does not fit, or a resize beyond the pixel limit, is a <see cref="SampleSizeException"/>.
    /// </summary>
    public static int[] Shape(ImagePreprocessing ip, ImageHeader header, string name)
    {
        var (h, w) = Resized(ip, header.Height, header.Width, name);
        (h, w) = Cropped(ip, h, w, name);
        (h, w) = Padded(ip, h, w, name);
        return [1, Channels(ip), h, w];
    }

    /// <summary>Decodes and transforms the image; the result is a uint8 tensor of <see cref="Shape"/>.</summary>
    public static Tensor Read(string path, string name, ImagePreprocessing ip)
    {
        var pixels = ImageFiles.Decode(path, name, ip.Color!.Value, out var header);
        int c = Channels(ip), h = header.Height, w = header.Width;

        var (rh, rw) = Resized(ip, h, w, name);
        pixels = Resampler.Resize(pixels, h, w, c, rh, rw, ip.Interpolation);
        (h, w) = (rh, rw);

        var (ch, cw) = Cropped(ip, h, w, name);
        if ((ch, cw) != (h, w))
        {
            int top = (h - ch) / 2, left = (w - cw) / 2;
            var cropped = new byte[ch * cw * c];
            for (int y = 0; y < ch; y++)
                Array.Copy(pixels, ((top + y) * w + left) * c, cropped, y * cw * c, cw * c);
            (pixels, h, w) = (cropped, ch, cw);
        }

        var (ph, pw) = Padded(ip, h, w, name);
        byte fill = ip.Pad?.Value ?? 0;
        var chw = new byte[c * ph * pw];
        if (fill != 0) chw.AsSpan().Fill(fill);
        for (int k = 0; k < c; k++)
            for (int y = 0; y < h; y++)
            {
                var dst = chw.AsSpan((k * ph + y) * pw, w);
                for (int x = 0; x < w; x++) dst[x] = pixels[(y * w + x) * c + k];
            }
        return Tensor.From(chw, 1, c, ph, pw);
    }

    /// <summary>
    /// The size after resize. Keeping the aspect ratio, the chosen side becomes N and the other
    /// round(other * N / chosen) (halves to even, as Python's round), at least 1.
    /// </summary>
    private static (int H, int W) Resized(ImagePreprocessing ip, int h, int w, string name)
    {
        if (ip.Resize is not { } r) return (h, w);
        (int, int) size;
        if (r.Mode == ResizeMode.Exact) size = (r.Height, r.Width);
        else
        {
            bool byHeight = r.Mode == ResizeMode.LongerSide ? h >= w : h <= w;
            int Other(int other, int chosen) => (int)Math.Max(1, Math.Round((double)other * r.Side / chosen, MidpointRounding.ToEven));
            size = byHeight ? (r.Side, Other(w, h)) : (Other(h, w), r.Side);
        }
        var (rh, rw) = size;
        if ((long)rh * rw > ImageFiles.MaxPixels)
            throw new SampleSizeException(
                $"{name} is {h}x{w}; resizing it to {rh}x{rw} exceeds the {ImageFiles.MaxPixels / 1_000_000}-megapixel limit (a very long, thin image?)");
        return size;
    }

    private static (int H, int W) Cropped(ImagePreprocessing ip, int h, int w, string name)
    {
        if (ip.Crop is not { } c) return (h, w);
        if (c.Height > h || c.Width > w)
            throw new SampleSizeException(
                $"{name} is {h}x{w} (height x width) {(ip.Resize is null ? "as decoded" : "after resize")}, smaller than the crop {c.Height}x{c.Width}; resize it to at least the crop size first");
        return (c.Height, c.Width);
    }

    private static (int H, int W) Padded(ImagePreprocessing ip, int h, int w, string name)
    {
        if (ip.Pad is not { } p) return (h, w);
        if (h > p.Height || w > p.Width)
            throw new SampleSizeException(
                $"{name} is {h}x{w} (height x width) before padding, larger than the pad size {p.Height}x{p.Width}; resize (e.g. longer_side: {Math.Min(p.Height, p.Width)}) or crop it to fit");
        return (p.Height, p.Width);
    }
}
