using Quant.Core.Compilation;
using Quant.Core.Conversion;
using Quant.Core.Stages;
using Quant.Core.Tests.Stages;
using Quant.Engine;
using Quant.TestSupport;

namespace Quant.Core.Tests.Compile;

/// <summary>
/// The real PaddleOCR det/rec/cls models, float and qat (exported once here: max calibration over the committed
/// samples) and quantized (converted from the qat model), each compiled once, with a real input each.
/// </summary>
public sealed class CompiledModels
{
    private readonly Dictionary<string, string> _qat = [];
    private readonly Dictionary<string, (string Qbm, CompileSummary Summary)> _compiled = [];
    private readonly object _lock = new();
    public string Dir { get; } = TestAssets.TempDir("compile");

    public static string Float(string model) => model switch
    {
        "det" => TestAssets.DetModel,
        "rec" => TestAssets.RecModel,
        "cls" => TestAssets.ClsModel,
        _ => throw new ArgumentException(model),
    };

    /// <summary>det at 640x640 (its planned size), rec and cls as the samples are.</summary>
    public static Tensor Input(string model) => model switch
    {
        "det" => OcrSamples.Det(OcrSamples.DetFiles[0]),
        "rec" => OcrSamples.Rec(OcrSamples.RecFiles[0]),
        "cls" => OcrSamples.Cls(OcrSamples.ClsFiles[0]),
        _ => throw new ArgumentException(model),
    };

    /// <summary>kind: "float", "qat" or "quantized" (the qat model converted to quant.build integer ops).</summary>
    public string Source(string model, string kind) => kind switch
    {
        "float" => Float(model),
        "quantized" => Quantized(model),
        _ => Qat(model),
    };

    public string Quantized(string model)
    {
        var qat = Qat(model);
        lock (_lock)
        {
            var path = Path.Combine(Path.GetDirectoryName(qat)!, model + ".quantized.onnx");
            if (!File.Exists(path)) ConvertStage.Run(qat, path);
            return path;
        }
    }

    public string Qat(string model)
    {
        lock (_lock)
        {
            if (_qat.TryGetValue(model, out var path)) return path;
            var dir = Path.Combine(Dir, "qat-" + model);
            Directory.CreateDirectory(dir);
            var (data, pre) = model switch
            {
                "det" => (ExportConfigs.DetData, ExportConfigs.DetPreprocessing),
                "rec" => (ExportConfigs.RecData, ExportConfigs.RecPreprocessing),
                _ => (Path.Combine(TestAssets.Data("ppocr-cls"), "cls_*.npy").Replace('\\', '/'), ExportConfigs.RecPreprocessing),
            };
            var cfg = ExportConfigs.Write(dir, ExportConfigs.Yaml(data, "performance", "max", pre));
            path = ExportStage.Run(new ExportRequest { ModelPath = Float(model), ConfigPath = cfg, OutputDirectory = dir, Name = model }).QatModelPath;
            _qat[model] = path;
            return path;
        }
    }

    public (string Qbm, CompileSummary Summary) Compiled(string model, string kind)
    {
        var source = Source(model, kind);
        lock (_lock)
        {
            if (_compiled.TryGetValue(model + kind, out var done)) return done;
            var qbm = Path.Combine(Dir, $"{model}-{kind}", $"{model}.qbm");
            var summary = CompileStage.Run(source, qbm);
            return _compiled[model + kind] = (qbm, summary);
        }
    }
}
