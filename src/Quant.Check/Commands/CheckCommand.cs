using System.CommandLine;
using Quant.Check.Output;
using Quant.Core.Config;
using Quant.Core.Checks;
using Quant.Core.Stages;

namespace Quant.Check.Commands;

/// <summary>
/// <c>quant-check check</c>: the accuracy gate. Prints every failing check as a canonical diagnostic at the yaml
/// position of its threshold (MSBuild turns them into build errors) and exits 1 when any is an error.
/// </summary>
internal static class CheckCommand
{
    public static Command Create()
    {
        var model = new Argument<FileInfo>("model") { Description = "The float .onnx model" };
        var config = new Option<FileInfo>("--config", "-c") { Description = "The quantization config (.yaml or .json) holding the checks: section", Required = true };
        var qat = new Option<FileInfo>("--qat") { Description = "The exported NAME.qat.onnx", Required = true };
        var (quantized, compiled) = StageModelOptions.Create();
        var outDir = new Option<DirectoryInfo>("--out", "-o") { Description = "Folder for NAME.check.json, NAME.check.junit.xml and NAME.check.md", Required = true };
        var name = new Option<string?>("--name") { Description = "Artifact base name and the model's name in messages (default: the model file name)" };
        var baseline = new Option<string?>("--baseline") { Description = "A committed baseline of accepted metrics (quant-check baseline update writes it), or package:ID[@VERSION]: the NAME.check.json of a shipped model package (newest version, or the one given)" };
        var project = new Option<FileInfo?>("--project") { Description = "The project whose nuget.config resolves a package: baseline, and where problems with it are reported (default: the current folder)" };
        var calibrationData = new Option<string[]>("--calibration-data") { Description = "Calibration data glob(s) for the model's single input, replacing the config's inputs.*.data (preprocessing still from the config)", AllowMultipleArgumentsPerToken = false };
        var warnOnly = new Option<bool>("--warn-only") { Description = "Report failing checks as warnings and exit 0" };
        var depsFile = new Option<FileInfo?>("--deps-file") { Description = "Write the files the check's evaluator commands name here, for incremental builds" };
        var stages = new Option<string[]>("--stage")
        {
            Description = "A stage pair to measure: qat_vs_float, runtime_vs_qat, quantized_vs_qat (needs --quantized) or compiled_vs_quantized (needs --quantized and --compiled) " +
                          "(repeatable; default: qat_vs_float, runtime_vs_qat when ONNX Runtime can load the qat model, and the pairs whose models are given)",
            AllowMultipleArgumentsPerToken = false,
        };
        stages.AcceptOnlyFromAmong([.. CheckNames.Stages.Select(s => s.Name)]);

        var cmd = new Command("check", "Check the qat model against the float model, ONNX Runtime against the engine on the qat model, the quantized model against the qat model " +
                                       "and the compiled model against the quantized one, with the config's checks: thresholds and an optional baseline")
            { model, config, qat, quantized, compiled, outDir, name, baseline, project, warnOnly, calibrationData, stages, depsFile };
        cmd.SetAction((parse, cancel) =>
        {
            var request = new CheckRequest
            {
                ModelPath = parse.GetValue(model)!.FullName,
                QatModelPath = parse.GetValue(qat)!.FullName,
                QuantizedModelPath = parse.GetValue(quantized)?.FullName,
                CompiledModelPath = parse.GetValue(compiled)?.FullName,
                ConfigPath = parse.GetValue(config)!.FullName,
                OutputDirectory = parse.GetValue(outDir)!.FullName,
                Name = parse.GetValue(name),
                BaselinePath = parse.GetValue(baseline) is { } b ? (PackageBaselineSpec.Is(b) ? b : Path.GetFullPath(b)) : null,
                ProjectPath = parse.GetValue(project)?.FullName,
                CalibrationData = parse.GetValue(calibrationData) is { Length: > 0 } globs ? globs : null,
                Stages = parse.GetValue(stages) is { Length: > 0 } named ? named.Select(n => CheckNames.StageOf(n)!.Value).Distinct().ToList() : null,
            };
            bool warn = parse.GetValue(warnOnly);
            var deps = parse.GetValue(depsFile)?.FullName;
            return Task.FromResult(CliErrors.Guard(() => CliLock.Holding(request.OutputDirectory, request.Name ?? Path.GetFileNameWithoutExtension(request.ModelPath),
                () => Run(request, warn, deps, cancel), cancel)));
        });
        return cmd;
    }

    private static int Run(CheckRequest request, bool warnOnly, string? depsFile, CancellationToken cancel)
    {
        var result = StageProgressView.Run(progress => CheckStage.Run(request, progress, cancel));
        if (depsFile is not null) WriteDependencies(depsFile, request.ConfigPath, request.BaselinePath);
        int failed = result.Failures.Count();
        var m = result.Measurements;
        Console.WriteLine($"{m.Name}: {result.Outcomes.Count - failed} of {result.Outcomes.Count} checks passed over {m.SampleCount} samples");
        if (m.QatVsFloatFromExport) Console.WriteLine("  qat_vs_float: as the export measured it (its float and qat outputs were not computed again)");
        if (m.Runtime is { Skipped: { } skipped }) Console.WriteLine($"  runtime_vs_qat: not measured: {skipped}");
        foreach (var o in result.Outcomes.Where(o => o.Passed)) Console.WriteLine($"  ok  {o.Message}");
        foreach (var o in result.Failures) Console.Error.WriteLine(o.Diagnostic(warnOnly));
        Console.WriteLine($"results:  {result.JsonPath}");
        Console.WriteLine($"junit:    {result.JUnitPath}");
        Console.WriteLine($"summary:  {result.MarkdownPath}");
        return failed > 0 && !warnOnly ? CliErrors.Failure : 0;
    }

    /// <summary>
    /// The dependency file for MSBuild's up-to-date check of the check (format in Quant.Build.Tasks' DepsFile): the
    /// files the evaluator commands name (their scripts), which the config's text does not hold. Written only when it changes.
    /// </summary>
    private static void WriteDependencies(string path, string configPath, string? baseline)
    {
        var config = QuantConfigLoader.Load(configPath);
        var lines = new List<string> { "# quant-check check dependencies v1" };
        var scripts = EvaluatorFiles.Of(config.CheckRules, config.BaseDirectory);
        lines.AddRange(scripts.Select(f => $"file {f}"));
        // A baseline file (not a package spec) is an input by its path already; its stat catches an older copy put in its place.
        var stats = baseline is not null && !PackageBaselineSpec.Is(baseline) ? scripts.Append(baseline) : scripts;
        lines.AddRange(stats.Distinct().Order(StringComparer.Ordinal).Select(Quant.Core.Data.InputStat.Line));
        var text = string.Join("\n", lines) + "\n";
        if (File.Exists(path) && File.ReadAllText(path) == text) return;
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        Quant.Core.Diagnostics.AtomicText.Write(path, text);
    }
}
