using Quant.Core.Checks;
using Quant.Core.Config;
using Quant.Core.Stages;
using Quant.TestSupport;

namespace Quant.Core.Tests.Checks;

/// <summary>
/// A build that runs export and then check compares float and qat over the samples once: the check reads what the
/// export measured (<see cref="FloatVsQatCache"/>) when the models and the data are the same, and its reports are
/// the bytes a fresh measurement gives.
/// </summary>
public class FloatVsQatCacheTests
{
    /// <summary>Every phase a stage reports, in order (synchronously, unlike <see cref="Progress{T}"/>).</summary>
    private sealed class Phases : IProgress<StageProgress>
    {
        public List<string> Seen { get; } = [];
        public void Report(StageProgress value) => Seen.Add(value.Phase);
    }

    [Fact]
    public void The_check_reuses_the_exports_float_vs_qat_and_reports_what_a_fresh_measurement_reports()
    {
        var dir = TestAssets.TempDir("float-vs-qat");
        var data = Path.Combine(TestAssets.Data("ppocr-cls"), "cls_*.npy").Replace('\\', '/');
        var cfg = Path.Combine(dir, "cls.quant.yaml");
        File.WriteAllText(cfg,
            $"model_config:\n  activation:\n    calibration_type: max\ninputs:\n  x:\n    data: \"{data}\"\n    scale: 1/255\n    mean: 0.5\n    std: 0.5\n" +
            "checks:\n  r:\n    cosine: {min: 0.9}\n    l1: {max: 0.5, over: avg}\n");
        var export = ExportStage.Run(new ExportRequest { ModelPath = TestAssets.ClsModel, ConfigPath = cfg, OutputDirectory = Path.Combine(dir, "export"), Name = "cls" });
        var cache = FloatVsQatCache.PathFor(export.QatModelPath);
        Assert.Equal(Path.Combine(dir, "export", "cls.qat.vs_float.json"), cache);
        Assert.True(File.Exists(cache));

        CheckRequest Request(string outDir, IReadOnlyList<CheckStagePair>? stages = null, IReadOnlyList<string>? calibrationData = null) => new()
        {
            ModelPath = TestAssets.ClsModel, QatModelPath = export.QatModelPath, ConfigPath = cfg, Name = "cls", Stages = stages,
            OutputDirectory = Path.Combine(dir, outDir), StepSummaryPath = null, CalibrationData = calibrationData,
        };

        // qat_vs_float alone: read from the export, no model runs at all (no sample loop reports progress).
        var phases = new Phases();
        var reused = CheckStage.Run(Request("reused", [CheckStagePair.QatVsFloat]), phases);
        Assert.True(reused.Measurements.QatVsFloatFromExport);
        Assert.DoesNotContain(phases.Seen, p => p.StartsWith("comparing", StringComparison.Ordinal));
        // Its numbers are the export's own float-vs-qat table, sample by sample.
        var table = reused.Measurements.Similarity[CheckStagePair.QatVsFloat];
        Assert.Equal(export.Similarity.Samples(ClsExportOutput), table.Samples(ClsExportOutput));

        // Both stages: only the qat model runs (the reference of ONNX Runtime), the float model does not.
        phases = new Phases();
        var both = CheckStage.Run(Request("both"), phases);
        Assert.True(both.Measurements.QatVsFloatFromExport);
        Assert.Contains("comparing ONNX Runtime and qat", phases.Seen);
        Assert.DoesNotContain(phases.Seen, p => p.Contains("float", StringComparison.Ordinal));

        // Without the cache: measured afresh, and every report is byte-identical.
        File.Delete(cache);
        phases = new Phases();
        var fresh = CheckStage.Run(Request("fresh"), phases);
        Assert.False(fresh.Measurements.QatVsFloatFromExport);
        Assert.Contains("comparing float, qat and ONNX Runtime", phases.Seen);
        Assert.Equal(File.ReadAllBytes(both.JsonPath), File.ReadAllBytes(fresh.JsonPath));
        Assert.Equal(File.ReadAllBytes(both.JUnitPath), File.ReadAllBytes(fresh.JUnitPath));
        Assert.Equal(File.ReadAllBytes(both.MarkdownPath), File.ReadAllBytes(fresh.MarkdownPath));

        // A damaged cache is ignored, not an error.
        File.WriteAllText(cache, "{\"format\": \"quant-build-float-vs-qat/1\", \"key\": ");
        Assert.False(CheckStage.Run(Request("damaged", [CheckStagePair.QatVsFloat])).Measurements.QatVsFloatFromExport);

        // Re-exported: valid again. Other samples than the export's (2 of the 4 files): another key, measured afresh.
        ExportStage.Run(new ExportRequest { ModelPath = TestAssets.ClsModel, ConfigPath = cfg, OutputDirectory = Path.Combine(dir, "export"), Name = "cls" });
        Assert.True(CheckStage.Run(Request("again", [CheckStagePair.QatVsFloat])).Measurements.QatVsFloatFromExport);
        var two = CheckStage.Run(Request("two", [CheckStagePair.QatVsFloat], new[] { "cls_0000.npy", "cls_0001.npy" }.Select(f => Path.Combine(TestAssets.Data("ppocr-cls"), f)).ToList()));
        Assert.False(two.Measurements.QatVsFloatFromExport);
        Assert.Equal(2, two.Measurements.SampleCount);
        // A qat model changed after the export (its bytes are part of the key): measured afresh.
        var model = Onnx.OnnxModelReader.Load(export.QatModelPath);
        model.ProducerName += " (edited)";
        Onnx.OnnxModelWriter.Save(model, export.QatModelPath);
        Assert.False(CheckStage.Run(Request("edited", [CheckStagePair.QatVsFloat])).Measurements.QatVsFloatFromExport);
    }

    private const string ClsExportOutput = ClsExport.Output;
}
