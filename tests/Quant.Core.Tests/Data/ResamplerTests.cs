using Quant.Core.Config;
using Quant.Core.Data;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.CalibrationData;

/// <summary>
/// The resampler against real OpenCV: tests/data/opencv-resize holds a 64x48 crop of a real photo (colour and grey,
/// lossless PNG) and what <c>cv2.resize</c> (Debian's OpenCV 4.6.0) made of it at various sizes (make.py there).
/// </summary>
public class ResamplerTests
{
    public static TheoryData<string, int, int, string> Cases()
    {
        var data = new TheoryData<string, int, int, string>();
        foreach (var file in Directory.GetFiles(TestAssets.Data("opencv-resize"), "*.npy").Order(StringComparer.Ordinal))
        {
            // NAME_HxW_MODE.npy
            var parts = Path.GetFileNameWithoutExtension(file).Split('_');
            var size = parts[1].Split('x');
            data.Add(parts[0], int.Parse(size[0]), int.Parse(size[1]), parts[2]);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ResizeIsBitExactWithOpenCv(string source, int height, int width, string mode)
    {
        var color = source == "gray" ? ImageColor.Gray : ImageColor.Bgr;
        var pixels = ImageFiles.Decode(TestAssets.Data("opencv-resize", source == "gray" ? "src_gray.png" : "src.png"), "src", color, out var header);
        Assert.Equal((48, 64), (header.Height, header.Width));
        int channels = color == ImageColor.Gray ? 1 : 3;
        var actual = Resampler.Resize(pixels, 48, 64, channels, height, width, mode == "nearest" ? Interpolation.Nearest : Interpolation.Bilinear);

        var expected = Npy.Read(TestAssets.Data("opencv-resize", $"{source}_{height}x{width}_{mode}.npy"));
        Assert.Equal(channels == 1 ? [height, width] : new[] { height, width, 3 }, expected.Shape);
        var e = expected.ReadOnlySpan<byte>();
        int differing = 0, first = -1;
        for (int i = 0; i < e.Length; i++)
            if (e[i] != actual[i]) { differing++; if (first < 0) first = i; }
        if (differing > 0)
            Assert.Fail($"{differing} of {e.Length} values differ from cv2.resize; first at {first}: {actual[first]} vs OpenCV {e[first]}");
    }

    [Fact]
    public void TheSameSizeIsACopy()
    {
        var pixels = ImageFiles.Decode(TestAssets.Data("opencv-resize", "src.png"), "src", ImageColor.Bgr, out _);
        Assert.Equal(pixels, Resampler.Resize(pixels, 48, 64, 3, 48, 64, Interpolation.Bilinear));
    }
}
