using System.Globalization;
using Quant.Core.Config;
using Quant.Core.Stages;
using Quant.TestSupport;

/// <summary>
/// The preset x calibration-type table of docs/export.md: the export stage in process over every preset and method on
/// PaddleOCR v4 rec and det (float vs qat output cosine min / avg / max over the calibration samples, last-bit
/// stability, the precision mix). Calibration runs once per model; every other row re-derives scales from the cache.
/// Usage: build/measure-presets.sh REC_CALIB_DIR DET_CALIB_DIR (folders of uint8 NCHW BGR .npy samples).
/// </summary>
internal static class PresetTable
{
    internal const string RecPreprocessing = "    scale: 1/255\n    mean: 0.5\n    std: 0.5\n";
    internal const string DetPreprocessing = "    scale: 1/255\n    mean: [0.485, 0.456, 0.406]\n    std: [0.229, 0.224, 0.225]\n";

    public static int Run(string[] args)
    {
        if (args.Length != 2) { Console.Error.WriteLine("usage: presets REC_CALIB_DIR DET_CALIB_DIR"); return 2; }
        var work = TestAssets.TempDir("presets");
        try
        {
            Console.WriteLine("| model | preset | calibration_type | cosine min / avg / max | last-bit stability | int8 / int16 / fp16 / fp32 nodes | int16+fp16 |");
            Console.WriteLine("|---|---|---|---|---|---|---|");
            foreach (var (which, dir, model, pre) in new[]
            {
                ("rec", args[0], TestAssets.RecModel, RecPreprocessing),
                ("det", args[1], TestAssets.DetModel, DetPreprocessing),
            })
            {
                var data = Path.Combine(Path.GetFullPath(dir), "*.npy").Replace('\\', '/');
                foreach (var preset in new[] { "performance", "base", "precision", "upper_bound" })
                    foreach (var method in new[] { "max", "percentile", "kl", "mse", "default" })
                    {
                        var config = Path.Combine(work, $"{which}-{preset}-{method}.yaml");
                        File.WriteAllText(config, $"preset: {preset}\nmodel_config:\n  activation:\n    calibration_type: {method}\ninputs:\n  x:\n    data: \"{data}\"\n{pre}");
                        var result = ExportStage.Run(new ExportRequest
                        {
                            ModelPath = model, ConfigPath = config, OutputDirectory = Path.Combine(work, $"{which}-{preset}-{method}"),
                            Name = "m", CacheDirectory = Path.Combine(work, $"cache-{which}"),
                        });
                        Console.WriteLine(Row(which, preset, result));
                    }
            }
            return 0;
        }
        finally
        {
            try { Directory.Delete(work, true); } catch (IOException) { }
        }
    }

    private static string Row(string which, string preset, ExportResult r)
    {
        string F(double v, int digits = 4) => v.ToString("F" + digits, CultureInfo.InvariantCulture);
        var cosine = r.Similarity.Of(r.Similarity.Outputs[0], s => s.Cosine);
        var counts = r.Plan.CountByQType();
        int total = counts.Values.Sum();
        string method = r.Candidates.Count > 1
            ? "default → " + r.ChosenMethod.Split('(')[0]
            : r.ChosenMethod.Replace("percentile(", "percentile (");
        double wide = 100.0 * (counts[QType.Int16] + counts[QType.Float16]) / total;
        return $"| {which} | {preset} | {method} | {F(cosine.Min)} / {F(cosine.Avg)} / {F(cosine.Max)} | {F(r.Stability[0].MinCosine, 5)} | " +
            $"{counts[QType.Int8]} / {counts[QType.Int16]} / {counts[QType.Float16]} / {counts[QType.Float32]} | {Math.Round(wide):F0}% |";
    }
}
