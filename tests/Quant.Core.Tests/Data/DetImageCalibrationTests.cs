using Quant.Core.Calibration;
using Quant.Core.Config;
using Quant.Core.Data;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Core.Tests.CalibrationData;

/// <summary>
/// Det calibration from the original photos (tests/data/ppocr-det/images: a palette PNG and three JPEGs) against
/// the founders' arrays made from the same files: decoded to BGR, longer side resized to 640 by a numpy bilinear
/// (half-pixel centres, float weights, rounded half to even) and zero-padded to 640x640. Our resize is OpenCV's
/// fixed-point INTER_LINEAR, which rounds some values a level differently from that float reference, so the
/// images reproduce the arrays within one level: max |diff| = 1, on at most 15% of the values.
/// </summary>
public sealed class DetImageCalibrationTests(ITestOutputHelper output) : IDisposable
{
    private static readonly string[] Images = ["000_imageTextN.png", "002_text_motion.jpg", "004_left.jpg", "005_scenetext01.jpg"];
    private readonly string _dir = TestAssets.TempDir("det-images");

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private string Folder => Path.GetRelativePath(_dir, TestAssets.Data("ppocr-det", "images")).Replace('\\', '/');

    private const string Normalize = "scale: 1/255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]";

    private QuantConfig Config(string data, string image = "")
    {
        var path = Path.Combine(_dir, $"q{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, $"inputs:\n  x: {{data: {data}, {Normalize}{image}}}\n");
        return QuantConfigLoader.Load(path);
    }

    private QuantConfig ImageConfig() => Config($"[\"{Folder}/*.png\", \"{Folder}/*.jpg\"]",
        ", color: bgr, resize: {longer_side: 640}, interpolation: bilinear, pad: {height: 640, width: 640, value: 0}");

    private QuantConfig NpyConfig() => Config($"\"{Folder}/*.npy\"");

    private static readonly Lazy<OnnxModel> Det = new(() => OnnxModelReader.Load(TestAssets.DetModel));

    [Fact]
    public void ImagesReproduceTheArraysWithinOneLevel()
    {
        var ip = ImageConfig().Inputs["x"].Image;
        foreach (var name in Images)
        {
            var image = ImagePipeline.Read(TestAssets.Data("ppocr-det", "images", name), name, ip);
            var stored = Npy.Read(TestAssets.Data("ppocr-det", "images", Path.ChangeExtension(name, ".npy")));
            Assert.Equal(stored.Shape, image.Shape);
            var a = image.ReadOnlySpan<byte>();
            var b = stored.ReadOnlySpan<byte>();
            int max = 0, differing = 0;
            for (int i = 0; i < a.Length; i++)
            {
                int d = Math.Abs(a[i] - b[i]);
                max = Math.Max(max, d);
                if (d > 0) differing++;
            }
            double share = (double)differing / a.Length;
            output.WriteLine($"{name}: max |diff| {max}, {differing} of {a.Length} values differ ({share:P2})");
            Assert.True(max <= 1, $"{name}: max |diff| {max} > 1");
            Assert.True(share <= 0.15, $"{name}: {share:P2} of the values differ (bound 15%)");
        }
    }

    [Fact]
    public void ImageAndArraySetsPlanTheSameSamples()
    {
        var model = Det.Value.Graph.RuntimeInputs;
        var images = CalibrationDataSet.Create(ImageConfig(), model);
        var arrays = CalibrationDataSet.Create(NpyConfig(), model);
        Assert.Equal(4, images.SampleCount);
        Assert.Equal(Images, Enumerable.Range(0, 4).Select(s => Path.GetFileName(images.SampleLabel(s))));
        Assert.Equal(Images.Select(i => Path.ChangeExtension(i, ".npy")), Enumerable.Range(0, 4).Select(s => Path.GetFileName(arrays.SampleLabel(s))));
        Assert.NotEqual(images.Fingerprint(), arrays.Fingerprint());
        // The float inputs differ by at most one level through scale, mean and std: 1/255/0.224 plus rounding.
        foreach (var (a, b) in images.Samples().Zip(arrays.Samples()))
        {
            Assert.Equal([1, 3, 640, 640], a["x"].Shape);
            Assert.True(TensorAssert.MaxAbsDiff(a["x"], b["x"]) <= 1 / 255.0 / 0.224 + 1e-5);
        }
    }

    /// <summary>
    /// Calibrating det on the images and on the arrays gives the same activation scales within the effect of
    /// one-level pixel differences: max and percentile (0.99995) scales of every observed float tensor agree
    /// within 2% (relative), and the model input's scale is identical (both span the same pixel range).
    /// </summary>
    [Fact]
    public void DetScalesFromImagesMatchScalesFromArrays()
    {
        var model = Det.Value;
        var session = new InferenceSession(model);
        CalibrationStatistics Collect(QuantConfig config)
        {
            var collector = new CalibrationCollector();
            foreach (var batch in CalibrationDataSet.Create(config, model.Graph.RuntimeInputs).Batches())
                session.Run(batch, new RunOptions { Observer = collector });
            return collector.ToStatistics("det");
        }
        var fromImages = Collect(ImageConfig());
        var fromArrays = Collect(NpyConfig());
        Assert.Equal(fromArrays.Tensors.Select(t => t.Name), fromImages.Tensors.Select(t => t.Name));

        foreach (var method in new[] { CalibrationMethod.Max, CalibrationMethod.Percentile })
        {
            var options = new ActivationOptions { Method = method };
            var worst = (Name: "", Relative: 0.0);
            var relative = new List<double>();
            foreach (var t in fromArrays.Tensors)
            {
                float a = ActivationScales.Derive(fromImages[t.Name], QType.Int8, options).Scales[0];
                float b = ActivationScales.Derive(t, QType.Int8, options).Scales[0];
                double r = Math.Abs(a - b) / Math.Max(b, ActivationScales.MinScale);
                relative.Add(r);
                if (r > worst.Relative) worst = (t.Name, r);
            }
            relative.Sort();
            output.WriteLine($"{method}: {relative.Count} tensors, relative scale difference median {relative[relative.Count / 2]:E2}, " +
                $"99th percentile {relative[(int)(relative.Count * 0.99)]:E2}, max {worst.Relative:E2} ({worst.Name}); identical: {relative.Count(r => r == 0)}");
            Assert.True(worst.Relative <= 0.02, $"{method}: scale of {worst.Name} differs by {worst.Relative:P2} between images and arrays");
            var input = model.Graph.RuntimeInputs.First().Name;
            Assert.Equal(ActivationScales.Derive(fromArrays[input], QType.Int8, options).Scales,
                ActivationScales.Derive(fromImages[input], QType.Int8, options).Scales);
        }
    }
}
