using Quant.TestSupport;

namespace Quant.Core.Tests.Stages;

/// <summary>The export configs the stage tests write: a preset and a calibration type over the committed real samples.</summary>
internal static class ExportConfigs
{
    public const string RecPreprocessing = "    scale: 1/255\n    mean: 0.5\n    std: 0.5\n";
    public const string DetPreprocessing = "    scale: 1/255\n    mean: [0.485, 0.456, 0.406]\n    std: [0.229, 0.224, 0.225]\n";

    public static string RecData => Path.Combine(TestAssets.Data("ppocr-rec"), "calib_*.npy").Replace('\\', '/');
    public static string DetData => Path.Combine(TestAssets.Data("ppocr-det"), "*.npy").Replace('\\', '/');

    /// <summary>
    /// Symmetric activations under any preset: <c>performance</c> defaults to asymmetric ones, which makes rec robust;
    /// tests that need a fragile all-int8 model ask for HMCT's symmetric int8 explicitly.
    /// </summary>
    public const string Symmetric = "    asymmetric: false\n";

    public static string Yaml(string dataGlob, string preset, string method, string preprocessing, string extra = "", string activation = "") =>
        $"preset: {preset}\n" +
        "model_config:\n" +
        "  activation:\n" +
        $"    calibration_type: {method}\n" +
        activation +
        "inputs:\n" +
        "  x:\n" +
        $"    data: \"{dataGlob}\"\n" +
        preprocessing +
        extra + "\n";

    /// <summary>Writes <c>DIR/q.yaml</c> and returns its path.</summary>
    public static string Write(string dir, string yaml)
    {
        var path = Path.Combine(dir, "q.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }
}
