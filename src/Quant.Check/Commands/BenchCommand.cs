using System.CommandLine;
using System.Globalization;
using Quant.Core.DeploymentRuntime;
using Quant.Core.Diagnostics;
using Quant.Check.Output;

namespace Quant.Check.Commands;

/// <summary>
/// <c>quant-check bench</c>: latency of a float model and its qat model in ONNX Runtime (all optimizations: what a
/// deployment runs) and in the engine, in one process, taking turns so the ratios survive a drifting machine.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = new Argument<FileInfo>("model") { Description = "The float .onnx model" };
        var qat = new Option<FileInfo?>("--qat") { Description = "Its quantized NAME.qat.onnx (from quant-check export), timed alongside" };
        var threads = new Option<int>("--threads") { Description = "Threads per kernel in both runtimes", DefaultValueFactory = _ => 1 };
        var repeat = new Option<int>("--repeat") { Description = "Timed runs per model and runtime (medians are reported)", DefaultValueFactory = _ => 20 };
        var inputs = new Option<string[]>("--input", "-i")
        {
            Description = "NAME=FILE.npy for each model input (default: deterministic generated values of the declared shape)",
            AllowMultipleArgumentsPerToken = true,
        };
        var shapes = new Option<string[]>("--shape") { Description = "NAME=1x3x640x640: the size of a generated input whose shape has symbolic dimensions", AllowMultipleArgumentsPerToken = true };
        var json = new Option<FileInfo?>("--json") { Description = "Also write the medians, ratios and every timed run to this JSON file" };

        var cmd = new Command("bench", "Time a float model and its qat model in ONNX Runtime and in the engine")
            { model, qat, threads, repeat, inputs, shapes, json };
        cmd.SetAction(parse => CliErrors.Guard(() => Run(parse.GetValue(model)!, parse.GetValue(qat), parse.GetValue(threads), parse.GetValue(repeat),
            parse.GetValue(inputs) ?? [], parse.GetValue(shapes) ?? [], parse.GetValue(json))));
        return cmd;
    }

    private static int Run(FileInfo model, FileInfo? qat, int threads, int repeat, string[] inputSpecs, string[] shapeSpecs, FileInfo? json)
    {
        if (threads < 1) throw new CliUsageException("--threads must be at least 1");
        if (repeat < 1) throw new CliUsageException("--repeat must be at least 1");
        var feeds = BenchInputs.Prepare(model.FullName, inputSpecs, shapeSpecs);
        var result = RuntimeBenchmark.Run(model.FullName, qat?.FullName, feeds, threads, repeat);
        Print(result);
        if (json is not null)
        {
            AtomicText.Write(json.FullName, result.ToJson());
            Console.WriteLine($"json: {json.FullName}");
        }
        return 0;
    }

    private static void Print(BenchResult r)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"ONNX Runtime {r.OrtVersion} (optimizations all) and the Quant.Build engine, {r.Threads} thread(s), " +
            $"median of {r.Repeat} runs each in {r.Rounds} alternating rounds; inputs " +
            string.Join(", ", r.InputShapes.Select(kv => $"{kv.Key} {string.Join("x", kv.Value)}")));
        string[] head = ["model", "engine ms", "ORT ms", "engine / ORT"];
        var rows = new List<IReadOnlyList<string>>();
        foreach (var m in r.Qat is null ? [r.Float] : new[] { r.Float, r.Qat })
            rows.Add([m.Label, m.EngineMedian.ToString("F2", inv), m.OrtMedian.ToString("F2", inv), m.EngineOverOrt.ToString("F2", inv)]);
        ConsoleTable.Write(head, rows);
        if (r.Qat is not null)
        {
            Console.WriteLine($"qat speed-up in ONNX Runtime (float ms / qat ms): {r.QatSpeedupInOrt!.Value.ToString("F2", inv)}x — what int8 buys in the deployment runtime");
            Console.WriteLine($"qat speed-up in the engine: {r.QatSpeedupInEngine!.Value.ToString("F2", inv)}x (the engine runs Q/DQ nodes as written; it simulates, it does not accelerate)");
        }
    }
}
