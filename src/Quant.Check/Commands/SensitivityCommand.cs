using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Quant.Check.Output;
using Quant.Core.Analysis.Sensitivity;
using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Core.Precision;
using Quant.Core.Stages;

namespace Quant.Check.Commands;

/// <summary>
/// <c>quant-check sensitivity</c>: hmct-debugger's get-sensitivity-of-nodes (the same -n/-m/-o/-d/-i options), in mode
/// alone (HMCT's) or restore, and optionally the threshold sweep (docs/sensitivity.md).
/// </summary>
internal static class SensitivityCommand
{
    public static Command Create()
    {
        var model = new Argument<FileInfo>("model") { Description = "The float .onnx model" };
        var config = new Option<FileInfo>("--config", "-c") { Description = "The quantization config (.yaml or .json)", Required = true };
        var outDir = new Option<DirectoryInfo>("--out") { Description = "Folder for NAME.sensitivity.json/.csv (and NAME.sweep.json); the calibration cache is read from and written here unless --cache says otherwise", Required = true };
        var type = new Option<string>("--node-type", "-n") { Description = "node: score nodes; weight: only their weight inputs quantized; activation: only activation tensors", DefaultValueFactory = _ => "node" };
        var metrics = new Option<string[]>("--metrics", "-m") { Description = "Metrics: cosine, mse, mre, sqnr, chebyshev, l1, l2 (ranked by the first)", AllowMultipleArgumentsPerToken = true };
        var outputs = new Option<string[]>("--outputs", "-o") { Description = "Model outputs to score (default: every float output)", AllowMultipleArgumentsPerToken = true };
        var samples = new Option<int?>("--data-num", "-d") { Description = "Calibration samples to score on (the first ones; default 8, or all when the data has fewer)" };
        var nodes = new Option<string[]>("--interested-nodes", "-i") { Description = "Only these candidates (node names; tensor names for -n activation)", AllowMultipleArgumentsPerToken = true };
        var mode = new Option<string>("--mode") { Description = "alone: only the candidate quantized (HMCT); restore: everything quantized, the candidate restored to float32", DefaultValueFactory = _ => "alone" };
        var top = new Option<int>("--top") { Description = "Rows of the console table (the files hold every candidate)", DefaultValueFactory = _ => 20 };
        var sweep = new Option<string[]>("--sweep") { Description = "Threshold sweep: promote every candidate at least as sensitive as each threshold (default: the most sensitive 5/10/20/30/50 %)", AllowMultipleArgumentsPerToken = true, Arity = ArgumentArity.ZeroOrMore };
        var to = new Option<string>("--to") { Description = "The sweep's promotion: int16, float16 or float32", DefaultValueFactory = _ => "int16" };
        var name = new Option<string?>("--name") { Description = "Artifact base name (default: the model file name)" };
        var threads = new Option<int>("--threads") { Description = "Threads per kernel (default: all cores)", DefaultValueFactory = _ => Environment.ProcessorCount };
        var cache = new Option<DirectoryInfo?>("--cache") { Description = "Folder of the calibration statistics cache (default: --out, as for export)" };
        var cmd = new Command("sensitivity", "Rank nodes by how much their quantization moves the outputs (hmct-debugger get-sensitivity-of-nodes); optionally sweep promotion thresholds")
            { model, config, outDir, type, metrics, outputs, samples, nodes, mode, top, sweep, to, name, threads, cache };
        cmd.SetAction((parse, cancel) => Task.FromResult(CliErrors.Guard(() =>
        {
            var request = new ExportRequest
            {
                ModelPath = parse.GetValue(model)!.FullName,
                ConfigPath = parse.GetValue(config)!.FullName,
                OutputDirectory = parse.GetValue(outDir)!.FullName,
                Name = parse.GetValue(name),
                Threads = Math.Max(1, parse.GetValue(threads)),
                CacheDirectory = parse.GetValue(cache)?.FullName,
            };
            var options = new SensitivityOptions
            {
                Type = SensitivityOptions.TypeOf(parse.GetValue(type)!) ?? throw new CliUsageException($"-n '{parse.GetValue(type)}': give node, weight or activation"),
                Mode = SensitivityOptions.ModeOf(parse.GetValue(mode)!) ?? throw new CliUsageException($"--mode '{parse.GetValue(mode)}': give alone or restore"),
                Metrics = parse.GetValue(metrics) is { Length: > 0 } ms ? ms.Select(NodeSensitivity.MetricOf).Distinct().ToList() : [CheckMetric.Cosine],
                Outputs = parse.GetValue(outputs) is { Length: > 0 } os ? os : null,
                Samples = parse.GetValue(samples) ?? SensitivityOptions.DefaultSamples,
                SamplesAtMost = parse.GetValue(samples) is null,
                Nodes = parse.GetValue(nodes) is { Length: > 0 } ns ? ns : null,
            };
            bool sweeping = parse.GetResult(sweep) is not null;
            var thresholds = sweeping ? Thresholds(parse.GetValue(sweep) ?? []) : null;
            var target = Target(parse.GetValue(to)!);
            using var held = ModelLock.Acquire(request.OutputDirectory, request.Name ?? Path.GetFileNameWithoutExtension(request.ModelPath), CliLock.Announce, cancel: cancel);
            return Run(request, options, Math.Max(1, parse.GetValue(top)), sweeping, thresholds, target, cancel);
        })));
        return cmd;
    }

    private static List<double> Thresholds(string[] texts)
    {
        var list = new List<double>();
        foreach (var t in texts.SelectMany(x => x.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
        {
            if (!double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v))
                throw new QuantException(ErrorCode.SweepInvalidThreshold, SourcePosition.InFile("--sweep"), $"'{t}' is not a number; give thresholds of the first metric, e.g. --sweep 0.999 0.995");
            list.Add(v);
        }
        return list;
    }

    private static QType Target(string text) => text switch
    {
        "int16" => QType.Int16,
        "float16" => QType.Float16,
        "float32" => QType.Float32,
        _ => throw new QuantException(ErrorCode.SweepInvalidTarget, SourcePosition.InFile("--to"), $"--to '{text}': give int16, float16 or float32"),
    };

    private static int Run(ExportRequest request, SensitivityOptions options, int top, bool sweeping, List<double>? thresholds, QType to, CancellationToken cancel)
    {
        string name = request.Name ?? Path.GetFileNameWithoutExtension(request.ModelPath);
        var inv = CultureInfo.InvariantCulture;
        var clock = Stopwatch.StartNew();
        var (result, sweep, prepared) = StageProgressView.Run(progress =>
        {
            var (cal, q, _) = NodeSensitivity.Prepare(request, progress, cancel);
            double ready = clock.Elapsed.TotalSeconds;
            var r = NodeSensitivity.Run(cal, q, options, progress, cancel);
            SweepResult? s = null;
            if (sweeping)
                s = ThresholdSweep.Run(cal, q, r, thresholds, to, Path.Combine(request.OutputDirectory, name + ".sweep.evaluator"), progress, cancel);
            return (r, s, (ready, cal.Run.FromCache));
        });
        Directory.CreateDirectory(request.OutputDirectory);
        var json = Path.Combine(request.OutputDirectory, name + ".sensitivity.json");
        var csv = Path.Combine(request.OutputDirectory, name + ".sensitivity.csv");
        AtomicText.Write(json, result.RenderJson());
        AtomicText.Write(csv, result.RenderCsv());

        Console.WriteLine($"calibration: {(prepared.FromCache ? "statistics from cache" : "collected")}; ready in {prepared.ready.ToString("F1", inv)} s");
        Console.WriteLine($"{SensitivityOptions.Name(options.Type)} sensitivity, mode {SensitivityOptions.Name(options.Mode)}, {result.Samples} samples, " +
            $"{result.Candidates.Count} candidates ({(options.Mode == SensitivityMode.Alone ? "worst first" : "best first: restoring helps most")})");
        foreach (var n in result.Notes) Console.WriteLine("note: " + n);
        var head = new List<string> { "#", "name", "op_type", "qtype" };
        head.AddRange(result.Metrics.Select(SensitivityResult.MetricName));
        ConsoleTable.Write(head, result.Candidates.Take(top).Select((c, k) =>
        {
            var row = new List<string> { (k + 1).ToString(inv), c.Name, c.Candidate.OpType, c.Candidate.QType };
            row.AddRange(result.Metrics.Select(m => Format(c.Worst(m))));
            return (IReadOnlyList<string>)row;
        }).ToList());
        if (result.Candidates.Count > top) Console.WriteLine($"({result.Candidates.Count - top} more in {Path.GetFileName(csv)})");
        Console.WriteLine($"{result.SecondsPerCandidate.ToString("F3", inv)} s per candidate; first result {result.SecondsToFirstResult.ToString("F2", inv)} s after the base runs ({result.SecondsForBaseRuns.ToString("F1", inv)} s)");
        if (sweep is not null) PrintSweep(sweep, request.OutputDirectory, name);
        Console.WriteLine($"sensitivity:  {json}");
        Console.WriteLine($"              {csv}");
        return 0;
    }

    private static void PrintSweep(SweepResult sweep, string dir, string name)
    {
        var inv = CultureInfo.InvariantCulture;
        var s = sweep.Sensitivity;
        var metric = s.Metrics[0];
        Console.WriteLine();
        Console.WriteLine($"threshold sweep: promote to {PrecisionPlan.QTypeText(sweep.To)} every candidate at least as sensitive as the threshold ({SensitivityResult.MetricName(metric)})");
        var head = new List<string> { "threshold", "promoted", "share" };
        head.AddRange(s.Outputs.Select(o => $"{o} {SensitivityResult.MetricName(metric)}"));
        if (sweep.EvaluatorMetric is { } e) head.Add(e);
        ConsoleTable.Write(head, sweep.Rows.Select(r =>
        {
            var row = new List<string>
            {
                r.Threshold is { } t ? Format(t) : "(config)", r.Candidates.Count.ToString(inv), (100 * r.Share).ToString("F1", inv) + " %",
            };
            row.AddRange(s.Outputs.Select(o => Format(r.Scores.Of(o, metric))));
            if (sweep.EvaluatorMetric is not null) row.Add(r.Evaluator is { } v ? Format(v) : "");
            return (IReadOnlyList<string>)row;
        }).ToList());
        var path = Path.Combine(dir, name + ".sweep.json");
        AtomicText.Write(path, SweepReport.RenderJson(sweep));
        Console.WriteLine($"sweep:        {path}");
    }

    private static string Format(double v) => double.IsFinite(v) ? v.ToString("G7", CultureInfo.InvariantCulture) : SensitivityResult.Format(v);
}
