using Quant.Core.Analysis;
using Quant.Core.Conversion;
using Quant.Core.DeploymentRuntime;
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
        // rec all-int8 with symmetric activations and max calibration: a fragile model.
        var dir = TestAssets.TempDir("stability");
        var cfg = ExportConfigs.Write(dir, ExportConfigs.Yaml(ExportConfigs.RecData, "performance", "max", ExportConfigs.RecPreprocessing, activation: ExportConfigs.Symmetric));
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

    [Fact]
    public void The_floor_of_an_int8_rec_model_is_no_higher_than_its_agreement_with_onnx_runtime()
    {
        // rec performance (all int8, symmetric), max calibration: ORT's plain kernels flip 12-18 roundings per run in front of its
        // QuantizeLinears against the engine, and the int8 layers amplify them to a cosine of 0.977 on sample 0. The
        // noise must move the model at least as far; ±1 ulp per element did not move it at all (floor 1.0).
        var dir = TestAssets.TempDir("stability-rec-performance");
        var cfg = ExportConfigs.Write(dir, ExportConfigs.Yaml(ExportConfigs.RecData, "performance", "max", ExportConfigs.RecPreprocessing, activation: ExportConfigs.Symmetric));
        var result = ExportStage.Run(new ExportRequest { ModelPath = TestAssets.RecModel, ConfigPath = cfg, OutputDirectory = dir, Name = "rec" });
        var floor = Assert.Single(result.Stability);
        var feeds = new Dictionary<string, Tensor> { ["x"] = OcrSamples.Rec(OcrSamples.RecFiles[0]) };
        var engine = new InferenceSession(OnnxModelReader.Load(result.QatModelPath)).Run(feeds)[floor.Output];
        using var ort = new OrtRunner(result.QatModelPath, OrtOptimization.Disabled);
        double agreement = Similarity.Of(ort.Run(feeds)[floor.Output], engine).Cosine;
        Assert.True(agreement < 0.9999, $"ORT agrees at {agreement}: the model is no longer fragile, pick another");
        Assert.True(floor.MinCosine <= agreement, $"floor {floor.MinCosine} above ORT's agreement {agreement}");
        Assert.True(floor.MinCosine > 0.5, $"floor {floor.MinCosine}: the noise wrecks the model instead of disturbing it");
    }

    [Fact]
    public void Requantization_flips_leave_a_float_model_alone()
    {
        // No QuantizeLinear, nothing to flip: the floor is exactly 1, unlike the ulp noise which moves every Conv.
        var session = new InferenceSession(OnnxModelReader.Load(TestAssets.RecModel));
        var st = Assert.Single(LastBitStability.MeasureRequantizationFlips(session, RecSample()));
        Assert.Equal(1.0, st.MinCosine, 12);
    }

    [Fact]
    public void The_requantization_flip_floor_bounds_the_quantized_models_agreement_with_qat()
    {
        // rec performance (asymmetric by default), the 4 committed lines: the quantized model departs from qat only by
        // 1-LSB requantization flips (node by node, spec §14), which the int8 layers amplify. The flip floor injects such
        // flips at the quantized model's own node-by-node rate (as the check does), so the quantized model must agree with
        // qat within twice the floor's distance from 1 on every sample, and the floor must actually move (an injection
        // that misses the integers would read 1.0).
        var dir = TestAssets.TempDir("stability-flips");
        var cfg = ExportConfigs.Write(dir, ExportConfigs.Yaml(ExportConfigs.RecData, "performance", "max", ExportConfigs.RecPreprocessing));
        var export = ExportStage.Run(new ExportRequest { ModelPath = TestAssets.RecModel, ConfigPath = cfg, OutputDirectory = dir, Name = "rec" });
        var quantizedPath = Path.Combine(dir, ConvertStage.FileName("rec"));
        ConvertStage.Run(export.QatModelPath, quantizedPath);
        var qat = new InferenceSession(OnnxModelReader.Load(export.QatModelPath));
        var quantized = new InferenceSession(OnnxModelReader.Load(quantizedPath));
        foreach (var file in OcrSamples.RecFiles)
        {
            var feeds = new Dictionary<string, Tensor> { ["x"] = OcrSamples.Rec(file) };
            var (floors, share) = StageModels.FlipStability(qat, quantized.Model, feeds, export.QatModelPath);
            var floor = Assert.Single(floors);
            Assert.InRange(share, LastBitStability.RequantizationFlipShare, LastBitStability.MaxFlipShare);
            double agreement = Similarity.Of(quantized.Run(feeds)[floor.Output], qat.Run(feeds)[floor.Output]).Cosine;
            Assert.True(floor.MinCosine < 0.9999, $"{file}: flip floor {floor.MinCosine}: the flips did not reach the output");
            Assert.True(agreement >= 1 - 2 * (1 - floor.MinCosine), $"{file}: quantized vs qat {agreement} below the flip floor's bound (floor {floor.MinCosine})");
        }
    }
}
