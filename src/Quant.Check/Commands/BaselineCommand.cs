using System.CommandLine;
using Quant.Check.Output;
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
        var outFile = new Option<FileInfo>("--out", "-o") { Description = "The baseline .json file to (re)write", Required = true };
        var name = new Option<string?>("--name") { Description = "The model's name in messages (default: the model file name)" };

        var update = new Command("update", "Rewrite the baseline from the current metrics (every float output's worst-sample metrics, the aggregates the thresholds read, and evaluator metrics)")
            { model, config, qat, outFile, name };
        update.SetAction((parse, cancel) =>
        {
            var target = parse.GetValue(outFile)!.FullName;
            var request = new CheckRequest
            {
                ModelPath = parse.GetValue(model)!.FullName,
                QatModelPath = parse.GetValue(qat)!.FullName,
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
        return new Command("baseline", "Manage the committed baseline of accepted metrics") { update };
    }
}
