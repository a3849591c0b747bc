using System.CommandLine;
using Quant.Check.Output;
using Quant.Core.Checks;
using Quant.Core.Diagnostics;
using Quant.Core.Stages;

namespace Quant.Check.Commands;

/// <summary>
/// <c>quant-check baseline update</c>: measures the current metrics and rewrites the baseline file. Only this
/// explicit command writes a baseline; a check (and so a build) never does.
/// </summary>
internal static class BaselineCommand
{
    public static Command Create()
    {
        var model = new Argument<FileInfo>("model") { Description = "The float .onnx model" };
        var config = new Option<FileInfo>("--config", "-c") { Description = "The quantization config (.yaml or .json)", Required = true };
        var qat = new Option<FileInfo>("--qat") { Description = "The exported NAME.qat.onnx", Required = true };
        var (quantized, compiled) = StageModelOptions.Create();
        var outFile = new Option<FileInfo>("--out", "-o") { Description = "The baseline .json file to (re)write", Required = true };
        var name = new Option<string?>("--name") { Description = "The model's name in messages (default: the model file name)" };

        var update = new Command("update", "Rewrite the baseline from the current metrics (every float output's worst-sample metrics, the aggregates the thresholds read, and evaluator metrics)")
            { model, config, qat, quantized, compiled, outFile, name };
        update.SetAction((parse, cancel) =>
        {
            var target = parse.GetValue(outFile)!.FullName;
            var request = new CheckRequest
            {
                ModelPath = parse.GetValue(model)!.FullName,
                QatModelPath = parse.GetValue(qat)!.FullName,
                QuantizedModelPath = parse.GetValue(quantized)?.FullName,
                CompiledModelPath = parse.GetValue(compiled)?.FullName,
                ConfigPath = parse.GetValue(config)!.FullName,
                OutputDirectory = Path.GetDirectoryName(target)!,
                Name = parse.GetValue(name),
            };
            return Task.FromResult(CliErrors.Guard(() =>
            {
                var m = StageProgressView.Run(progress => CheckStage.Measure(request, progress, cancel));
                var baseline = CheckStage.BaselineOf(m);
                AtomicText.Write(target, baseline.Render());
                int values = baseline.Stages.Values.Sum(s => s.Outputs.Values.Sum(o => o.Count) + s.Evaluators.Count);
                Console.WriteLine($"{m.Name}: baseline of {values} values over {m.SampleCount} samples written to {target}");
                return 0;
            }));
        });
        return new Command("baseline", "Manage the committed baseline of accepted metrics") { update, Resolve() };
    }

    /// <summary>
    /// <c>quant-check baseline resolve package:ID[@VERSION]</c>: which exact package version a package baseline means
    /// now (fetched into the global packages folder, its NAME.check.json found). A build runs it for a floating
    /// <c>package:ID</c> every time and re-runs the check only when the answer (the --out file) changes.
    /// </summary>
    private static Command Resolve()
    {
        var spec = new Argument<string>("package") { Description = "package:ID (the newest version) or package:ID@VERSION" };
        var name = new Option<string>("--name") { Description = "The model's OutputName: its NAME.check.json must be in the package", Required = true };
        var project = new Option<FileInfo?>("--project") { Description = "The project whose nuget.config gives the package sources, and where problems are reported (default: the current folder)" };
        var outFile = new Option<FileInfo?>("--out", "-o") { Description = "A file to write the exact package:ID@VERSION to (rewritten only when it changes)" };
        var resolve = new Command("resolve", "Resolve a package: baseline to its exact version and fetch it into the global packages folder") { spec, name, project, outFile };
        resolve.SetAction((parse, cancel) => Task.FromResult(CliErrors.Guard(() =>
        {
            var text = parse.GetValue(spec)!;
            var projectPath = parse.GetValue(project)?.FullName;
            if (!PackageBaselineSpec.Is(text)) throw new CliUsageException($"'{text}' is not a package baseline (package:ID or package:ID@VERSION)");
            var baseline = Baseline.Open(text, parse.GetValue(name)!, projectPath, cancel);
            Console.WriteLine($"{text} -> {baseline.Label}");
            if (parse.GetValue(outFile)?.FullName is { } target)
            {
                var content = baseline.Spec + "\n";
                if (!File.Exists(target) || File.ReadAllText(target) != content) AtomicText.Write(target, content);
            }
            return 0;
        })));
        return resolve;
    }
}
