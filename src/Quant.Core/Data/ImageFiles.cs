using System.Runtime.InteropServices;
using Quant.Core.Config;
using SkiaSharp;

namespace Quant.Core.Data;

/// <summary>The size of an image as it will be decoded (after its EXIF orientation), known from its header.</summary>
internal readonly record struct ImageHeader(int Height, int Width, SKEncodedImageFormat Format, SKEncodedOrigin Origin);

/// <summary>
/// Image files as calibration samples: JPEG, PNG, BMP and WebP, decoded by SkiaSharp (decoding only: every
/// resampling is ours, in <see cref="Resampler"/>). Decoding follows OpenCV's <c>cv2.imread(path, IMREAD_COLOR)</c>:
/// alpha is dropped (not blended), greyscale is copied to three channels, an embedded colour profile is ignored and
/// the EXIF orientation is applied. Problems are <see cref="InvalidDataException"/>s whose message names the file.
/// </summary>
internal static class ImageFiles
{
    /// <summary>The file extensions read as images (lower case).</summary>
    public static readonly string[] Extensions = [".jpg", ".jpeg", ".png", ".bmp", ".webp"];

    /// <summary>
    /// The largest image decoded, in pixels (width x height from the header, checked before any pixel is read):
    /// 50 megapixels covers 8K frames and 48-megapixel phone photos while bounding the decode buffer at 200 MB.
    /// </summary>
    public const long MaxPixels = 50_000_000;

    private static readonly SKEncodedImageFormat[] Supported =
        [SKEncodedImageFormat.Jpeg, SKEncodedImageFormat.Png, SKEncodedImageFormat.Bmp, SKEncodedImageFormat.Webp];

    public static bool IsImage(string path) => Extensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    /// <summary>The oriented size and format from the header; the pixels are not decoded.</summary>
    public static ImageHeader Peek(string path, string name)
    {
        using var codec = Open(path, name);
        return Header(codec, name);
    }

    /// <summary>
    /// Decodes to interleaved uint8 HWC with the channels of <paramref name="color"/> (3 for bgr/rgb, 1 for gray).
    /// Gray is OpenCV's <c>cvtColor(BGR2GRAY)</c> of the colour image: (4899 R + 9617 G + 1868 B + 8192) >> 14.
    /// </summary>
    public static byte[] Decode(string path, string name, ImageColor color, out ImageHeader header)
    {
        using var codec = Open(path, name);
        header = Header(codec, name);
        int w = codec.Info.Width, h = codec.Info.Height;
        // Unpremultiplied RGBA without a colour space: the stored colours, untouched by alpha or an ICC profile.
        var info = new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[(long)w * h * 4];
        var pin = GCHandle.Alloc(rgba, GCHandleType.Pinned);
        SKCodecResult result;
        try { result = codec.GetPixels(info, pin.AddrOfPinnedObject()); }
        finally { pin.Free(); }
        if (result == SKCodecResult.IncompleteInput)
            throw new InvalidDataException($"{name} is truncated: the {header.Format.ToString().ToUpperInvariant()} data ends before the last row");
        if (result != SKCodecResult.Success)
            throw new InvalidDataException($"{name} cannot be decoded as {header.Format.ToString().ToUpperInvariant()} ({result})");

        int channels = color == ImageColor.Gray ? 1 : 3;
        var pixels = new byte[(long)w * h * channels];
        for (long p = 0, n = (long)w * h; p < n; p++)
        {
            byte r = rgba[p * 4], g = rgba[p * 4 + 1], b = rgba[p * 4 + 2];
            switch (color)
            {
                case ImageColor.Bgr: pixels[p * 3] = b; pixels[p * 3 + 1] = g; pixels[p * 3 + 2] = r; break;
                case ImageColor.Rgb: pixels[p * 3] = r; pixels[p * 3 + 1] = g; pixels[p * 3 + 2] = b; break;
                default: pixels[p] = (byte)((r * 4899 + g * 9617 + b * 1868 + 8192) >> 14); break;
            }
        }
        return Orient(pixels, h, w, channels, header.Origin);
    }

    private static SKCodec Open(string path, string name)
    {
        // Read by .NET (missing files and permissions fail as IOExceptions naming the path, and non-ASCII paths work on
        // every OS) and handed to Skia as memory: through an SKManagedStream, a corrupt file made Skia call the stream's
        // read callback with a size it refuses, and an exception inside that native callback ends the process (found by
        // build/fuzz.sh). The codec owns the memory stream from here.
        var stream = new SKMemoryStream(File.ReadAllBytes(path));
        var codec = SKCodec.Create(stream, out var result);
        if (codec is null)
        {
            stream.Dispose();
            throw new InvalidDataException(result == SKCodecResult.IncompleteInput
                ? $"{name} is truncated before the end of its image header"
                : $"{name} is not a JPEG, PNG, BMP or WebP image (its contents are no image format the decoder knows)");
        }
        if (!Supported.Contains(codec.EncodedFormat))
        {
            var format = codec.EncodedFormat.ToString().ToUpperInvariant();
            codec.Dispose();
            throw new InvalidDataException($"{name} holds a {format} image; calibration images must be JPEG, PNG, BMP or WebP (convert it, e.g. to PNG)");
        }
        return codec;
    }

    private static ImageHeader Header(SKCodec codec, string name)
    {
        int w = codec.Info.Width, h = codec.Info.Height;
        if (w <= 0 || h <= 0 || (long)w * h > MaxPixels)
            throw new InvalidDataException(
                $"{name}: its header says {w}x{h} pixels, more than the {MaxPixels / 1_000_000} megapixels an image may have; scale it down before calibration");
        var origin = codec.EncodedOrigin;
        bool swap = SwapsSides(origin);
        return new ImageHeader(swap ? w : h, swap ? h : w, codec.EncodedFormat, origin);
    }

    /// <summary>The orientations that turn the stored image a quarter turn (or transpose it): width and height trade places.</summary>
    private static bool SwapsSides(SKEncodedOrigin origin) =>
        origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;

    /// <summary>Applies an EXIF orientation: the pixels as the image is meant to be viewed.</summary>
    private static byte[] Orient(byte[] src, int h, int w, int c, SKEncodedOrigin origin)
    {
        if (origin is SKEncodedOrigin.TopLeft or 0) return src;
        bool swap = SwapsSides(origin);
        int oh = swap ? w : h, ow = swap ? h : w;
        var dst = new byte[src.Length];
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
            {
                // (sy, sx): the stored pixel shown at (y, x).
                var (sy, sx) = origin switch
                {
                    SKEncodedOrigin.TopRight => (y, w - 1 - x),
                    SKEncodedOrigin.BottomRight => (h - 1 - y, w - 1 - x),
                    SKEncodedOrigin.BottomLeft => (h - 1 - y, x),
                    SKEncodedOrigin.LeftTop => (x, y),
                    SKEncodedOrigin.RightTop => (h - 1 - x, y),
                    SKEncodedOrigin.RightBottom => (h - 1 - x, w - 1 - y),
                    _ => (x, w - 1 - y), // LeftBottom
                };
                Buffer.BlockCopy(src, (sy * w + sx) * c, dst, (y * ow + x) * c, c);
            }
        return dst;
    }
}
