using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Quant.Check.Output;
using Quant.Core.Analysis.Compare;

namespace Quant.Check.Commands;

/// <summary>
/// <c>quant-check compare</c>: hmct-debugger's layer-wise comparison. Every tensor of the float model against what
/// the qat model (and the quantized and compiled models, when given) computes for it, with Horizon's failure
/// patterns flagged and a fix for each.
/// </summary>
internal static class CompareCommand
{
    /// <summary>How many of the worst tensors the console shows (the files hold all).</summary>
    private const int ConsoleRows = 15;

    public static Command Create()
    {
        var model = new Argument<FileInfo>("float") { Description = "The float .onnx model" };
        var qat = new Argument<FileInfo>("qat") { Description = "Its exported NAME.qat.onnx" };
        var quantized = new Option<FileInfo?>("--quantized") { Description = "The convert stage's NAME.quantized.onnx, compared layer by layer too" };
        var compiled = new Option<FileInfo?>("--compiled") { Description = "The compile stage's NAME.qbm, compared layer by layer too (Quant.Runtime)" };
        var config = new Option<FileInfo?>("--config", "-c") { Description = "The quantization config: its inputs give the data and the preprocessing" };
        var data = new Option<string[]>("--data") { Description = "Data glob(s) for the model's single input, replacing the config's (without --config the files are fed as stored)", AllowMultipleArgumentsPerToken = false };
        var samples = new Option<int>("--samples", "-d") { Description = "How many samples to pool (the first of the data)", DefaultValueFactory = _ => 4 };
        var outDir = new Option<DirectoryInfo?>("--out", "-o") { Description = "Folder for NAME.compare.json and NAME.compare.txt (default: the current folder)" };
        var name = new Option<string?>("--name") { Description = "Artifact base name (default: the float model's file name)" };
        var threads = new Option<int>("--threads") { Description = "Threads per kernel (default: all cores)", DefaultValueFactory = _ => Environment.ProcessorCount };

        var cmd = new Command("compare", "Compare the float and qat models layer by layer (and the quantized and compiled ones): per tensor cosine, SQNR, ranges, " +
                                         "scale and clipping, with flags for too little int8 resolution, unnormalized inputs, mismatched input ranges, float16 overflow and the first NaN/Inf")
            { model, qat, quantized, compiled, config, data, samples, outDir, name, threads };
        cmd.SetAction((parse, cancel) =>
        {
            var globs = parse.GetValue(data) is { Length: > 0 } g ? g : null;
            var request = new CompareRequest
            {
                FloatModelPath = parse.GetValue(model)!.FullName,
                QatModelPath = parse.GetValue(qat)!.FullName,
                QuantizedModelPath = parse.GetValue(quantized)?.FullName,
                CompiledModelPath = parse.GetValue(compiled)?.FullName,
                ConfigPath = parse.GetValue(config)?.FullName,
                Data = globs,
                Samples = parse.GetValue(samples),
                OutputDirectory = parse.GetValue(outDir)?.FullName ?? Directory.GetCurrentDirectory(),
                Name = parse.GetValue(name),
                Threads = Math.Max(1, parse.GetValue(threads)),
            };
            return Task.FromResult(CliErrors.Guard(() =>
            {
                if (request.ConfigPath is null && globs is null) throw new CliUsageException("give the data: --config Q.yaml (data and preprocessing) or --data GLOB");
                CliFiles.RequireInput(request.FloatModelPath, "float model");
                CliFiles.RequireInput(request.QatModelPath, "qat model");
                return CliLock.Holding(request.OutputDirectory, request.Name ?? Path.GetFileNameWithoutExtension(request.FloatModelPath), () => Run(request, cancel), cancel);
            }));
        });
        return cmd;
    }

    private static int Run(CompareRequest request, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        var r = StageProgressView.Run(progress => LayerCompare.Run(request, progress, cancel));
        Console.WriteLine($"{r.Name}: {r.Tensors.Count} tensors compared over {r.Samples} samples ({string.Join(", ", r.Stages.Select(s => s.Name()))})" +
                          (r.Unmatched.Count > 0 ? $"; {r.Unmatched.Count} float tensors not in the qat model" : ""));
        var worst = CompareReport.Worst(r).Take(ConsoleRows).ToList();
        Console.WriteLine($"worst {worst.Count} tensors by cosine (float vs qat):");
        ConsoleTable.Write(CompareReport.Head(r.Stages), worst.Select(i => CompareReport.Row(r, i)));
        Console.WriteLine(r.Findings.Count == 0 ? "findings: none" : $"findings ({r.Findings.Count}):");
        foreach (var f in r.Findings) Console.WriteLine($"  [{f.Flag}] {f.Message}");
        Console.WriteLine($"results:  {r.JsonPath}");
        Console.WriteLine($"table:    {r.TextPath}");
        Console.WriteLine($"done in {clock.Elapsed.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture)} s");
        return 0;
    }
}
