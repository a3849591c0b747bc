using System.CommandLine;
using System.Globalization;
using Quant.Check.Output;
using Quant.Core.Analysis;
using Quant.Core.Stages;

namespace Quant.Check.Commands;

/// <summary><c>quant-check export</c>: calibrate and write the QDQ model, the model check report and the change log.</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var model = new Argument<FileInfo>("model") { Description = "The float .onnx model" };
        var config = new Option<FileInfo>("--config", "-c") { Description = "The quantization config (.yaml or .json)", Required = true };
        var outDir = new Option<DirectoryInfo>("--out", "-o") { Description = "Folder for NAME.qat.onnx, NAME.model_check.txt/.json, the change log and the calibration cache", Required = true };
        var name = new Option<string?>("--name") { Description = "Artifact base name (default: the model file name)" };
        var threads = new Option<int>("--threads") { Description = "Threads per kernel (default: all cores)", DefaultValueFactory = _ => Environment.ProcessorCount };
        var cache = new Option<DirectoryInfo?>("--cache") { Description = "Folder for the calibration statistics cache (default: --out)" };
        var depsFile = new Option<FileInfo?>("--deps-file") { Description = "Write the files this export read (config, model and its external-data files, data files and the data globs) here, for incremental builds" };
        var runLog = new Option<FileInfo?>("--run-log") { Description = "Append one line per successful run here (stage, name, calibration collected or from cache)" };

        var calibrationData = new Option<string[]>("--calibration-data") { Description = "Calibration data glob(s) for the model's single input, replacing the config's inputs.*.data (preprocessing still from the config)" };
        var cmd = new Command("export", "Calibrate a float model and export the fake-quant QDQ model (the qat.bc equivalent)")
            { model, config, outDir, name, threads, cache, depsFile, runLog, calibrationData };
        cmd.SetAction((parse, cancel) =>
        {
            var request = new ExportRequest
            {
                ModelPath = parse.GetValue(model)!.FullName,
                ConfigPath = parse.GetValue(config)!.FullName,
                OutputDirectory = parse.GetValue(outDir)!.FullName,
                Name = parse.GetValue(name),
                Threads = Math.Max(1, parse.GetValue(threads)),
                CacheDirectory = parse.GetValue(cache)?.FullName,
                CalibrationData = parse.GetValue(calibrationData) is { Length: > 0 } globs ? globs : null,
            };
            var deps = parse.GetValue(depsFile)?.FullName;
            var log = parse.GetValue(runLog)?.FullName;
            return Task.FromResult(CliErrors.Guard(() => CliLock.Holding(request.OutputDirectory, request.Name ?? Path.GetFileNameWithoutExtension(request.ModelPath),
                () => Run(request, deps, log, cancel), cancel)));
        });
        return cmd;
    }

    private static int Run(ExportRequest request, string? depsFile, string? runLog, CancellationToken cancel)
    {
        var result = StageProgressView.Run(progress => ExportStage.Run(request, progress, cancel));
        if (depsFile is not null) WriteDependencies(depsFile, request, result);
        if (runLog is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(runLog)!);
            File.AppendAllText(runLog, $"export {request.Name ?? Path.GetFileNameWithoutExtension(request.ModelPath)} calibration={(result.CalibrationFromCache ? "cache" : "collected")} {DateTime.UtcNow:o}\n");
        }
        // Canonical lines: MSBuild shows them as warnings (and reruns the export next build while there are any).
        foreach (var w in result.Warnings) Console.WriteLine(w);
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"calibration: {(result.CalibrationFromCache ? "statistics from cache" : "collected")} in {result.CalibrationTime.TotalSeconds.ToString("F1", inv)} s; method {result.ChosenMethod}");
        foreach (var (m, s) in result.Candidates) Console.WriteLine($"  candidate {m}: worst output's cosine {s.ToString("F6", inv)}");
        if (result.Layerwise is { } lw)
            Console.WriteLine($"  per-tensor choice: {lw.TensorsSearched} tensors, {lw.ReRuns} downstream re-runs on {lw.Samples} samples in " +
                $"{lw.Elapsed.TotalSeconds.ToString("F1", inv)} s; {lw.Changes.Count} changed; score {lw.BaseScore.ToString("F6", inv)} -> {lw.FinalScore.ToString("F6", inv)}");
        var counts = result.Plan.CountByQType();
        Console.WriteLine("precision: " + string.Join(", ", counts.Select(kv => $"{kv.Key.ToString().ToLowerInvariant()} {kv.Value}")));
        Console.WriteLine();
        Console.WriteLine("output similarity, float vs qat (min / avg / max over calibration samples)");
        PrintTable(result.Similarity);
        foreach (var st in result.Stability)
        {
            Console.WriteLine($"last-bit stability {st.Output}: cosine {st.MinCosine.ToString("F6", inv)} (min of {st.Runs} runs with last-bit noise in float ops)" +
                (st.MinCosine < 0.9999 ? "; fragile: runtimes will disagree about this much on this qat model" : ""));
        }
        Console.WriteLine();
        Console.WriteLine($"qat model:    {result.QatModelPath}");
        Console.WriteLine($"model check:  {result.ModelCheckTextPath}");
        Console.WriteLine($"change log:   {result.ChangeLogPath}");
        Console.WriteLine($"done in {result.TotalTime.TotalSeconds.ToString("F1", inv)} s");
        return 0;
    }

    /// <summary>
    /// The dependency file for MSBuild's up-to-date check (format in Quant.Build.Tasks' DepsFile): every file the
    /// export read, and each data glob with the folder it is relative to, so that a build notices a data file
    /// that appeared since (no timestamp shows a new file). Written only when its content changes.
    /// </summary>
    internal static void WriteDependencies(string path, ExportRequest request, ExportResult result)
    {
        var configDir = result.Config.BaseDirectory;
        var lines = new List<string> { "# quant-check export dependencies v1", $"config {Path.GetFullPath(request.ConfigPath)}", $"model {Path.GetFullPath(request.ModelPath)}" };
        foreach (var input in result.Config.Inputs.Values.OrderBy(i => i.Name, StringComparer.Ordinal))
            foreach (var glob in input.Data) lines.Add(GlobLine(configDir, glob));
        foreach (var f in result.DataFiles.Distinct().Order(StringComparer.Ordinal)) lines.Add($"data {Path.GetFullPath(f)}");
        // The model's external-data files: new weights there are a new model.
        foreach (var f in result.ExternalDataFiles) lines.Add($"file {f}");
        // Not the config: its text is hashed by the build (export.hash), so that a comment re-runs nothing.
        foreach (var f in new[] { request.ModelPath }.Concat(result.ExternalDataFiles).Concat(result.DataFiles).Distinct().Order(StringComparer.Ordinal))
            lines.Add(Quant.Core.Data.InputStat.Line(f));
        var text = string.Join("\n", lines) + "\n";
        if (File.Exists(path) && File.ReadAllText(path) == text) return;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        Quant.Core.Diagnostics.AtomicText.Write(path, text);
    }

    /// <summary><c>glob BASE\tPATTERN</c>: the folder the glob starts from and the rest of it, as the build's task expands it.</summary>
    private static string GlobLine(string configDir, string glob)
    {
        var (root, pattern) = Quant.Core.Data.FileGlob.Split(configDir, glob);
        return $"glob {root}\t{pattern}";
    }

    internal static void PrintTable(SimilarityTable table)
    {
        var inv = CultureInfo.InvariantCulture;
        ConsoleTable.Write(["output", "cosine", "L1", "L2", "Chebyshev"], table.Outputs.Select(o =>
        {
            string F(Func<Similarity, double> m, string format) { var s = table.Of(o, m); return $"{s.Min.ToString(format, inv)} / {s.Avg.ToString(format, inv)} / {s.Max.ToString(format, inv)}"; }
            return (IReadOnlyList<string>)[o, F(s => s.Cosine, "F6"), F(s => s.L1, "G5"), F(s => s.L2, "G5"), F(s => s.Chebyshev, "G5")];
        }).ToList());
    }
}
