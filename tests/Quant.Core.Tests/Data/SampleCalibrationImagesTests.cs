using Quant.Core.Config;
using Quant.Core.Data;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.CalibrationData;

/// <summary>
/// The sample project calibrates from PNG text lines (samples/ppocr-cls/calib): lossless copies of the valid region
/// of the founders' cls arrays. Through the sample's own yaml they must give exactly the arrays' model inputs.
/// </summary>
public class SampleCalibrationImagesTests
{
    [Fact]
    public void TheSampleImagesAreTheClsArraysExactly()
    {
        var config = QuantConfigLoader.Load(Path.Combine(TestAssets.RepoRoot, "samples", "ppocr-cls", "models", "cls.quant.yaml"));
        var model = OnnxModelReader.Load(Path.Combine(TestAssets.RepoRoot, "samples", "ppocr-cls", "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx"));
        var set = CalibrationDataSet.Create(config, model.Graph.RuntimeInputs);
        Assert.Equal(OcrSamples.ClsFiles.Select(f => Path.ChangeExtension(f, ".png")), set.Files.Select(Path.GetFileName));
        int s = 0;
        foreach (var sample in set.Samples())
        {
            var expected = OcrSamples.Cls(OcrSamples.ClsFiles[s++]);
            Assert.Equal(expected.Shape, sample["x"].Shape);
            Assert.True(expected.ReadOnlySpan<float>().SequenceEqual(sample["x"].ReadOnlySpan<float>()), $"sample {s - 1} differs");
        }
        Assert.Equal(4, s);
    }
}
