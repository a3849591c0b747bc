using Quant.Core.Config;
using Quant.Core.Data;
using Quant.Core.Diagnostics;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.CalibrationData;

/// <summary>
/// Decoding against OpenCV, and broken image files through the user's path (a config and a data set): every
/// one is a single positioned QB2xxx error naming the file. Fixtures: tests/data/images (make.py there), a crop
/// of a real photo in every supported format, and what <c>cv2.imread</c> made of each (cv2_*.npy).
/// </summary>
public sealed class ImageFilesTests : IDisposable
{
    private readonly string _dir = TestAssets.TempDir("image-files");

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static string Fixture(string name) => TestAssets.Data("images", name);

    private static readonly Lazy<ValueInfo[]> DetInputs = new(() => OnnxModelReader.Load(TestAssets.DetModel).Graph.RuntimeInputs.ToArray());
    private static readonly Lazy<ValueInfo[]> ClsInputs = new(() => OnnxModelReader.Load(TestAssets.ClsModel).Graph.RuntimeInputs.ToArray());
    private static readonly Lazy<ValueInfo[]> RecInputs = new(() => OnnxModelReader.Load(TestAssets.RecModel).Graph.RuntimeInputs.ToArray());

    [Theory]
    [InlineData("photo.png")]
    [InlineData("photo.bmp")]
    [InlineData("photo.webp")]
    [InlineData("photo.jpg")]
    [InlineData("photo_gray.png")]
    [InlineData("photo_rgba.png")]
    [InlineData("photo_palette.png")]
    [InlineData("oriented_6.jpg")]
    [InlineData("jpeg_inside.png")]
    public void DecodesAsOpenCvImreadColor(string file)
    {
        var pixels = ImageFiles.Decode(Fixture(file), file, ImageColor.Bgr, out var header);
        var expected = Npy.Read(Fixture("cv2_" + file.Replace('.', '_') + ".npy"));
        Assert.Equal(expected.Shape, new[] { header.Height, header.Width, 3 });
        Assert.Equal(expected.ReadOnlySpan<byte>().ToArray(), pixels);
    }

    [Fact]
    public void GrayIsOpenCvsBgrToGrayAndRgbIsReversedBgr()
    {
        var gray = ImageFiles.Decode(Fixture("photo.jpg"), "photo.jpg", ImageColor.Gray, out var header);
        Assert.Equal((16, 24), (header.Height, header.Width));
        Assert.Equal(Npy.Read(Fixture("cv2_photo_jpg_gray.npy")).ReadOnlySpan<byte>().ToArray(), gray);

        var bgr = ImageFiles.Decode(Fixture("photo.png"), "photo.png", ImageColor.Bgr, out _);
        var rgb = ImageFiles.Decode(Fixture("photo.png"), "photo.png", ImageColor.Rgb, out _);
        for (int p = 0; p < bgr.Length; p += 3) Assert.Equal([bgr[p + 2], bgr[p + 1], bgr[p]], rgb[p..(p + 3)]);
    }

    [Fact]
    public void TheExifOrientationIsKnownFromTheHeader()
    {
        // The same JPEG pixels with orientation 6 are viewed rotated: 24 high, 16 wide (cv2 agrees, above).
        var header = ImageFiles.Peek(Fixture("oriented_6.jpg"), "oriented_6.jpg");
        Assert.Equal((24, 16), (header.Height, header.Width));
        var upright = ImageFiles.Decode(Fixture("photo.jpg"), "photo.jpg", ImageColor.Bgr, out _);
        var rotated = ImageFiles.Decode(Fixture("oriented_6.jpg"), "oriented_6.jpg", ImageColor.Bgr, out _);
        // Rotating 90 degrees clockwise: viewed (y, x) is stored (15 - x, y).
        for (int y = 0; y < 24; y++)
            for (int x = 0; x < 16; x++)
                for (int k = 0; k < 3; k++)
                    Assert.Equal(upright[((15 - x) * 24 + y) * 3 + k], rotated[(y * 16 + x) * 3 + k]);
    }

    // ---- through a config and a data set ----

    /// <summary>A config whose data are exactly <paramref name="files"/> (fixtures copied into the config folder).</summary>
    private QuantConfig Config(string files, string keys = "color: bgr", string extra = "")
    {
        foreach (var old in Directory.GetFiles(_dir)) File.Delete(old);
        foreach (var f in files.Split(','))
            File.Copy(Fixture(f), Path.Combine(_dir, f), overwrite: true);
        var path = Path.Combine(_dir, "q.yaml");
        File.WriteAllText(path, $"inputs:\n  x:\n    data: \"*.*g\"\n    {keys}\n{extra}");
        return QuantConfigLoader.Load(path);
    }

    private static QuantException Fails(Action a, ErrorCode code, int line, int column, params string[] fragments)
        => PositionedError.Expect(a, code, line, column, fragments);

    [Theory]
    [InlineData("truncated.jpg", "'truncated.jpg' is truncated")]
    [InlineData("truncated.png", "'truncated.png' is truncated")]
    public void TruncatedImagesFailWhenRead(string file, string message)
    {
        // The header is intact, so planning succeeds; decoding reports the file.
        var set = CalibrationDataSet.Create(Config(file), DetInputs.Value);
        Fails(() => set.Batches().ToList(), ErrorCode.DataUnreadable, 3, 11, message);
    }

    [Theory]
    [InlineData("not_an_image.jpg", "'not_an_image.jpg' is not a JPEG, PNG, BMP or WebP image")]
    [InlineData("gif_inside.png", "'gif_inside.png' holds a GIF image; calibration images must be JPEG, PNG, BMP or WebP")]
    [InlineData("huge_header.png", "'huge_header.png': its header says 100000x100000 pixels, more than the 50 megapixels")]
    public void UnusableImagesFailWhenPlanned(string file, string message)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        Fails(() => CalibrationDataSet.Create(Config(file), DetInputs.Value), ErrorCode.DataUnreadable, 3, 11, message);
        // Rejected from the header: nothing near the claimed size (30 GB for the huge one) was allocated.
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, 16 << 20);
    }

    [Theory]
    [InlineData("tiny.gif")]
    [InlineData("tiny.tiff")]
    public void UnsupportedFormatsAreRejectedByName(string file)
    {
        File.Copy(Fixture(file), Path.Combine(_dir, file));
        var path = Path.Combine(_dir, "q.yaml");
        File.WriteAllText(path, "inputs:\n  x: {data: \"tiny.*\", color: bgr}\n");
        Fails(() => CalibrationDataSet.Create(QuantConfigLoader.Load(path), DetInputs.Value), ErrorCode.DataUnreadable, 2, 13,
            $"matches '{file}', which is not .npy, .npz, .bin or an image (.jpg, .jpeg, .png, .bmp, .webp)");
    }

    [Fact]
    public void AJpegNamedPngIsDecodedByContent()
    {
        var set = CalibrationDataSet.Create(Config("jpeg_inside.png", "color: bgr"), DetInputs.Value);
        var x = Assert.Single(set.Batches())["x"];
        Assert.Equal([1, 3, 16, 24], x.Shape);
        var hwc = Npy.Read(Fixture("cv2_photo_jpg.npy")).ReadOnlySpan<byte>();
        Assert.Equal(hwc[(5 * 24 + 7) * 3 + 2], x.ReadOnlySpan<float>()[(2 * 16 + 5) * 24 + 7]);
    }

    [Fact]
    public void ImagesBecomeNchwAfterResizeCropAndPad()
    {
        // photo.png (16x24) -> resize exact 20x30 -> centre crop 15x25 -> pad to 18x28 with 7, as uint8 then float.
        var config = Config("photo.png", "color: rgb\n    resize: {height: 20, width: 30}\n    crop: {height: 15, width: 25}\n    pad: {height: 18, width: 28, value: 7}");
        var x = Assert.Single(CalibrationDataSet.Create(config, DetInputs.Value).Batches())["x"];
        Assert.Equal([1, 3, 18, 28], x.Shape);
        var bgr = ImageFiles.Decode(Fixture("photo.png"), "photo.png", ImageColor.Bgr, out _);
        var resized = Resampler.Resize(bgr, 16, 24, 3, 20, 30, Interpolation.Bilinear);
        var v = x.ReadOnlySpan<float>();
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 18; y++)
                for (int xx = 0; xx < 28; xx++)
                {
                    // Crop offsets: (20 - 15) / 2 = 2 rows, (30 - 25) / 2 = 2 columns; rgb reverses bgr.
                    float expected = y < 15 && xx < 25 ? resized[((y + 2) * 30 + xx + 2) * 3 + (2 - c)] : 7;
                    Assert.Equal(expected, v[(c * 18 + y) * 28 + xx]);
                }
    }

    [Fact]
    public void CalibrationDataGivenOutsideTheConfigKeepsTheImageKeys()
    {
        // The MSBuild item's CalibrationData / --calibration-data replace the globs, not the preprocessing.
        var config = Config("photo.png", "color: bgr\n    pad: {height: 20, width: 30, value: 9}");
        CalibrationDataOverride.Apply(config, ["photo.png"], DetInputs.Value, "--calibration-data");
        var x = Assert.Single(CalibrationDataSet.Create(config, DetInputs.Value).Batches())["x"];
        Assert.Equal([1, 3, 20, 30], x.Shape);
        Assert.Equal(9f, x.ReadOnlySpan<float>()[^1]);
    }

    [Fact]
    public void GrayImagesHaveOneChannel()
    {
        var path = Path.Combine(_dir, "q.yaml");
        File.Copy(Fixture("photo.jpg"), Path.Combine(_dir, "photo.jpg"));
        File.WriteAllText(path, "inputs:\n  x: {data: \"*.jpg\", color: gray, resize: {longer_side: 48}}\n");
        var set = CalibrationDataSet.Create(QuantConfigLoader.Load(path), [new ValueInfo("x", ElementType.Float, [Dim.Named("n"), Dim.Known(1), Dim.Named("h"), Dim.Named("w")])]);
        var x = Assert.Single(set.Batches())["x"];
        Assert.Equal([1, 1, 32, 48], x.Shape);
    }

    [Fact]
    public void ImageKeysNeedImagesAndImagesNeedColor()
    {
        var npy = Path.Combine(_dir, "a.npy");
        Npy.Write(npy, Tensor.Zeros(ElementType.UInt8, [1, 3, 48, 192]));
        var path = Path.Combine(_dir, "q.yaml");
        File.WriteAllText(path, "inputs:\n  x:\n    data: \"*.npy\"\n    scale: 1/255\n    resize: {height: 48, width: 192}\n    color: bgr\n");
        Fails(() => CalibrationDataSet.Create(QuantConfigLoader.Load(path), ClsInputs.Value), ErrorCode.ConfigInvalidValue, 5, 13,
            "color, resize, interpolation, crop and pad apply to image files", "matches the array file 'a.npy'");

        Fails(() => CalibrationDataSet.Create(Config("photo.png", "scale: 1/255"), DetInputs.Value), ErrorCode.ConfigInvalidValue, 3, 11,
            "matches the image 'photo.png': give inputs.x.color (bgr, rgb or gray)");
        Fails(() => CalibrationDataSet.Create(Config("photo.png", "color: bgr\n    layout: NHWC"), DetInputs.Value), ErrorCode.ConfigInvalidValue, 5, 13,
            "inputs.x.layout describes stored arrays");
        Fails(() => CalibrationDataSet.Create(Config("photo.png", "color: bgr\n    shape: [16, 24, 3]"), DetInputs.Value), ErrorCode.ConfigInvalidValue, 5, 12,
            "inputs.x.shape describes raw .bin files");
        Fails(() => CalibrationDataSet.Create(Config("photo.png", "color: bgr\n    dtype: float32"), DetInputs.Value), ErrorCode.DataTypeMismatch, 3, 11,
            "'photo.png' stores uint8 but inputs.x.dtype says float32");
    }

    [Fact]
    public void SizesThatDoNotFitAreShapeErrors()
    {
        Fails(() => CalibrationDataSet.Create(Config("photo.png", "color: bgr\n    crop: {height: 20, width: 20}"), DetInputs.Value), ErrorCode.DataShapeMismatch, 3, 11,
            "'photo.png' is 16x24 (height x width) as decoded, smaller than the crop 20x20");
        Fails(() => CalibrationDataSet.Create(Config("photo.png", "color: bgr\n    pad: {height: 16, width: 16}"), DetInputs.Value), ErrorCode.DataShapeMismatch, 3, 11,
            "'photo.png' is 16x24 (height x width) before padding, larger than the pad size 16x16");
        Fails(() => CalibrationDataSet.Create(Config("thin_header.png", "color: bgr\n    resize: {shorter_side: 4096}"), DetInputs.Value), ErrorCode.DataShapeMismatch, 3, 11,
            "'thin_header.png' is 1x20000; resizing it to 4096x81920000 exceeds the 50-megapixel limit");
        // rec takes [?,3,48,?]: an image resized to another height names the file and both shapes.
        Fails(() => CalibrationDataSet.Create(Config("photo.png", "color: bgr\n    resize: {height: 40, width: 192}"), RecInputs.Value), ErrorCode.DataShapeMismatch, 3, 11,
            "'photo.png' holds uint8 [1,3,40,192]", "dim 2 is 40, expected 48");
    }

    [Fact]
    public void TheFingerprintCoversTheImageKeys()
    {
        string Print(string keys) => CalibrationDataSet.Create(Config("photo.png", keys), DetInputs.Value).Fingerprint();
        var baseline = Print("color: bgr\n    resize: {longer_side: 32}");
        Assert.Equal(baseline, Print("color: bgr\n    resize: {longer_side: 32}"));
        Assert.NotEqual(baseline, Print("color: rgb\n    resize: {longer_side: 32}"));
        Assert.NotEqual(baseline, Print("color: bgr\n    resize: {longer_side: 36}"));
        Assert.NotEqual(baseline, Print("color: bgr\n    resize: {shorter_side: 32}"));
        Assert.NotEqual(baseline, Print("color: bgr\n    resize: {longer_side: 32}\n    interpolation: nearest"));
        Assert.NotEqual(baseline, Print("color: bgr\n    resize: {longer_side: 32}\n    pad: {height: 32, width: 32}"));
        Assert.NotEqual(baseline, Print("color: bgr\n    resize: {longer_side: 32}\n    pad: {height: 32, width: 32, value: 1}"));
        Assert.NotEqual(baseline, Print("color: bgr\n    resize: {longer_side: 32}\n    crop: {height: 20, width: 20}"));
    }
}
