using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.TestSupport;

namespace Quant.Core.Tests.Configuration;

/// <summary>The image keys of an inputs entry: color, resize, interpolation, crop, pad.</summary>
public sealed class ImageKeysLoaderTests : IDisposable
{
    private readonly string _dir = TestAssets.TempDir("image-keys");

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private ImagePreprocessing Load(string keys)
    {
        var path = Path.Combine(_dir, "q.yaml");
        File.WriteAllText(path, $"inputs:\n  x:\n    data: \"calib/*.jpg\"\n{keys}".ReplaceLineEndings("\n"));
        return QuantConfigLoader.Load(path).Inputs["x"].Image;
    }

    /// <summary>The keys (written from line 4, indented 4) fail with the code at (line, column).</summary>
    private void Fails(string keys, ErrorCode code, int line, int column, params string[] fragments)
        => PositionedError.Expect(() => Load(keys), code, line, column, fragments);

    [Fact]
    public void EveryKeyIsRead()
    {
        var ip = Load("""
                color: rgb
                resize: {height: 224, width: 320}
                interpolation: nearest
                crop: {height: 200, width: 300}
                pad: {height: 256, width: 320, value: 114}
            """);
        Assert.Equal(ImageColor.Rgb, ip.Color);
        Assert.Equal(new ImageResize(ResizeMode.Exact, 224, 320, 0), ip.Resize);
        Assert.Equal(Interpolation.Nearest, ip.Interpolation);
        Assert.Equal((200, 300), ip.Crop);
        Assert.Equal((256, 320, (byte)114), ip.Pad);
        Assert.True(ip.Any);
        Assert.Equal((4, 12), (ip.FirstKeyPosition.Line, ip.FirstKeyPosition.Column));
    }

    [Fact]
    public void DefaultsAndAspectRatioForms()
    {
        var longer = Load("    color: bgr\n    resize: {longer_side: 640}\n    pad: {height: 640, width: 640}\n");
        Assert.Equal(new ImageResize(ResizeMode.LongerSide, 0, 0, 640), longer.Resize);
        Assert.Equal(Interpolation.Bilinear, longer.Interpolation);
        Assert.Equal((640, 640, (byte)0), longer.Pad);
        Assert.Null(longer.Crop);
        Assert.Equal(new ImageResize(ResizeMode.ShorterSide, 0, 0, 256), Load("    color: gray\n    resize: {shorter_side: 256}\n").Resize);
        var none = Load("");
        Assert.False(none.Any);
        Assert.Null(none.Color);
    }

    [Fact]
    public void UnknownChoicesAreInvalidValuesWithASuggestion()
    {
        Fails("    color: bgra\n", ErrorCode.ConfigInvalidValue, 4, 12, "inputs.x.color", "'bgra' is not one of bgr, rgb, gray", "did you mean 'bgr'");
        Fails("    color: bgr\n    resize: {longer_side: 640}\n    interpolation: cubic\n", ErrorCode.ConfigInvalidValue, 6, 20,
            "inputs.x.interpolation", "not one of bilinear, nearest");
    }

    [Fact]
    public void WrongTypesAreReported()
    {
        Fails("    resize: 640\n", ErrorCode.ConfigWrongType, 4, 13, "inputs.x.resize: expected a mapping", "longer_side");
        Fails("    crop: [224, 224]\n", ErrorCode.ConfigWrongType, 4, 11, "inputs.x.crop: expected a mapping (height, width), got a list");
        Fails("    pad: {height: 640, width: wide}\n", ErrorCode.ConfigWrongType, 4, 31, "inputs.x.pad.width: expected an integer, got 'wide'");
        Fails("    color: [bgr]\n", ErrorCode.ConfigWrongType, 4, 12, "inputs.x.color");
    }

    [Fact]
    public void SizesMustBePositiveAndBounded()
    {
        Fails("    resize: {height: -1, width: 640}\n", ErrorCode.ConfigInvalidValue, 4, 22, "inputs.x.resize.height: -1 pixels", "1 to 8192");
        Fails("    crop: {height: 0, width: 10}\n", ErrorCode.ConfigInvalidValue, 4, 20, "inputs.x.crop.height: 0 pixels");
        Fails("    resize: {longer_side: 100000}\n", ErrorCode.ConfigInvalidValue, 4, 27, "100000 pixels is not a usable size");
        Fails("    pad: {height: 64, width: 64, value: 256}\n", ErrorCode.ConfigInvalidValue, 4, 41, "inputs.x.pad.value: 256", "0 to 255");
        Fails("    pad: {height: 64, width: 64, value: -1}\n", ErrorCode.ConfigInvalidValue, 4, 41, "inputs.x.pad.value: -1");
    }

    [Fact]
    public void ResizeTakesExactlyOneForm()
    {
        Fails("    resize: {height: 640}\n", ErrorCode.ConfigInvalidValue, 4, 13, "give {height: H, width: W}", "got {height}");
        Fails("    resize: {longer_side: 640, shorter_side: 256}\n", ErrorCode.ConfigInvalidValue, 4, 13, "got {longer_side, shorter_side}");
        Fails("    resize: {height: 64, width: 64, longer_side: 64}\n", ErrorCode.ConfigInvalidValue, 4, 13);
        Fails("    resize: {}\n", ErrorCode.ConfigInvalidValue, 4, 13, "got {}");
        Fails("    resize: {long_side: 640}\n", ErrorCode.ConfigUnknownKey, 4, 14, "unknown key 'long_side' in inputs.x.resize", "did you mean 'longer_side'");
    }

    [Fact]
    public void CropAndPadNeedBothSides()
    {
        Fails("    pad: {height: 640}\n", ErrorCode.ConfigInvalidValue, 4, 10, "inputs.x.pad: 'width' is required");
        Fails("    crop: {width: 224}\n", ErrorCode.ConfigInvalidValue, 4, 11, "inputs.x.crop: 'height' is required");
        Fails("    crop: {height: 224, width: 224, value: 3}\n", ErrorCode.ConfigUnknownKey, 4, 37, "unknown key 'value' in inputs.x.crop");
    }

    [Fact]
    public void InterpolationWithoutResizeIsRejected() =>
        Fails("    color: bgr\n    interpolation: nearest\n", ErrorCode.ConfigInvalidValue, 5, 20, "interpolation chooses how resize samples", "add resize or remove interpolation");
}
