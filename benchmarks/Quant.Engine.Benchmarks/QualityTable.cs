using System.Diagnostics;
using System.Globalization;
using Quant.Core.DeploymentRuntime;
using Quant.Core.Stages;
using Quant.Engine;
using PaddleOcr;
using Quant.TestSupport;
using YamlDotNet.RepresentationModel;

/// <summary>
/// Issue 10's quality table: task accuracy of our <c>NAME.qat.onnx</c> run in ONNX Runtime (OrtRunner, optimization
/// level all, as users deploy it) for each preset and the naive floor configuration, against the float model.
/// rec: line accuracy (spaces ignored) and character accuracy on ppocr-rec/dev; cls: accuracy and mean p(true) on
/// ppocr-cls/dev; det: text-map IoU against float (probability map binarized at PaddleOCR's 0.3) on 4 ppocr-det photos
/// with text held out from calibration. rec's metrics as ppocr-rec/dev/README.md defines them: line accuracy and
/// character accuracy (1 - sum edit distance / sum label length) both with spaces ignored, which reproduces the
/// README's float 0.870 / 0.9811. Each model is exported by the export stage exactly as the build does, with a calibration
/// cache kept in .cache/quality so reruns only re-derive scales.
/// Usage: build/measure-quality.sh DATASETS_DIR [--model rec,cls,det] [--preset performance,base,precision,upper_bound,naive]
///        [--config EXTRA.yaml] [--det-held-out text|last] [--ort-optimization disabled|basic|extended|all]
/// </summary>
internal static class QualityTable
{
    private static readonly string[] AllPresets = ["performance", "base", "precision", "upper_bound", "naive"];
    private const float DetThreshold = 0.3f;

    /// <summary>
    /// The floor to beat (issue 10): all int8 with the plainest choices, a MinMax quantizer's settings. The weight
    /// per_channel line restates the default so the row keeps its meaning if the default changes.
    /// </summary>
    private const string NaiveConfig = "preset: performance\nmodel_config:\n  activation:\n    calibration_type: max\n    asymmetric: true\n  weight:\n    per_channel: true\n";

    public static int Run(string[] args)
    {
        if (args.Length < 1 || args[0].StartsWith("--", StringComparison.Ordinal))
            return Usage("DATASETS_DIR is required");
        var datasets = Path.GetFullPath(args[0]);
        var models = new[] { "rec", "cls", "det" };
        var presets = AllPresets;
        string? extra = null;
        bool lastFour = false;
        var ortLevel = OrtOptimization.All;
        for (int i = 1; i < args.Length; i++)
        {
            if (args[i] is "--model" or "--models" && i + 1 < args.Length) models = args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries);
            else if (args[i] is "--preset" or "--presets" && i + 1 < args.Length) presets = args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries);
            else if (args[i] == "--config" && i + 1 < args.Length) extra = Path.GetFullPath(args[++i]);
            else if (args[i] == "--det-held-out" && i + 1 < args.Length && args[i + 1] is "text" or "last") lastFour = args[++i] == "last";
            else if (args[i] == "--ort-optimization" && i + 1 < args.Length && OrtRunner.ParseOptimization(args[i + 1]) is { } level) { ortLevel = level; i++; }
            else return Usage($"unknown argument {args[i]}");
        }
        if (models.FirstOrDefault(m => m is not ("rec" or "cls" or "det")) is { } badModel) return Usage($"unknown model {badModel}");
        if (presets.FirstOrDefault(p => !AllPresets.Contains(p)) is { } badPreset) return Usage($"unknown preset {badPreset}");
        if (extra is not null && !File.Exists(extra)) return Usage($"--config {extra} does not exist");

        var total = Stopwatch.StartNew();
        var work = Path.Combine(TestAssets.RepoRoot, ".cache", "quality");
        Directory.CreateDirectory(work);
        var results = new Dictionary<(string Model, string Row), string>();
        var notes = new List<string>();
        foreach (var model in models)
        {
            var task = Describe(model, datasets, work, lastFour, ortLevel);
            var floatRun = task.Evaluate(task.FloatPath);
            results[(model, "float")] = task.Cell(floatRun, floatRun);
            if (model == "det")
                task.Note += "; float text pixels per measured photo: " + string.Join(", ", floatRun.Masks.Select(m => m.Count(v => v)));
            foreach (var preset in presets)
            {
                var dir = Path.Combine(work, "out", model, preset);
                Directory.CreateDirectory(dir);
                var config = Path.Combine(dir, model + ".quant.yaml");
                File.WriteAllText(config, ConfigText(preset, task, extra));
                var exportTime = Stopwatch.StartNew();
                var export = ExportStage.Run(new ExportRequest
                {
                    ModelPath = task.FloatPath, ConfigPath = config, OutputDirectory = dir, Name = model,
                    CacheDirectory = Path.Combine(work, "cache"),
                });
                exportTime.Stop();
                var run = task.Evaluate(export.QatModelPath);
                results[(model, preset)] = task.Cell(run, floatRun);
                if (model == "rec")
                    // A continuous measure next to the line count: where two rows differ by a line or two, this says
                    // whether one is closer to float overall, and the lists say which lines moved.
                    notes.Add($"rec {preset}: output cosine vs float over the measured lines mean {run.Cosines.Average():F5}, min {run.Cosines.Min():F4}; " +
                        $"wrong where float reads right: {string.Join(" ", run.Wrong.Except(floatRun.Wrong))}; right where float is wrong: {string.Join(" ", floatRun.Wrong.Except(run.Wrong))}");
                Console.Error.WriteLine($"{model} {preset}: {results[(model, preset)]}  ({total.Elapsed.TotalSeconds:F0} s)");
                if (model == "det")
                    notes.Add($"det {preset} IoU per photo: " + string.Join(", ", task.PhotoIoU(run, floatRun).Select(p => $"{p.Photo} {p.IoU:F3}")));
                notes.Add($"{model} {preset}: export {exportTime.Elapsed.TotalSeconds:F0} s (calibration {(export.CalibrationFromCache ? "from cache" : $"{export.CalibrationTime.TotalSeconds:F0} s")}, method {export.ChosenMethod})");
            }
            notes.Add(task.Note);
        }

        var header = new List<string> { "config" };
        if (models.Contains("rec")) header.AddRange(["rec line accuracy (of float)", "rec char accuracy"]);
        if (models.Contains("cls")) header.Add("cls accuracy (mean p(true))");
        if (models.Contains("det")) header.Add("det text-map IoU vs float (worst photo)");
        Console.WriteLine();
        Console.WriteLine("| " + string.Join(" | ", header) + " |");
        Console.WriteLine("|" + string.Concat(Enumerable.Repeat("---|", header.Count)));
        foreach (var row in new[] { "float" }.Concat(presets))
        {
            var label = row == "naive" ? "naive floor (performance, max, asymmetric, per-channel weights)" : row;
            var cells = models.OrderBy(m => Array.IndexOf(["rec", "cls", "det"], m)).Select(m => results[(m, row)]);
            Console.WriteLine($"| {label} | {string.Join(" | ", cells)} |");
        }
        Console.WriteLine();
        foreach (var n in notes) Console.WriteLine("- " + n);
        Console.WriteLine($"- qat models run in ONNX Runtime {OrtRunner.Version} (optimization {ortLevel.ToString().ToLowerInvariant()}, 1 thread){(extra is null ? "" : $"; every config extended with {extra}")}; artifacts in {Path.Combine(work, "out")}");
        Console.WriteLine($"- total time {total.Elapsed.TotalSeconds:F0} s");
        return 0;
    }

    private static int Usage(string why)
    {
        Console.Error.WriteLine($"{why}\nusage: quality DATASETS_DIR [--model rec,cls,det] [--preset {string.Join(',', AllPresets)}] [--config EXTRA.yaml] [--det-held-out text|last] [--ort-optimization disabled|basic|extended|all]");
        return 2;
    }

    /// <summary>The export config of one row: the preset (or the naive floor), the model's calibration input, then EXTRA merged over it.</summary>
    private static string ConfigText(string preset, Task task, string? extra)
    {
        var head = preset == "naive" ? NaiveConfig : $"preset: {preset}\n";
        var text = head + $"inputs:\n  x:\n    data: \"{task.CalibGlob.Replace('\\', '/')}\"\n{task.Preprocessing}";
        if (extra is null) return text;
        var baseDoc = Load(text);
        Merge(baseDoc, Load(File.ReadAllText(extra)));
        var stream = new YamlStream(new YamlDocument(baseDoc));
        using var w = new StringWriter(CultureInfo.InvariantCulture);
        stream.Save(w, assignAnchors: false);
        return w.ToString();

        static YamlMappingNode Load(string yaml)
        {
            var s = new YamlStream();
            s.Load(new StringReader(yaml));
            return s.Documents.Count == 0 ? new YamlMappingNode() : (YamlMappingNode)s.Documents[0].RootNode;
        }
    }

    /// <summary>Deep merge: mappings merge key by key, anything else in <paramref name="over"/> replaces what was there.</summary>
    private static void Merge(YamlMappingNode into, YamlMappingNode over)
    {
        foreach (var (key, value) in over.Children)
        {
            if (into.Children.TryGetValue(key, out var existing) && existing is YamlMappingNode a && value is YamlMappingNode b) Merge(a, b);
            else into.Children[key] = value;
        }
    }

    private sealed record Measured(double LineAccuracy, double CharAccuracy, double ClsAccuracy, double MeanPTrue, List<bool[]> Masks)
    {
        /// <summary>rec: the lines read wrong (file names without extension).</summary>
        public SortedSet<string> Wrong { get; init; } = [];
        /// <summary>rec: per line, the cosine of the output (softmax over the classes, every time step) against float's.</summary>
        public double[] Cosines { get; init; } = [];
    }

    private sealed class Task
    {
        public required string Model { get; init; }
        public required string FloatPath { get; init; }
        public required string CalibGlob { get; init; }
        public required string Preprocessing { get; init; }
        public required List<(string File, Tensor Input, string Label)> Samples { get; init; }
        public string[] Keys { get; init; } = [];
        public string Note { get; set; } = "";
        /// <summary>rec: the float model's outputs, the reference of the per-line cosines.</summary>
        private List<Tensor>? FloatOutputs { get; set; }
        /// <summary>How ONNX Runtime runs the models (all optimizations, the users' runtime, unless --ort-optimization says otherwise).</summary>
        public required OrtOptimization Ort { get; init; }

        public Measured Evaluate(string modelPath)
        {
            using var ort = new OrtRunner(modelPath, Ort, threads: 1);
            var outputs = Samples.Select(s => ort.Run(new Dictionary<string, Tensor> { ["x"] = s.Input })[ort.OutputNames[0]]).ToList();
            switch (Model)
            {
                case "rec":
                {
                    int exact = 0; long distance = 0, length = 0;
                    var wrong = new SortedSet<string>(StringComparer.Ordinal);
                    // The first run (the float model) is the reference the per-line output cosines compare with.
                    FloatOutputs ??= outputs;
                    var cosines = new double[Samples.Count];
                    for (int i = 0; i < Samples.Count; i++)
                    {
                        var text = OcrText.CtcGreedy(outputs[i], Keys);
                        var label = Samples[i].Label;
                        if (text.Replace(" ", "") == label.Replace(" ", "")) exact++;
                        else wrong.Add(Path.GetFileNameWithoutExtension(Samples[i].File));
                        distance += OcrText.EditDistance(text.Replace(" ", ""), label.Replace(" ", ""));
                        length += OcrText.Length(label.Replace(" ", ""));
                        cosines[i] = Quant.Core.Analysis.Similarity.Of(outputs[i], FloatOutputs[i]).Cosine;
                    }
                    return new Measured((double)exact / Samples.Count, 1 - (double)distance / length, 0, 0, []) { Wrong = wrong, Cosines = cosines };
                }
                case "cls":
                {
                    int right = 0; double pTrue = 0;
                    for (int i = 0; i < Samples.Count; i++)
                    {
                        var p = outputs[i].ReadOnlySpan<float>();
                        int truth = int.Parse(Samples[i].Label, CultureInfo.InvariantCulture);
                        if ((p[1] > p[0] ? 1 : 0) == truth) right++;
                        pTrue += p[truth];
                    }
                    return new Measured(0, 0, (double)right / Samples.Count, pTrue / Samples.Count, []);
                }
                default:
                {
                    var masks = outputs.Select(o => { var p = o.ReadOnlySpan<float>(); var m = new bool[p.Length]; for (int j = 0; j < p.Length; j++) m[j] = p[j] > DetThreshold; return m; }).ToList();
                    return new Measured(0, 0, 0, 0, masks);
                }
            }
        }

        public string Cell(Measured r, Measured reference) => Model switch
        {
            "rec" => $"{r.LineAccuracy:F3} ({100 * r.LineAccuracy / reference.LineAccuracy:F1} %) | {r.CharAccuracy:F4}",
            "cls" => $"{r.ClsAccuracy:F3} ({r.MeanPTrue:F4})",
            _ => DetCell(r, reference),
        };

        /// <summary>IoU pooled over the photos (text pixels of all of them together), and the worst single photo.</summary>
        private string DetCell(Measured r, Measured reference)
        {
            var per = PhotoIoU(r, reference);
            long inter = per.Sum(p => p.Inter), union = per.Sum(p => p.Union);
            var worst = per.MinBy(p => p.IoU);
            double pooled = union == 0 ? 1 : (double)inter / union;
            return worst.IoU == 1 ? $"{pooled:F3}" : $"{pooled:F3} ({worst.IoU:F3}, {worst.Photo[..3]})";
        }

        /// <summary>Per measured photo: its text-map IoU against float (1 when neither map has text).</summary>
        public List<(string Photo, long Inter, long Union, double IoU)> PhotoIoU(Measured r, Measured reference)
        {
            var result = new List<(string, long, long, double)>();
            for (int i = 0; i < r.Masks.Count; i++)
            {
                long pi = 0, pu = 0;
                var a = r.Masks[i]; var b = reference.Masks[i];
                for (int j = 0; j < a.Length; j++) { if (a[j] && b[j]) pi++; if (a[j] || b[j]) pu++; }
                result.Add((Path.GetFileNameWithoutExtension(Samples[i].File), pi, pu, pu == 0 ? 1 : (double)pi / pu));
            }
            return result;
        }
    }

    private static Task Describe(string model, string datasets, string work, bool lastFour, OrtOptimization ort)
    {
        switch (model)
        {
            case "rec" or "cls":
            {
                var root = Path.Combine(datasets, "ppocr-" + model);
                var dev = Path.Combine(root, "dev");
                var samples = File.ReadAllLines(Path.Combine(dev, "labels.tsv")).Where(l => l.Length > 0).Select(l => l.Split('\t'))
                    .Select(p => (p[0], OcrSamples.FromPath(model, Path.Combine(dev, p[0])), p[1])).ToList();
                return new Task
                {
                    Ort = ort,
                    Model = model, FloatPath = model == "rec" ? TestAssets.RecModel : TestAssets.ClsModel,
                    CalibGlob = Path.Combine(root, "calib", "*.npy"), Preprocessing = PresetTable.RecPreprocessing, Samples = samples,
                    Keys = model == "rec" ? File.ReadAllLines(TestAssets.OcrModel("ppocr_keys_v1.txt")) : [],
                    Note = $"{model}: calibrated on {Path.Combine(root, "calib")}, measured on the {samples.Count} lines of {dev}; preprocessing (u8/255-0.5)/0.5",
                };
            }
            default:
            {
                // det has no labelled set: 12 photos calibrate (copied to a fixed folder so the calibration cache's data
                // fingerprint stays the same from run to run), the other 4 are measured. By default those are four photos
                // with text (measure-chain.sh's choice): of the last four, three show no text at all (the float map is
                // empty at 0.3), so an IoU on them rests on one photo. --det-held-out last measures the last four anyway.
                var all = Directory.GetFiles(Path.Combine(datasets, "ppocr-det", "calib"), "*.npy").Order(StringComparer.Ordinal).ToList();
                if (all.Count != 16) throw new ArgumentException($"ppocr-det/calib holds {all.Count} photos, expected 16");
                var held = lastFour ? all.Skip(12).ToList() : all.Where(f => ChainTable.DetHeldOut.Contains(Path.GetFileName(f))).ToList();
                if (held.Count != 4) throw new ArgumentException($"ppocr-det/calib lacks one of {string.Join(", ", ChainTable.DetHeldOut)}");
                var calib = Path.Combine(work, lastFour ? "det-calib-first12" : "det-calib");
                Directory.CreateDirectory(calib);
                var wanted = all.Except(held).ToList();
                // A photo left from another held-out choice must not calibrate this one.
                foreach (var stale in Directory.GetFiles(calib).Where(f => !wanted.Any(w => Path.GetFileName(w) == Path.GetFileName(f)))) File.Delete(stale);
                foreach (var f in wanted)
                {
                    var to = Path.Combine(calib, Path.GetFileName(f));
                    if (!File.Exists(to) || new FileInfo(to).Length != new FileInfo(f).Length) File.Copy(f, to, true);
                }
                var samples = held.Select(f => (Path.GetFileName(f), OcrSamples.FromPath("det", f), "")).ToList();
                return new Task
                {
                    Ort = ort,
                    Model = model, FloatPath = TestAssets.DetModel, CalibGlob = Path.Combine(calib, "*.npy"),
                    Preprocessing = PresetTable.DetPreprocessing, Samples = samples,
                    Note = $"det: calibrated on the other 12 photos of ppocr-det/calib, measured on {string.Join(", ", held.Select(Path.GetFileNameWithoutExtension))}; " +
                        "preprocessing (u8/255-mean[c])/std[c], ImageNet mean/std in the stored BGR order (ppocr-det/calib/README.md); map binarized at > 0.3",
                };
            }
        }
    }
}
