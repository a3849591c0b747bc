using Quant.Core.Analysis;
using Quant.Core.Stages;
using Quant.Core.Tests.Stages;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Analysis;

public class LastBitStabilityTests
{
    private static Dictionary<string, Tensor> RecSample() => new() { ["x"] = OcrSamples.Rec(OcrSamples.RecFiles[2]) };

    [Fact]
    public void The_float_model_is_insensitive_to_last_bit_noise()
    {
        var session = new InferenceSession(OnnxModelReader.Load(TestAssets.RecModel));
        var st = Assert.Single(LastBitStability.Measure(session, RecSample()));
        Assert.Equal(LastBitStability.DefaultRuns, st.Runs);
        Assert.InRange(st.MinCosine, 0.99999, 1.0);
    }

    [Fact]
    public void A_fragile_int8_model_moves_under_last_bit_noise_the_same_way_every_time()
    {
        // rec with the precision preset and max calibration: int8 LayerNorm pieces amplify rounding flips.
        var dir = TestAssets.TempDir("stability");
        var cfg = ExportConfigs.Write(dir, ExportConfigs.Yaml(ExportConfigs.RecData, "precision", "max", ExportConfigs.RecPreprocessing));
        var result = ExportStage.Run(new ExportRequest { ModelPath = TestAssets.RecModel, ConfigPath = cfg, OutputDirectory = dir, Name = "rec" });
        var session = new InferenceSession(OnnxModelReader.Load(result.QatModelPath));
        var first = Assert.Single(LastBitStability.Measure(session, RecSample()));
        var second = Assert.Single(LastBitStability.Measure(session, RecSample()));
        Assert.True(first.MinCosine < 0.999, $"expected a fragile model, got min cosine {first.MinCosine}");
        Assert.Equal(first, second);
        // The export measured it too, on the first calibration sample, and reports it.
        var reported = Assert.Single(result.Stability);
        Assert.Equal("softmax_11.tmp_0", reported.Output);
        Assert.True(reported.MinCosine <= reported.AvgCosine && reported.AvgCosine <= 1.0);
        Assert.Contains("== Last-bit stability", File.ReadAllText(result.ModelCheckTextPath));
    }
}
