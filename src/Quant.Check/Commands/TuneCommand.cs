using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Quant.Check.Output;
using Quant.Core.Diagnostics;
using Quant.Core.Tuning;

namespace Quant.Check.Commands;

/// <summary><c>quant-check tune</c>: automatic mixed precision toward the config's <c>tune.targets</c> (docs/tuning.md).</summary>
internal static class TuneCommand
{
    public static Command Create()
    {
        var model = new Argument<FileInfo>("model") { Description = "The float .onnx model" };
        var config = new Option<FileInfo>("--config", "-c") { Description = "The quantization config with a tune: section (targets)", Required = true };
        var outDir = new Option<DirectoryInfo>("--out", "-o") { Description = "Folder for NAME.tuned.yaml, NAME.tune.json and the calibration cache", Required = true };
        var name = new Option<string?>("--name") { Description = "Artifact base name (default: the model file name)" };
        var cache = new Option<DirectoryInfo?>("--cache") { Description = "Folder for the calibration statistics cache (default: --out)" };
        var threads = new Option<int>("--threads") { Description = "Threads per kernel (default: all cores)", DefaultValueFactory = _ => Environment.ProcessorCount };
        var data = new Option<string[]>("--data") { Description = "Evaluation data glob(s) for the model's single input, samples not used for calibration (default: held-out calibration samples)" };
        var candidates = new Option<string?>("--candidates") { Description = "Changes to try, in order: int16, ec, dual_int16, float16, float32 per node, subgraph_int16, subgraph_float16 per branch where sensitive nodes cluster (default: tune.candidates, else int16,ec,dual_int16)" };
        var budget = new Option<string?>("--budget") { Description = "Time budget, e.g. 90s, 10m (default: tune.budget, else 10m)" };
        var cmd = new Command("tune", "Find the cheapest mixed-precision config that meets the tune targets (automatic mixed precision)")
            { model, config, outDir, name, cache, threads, data, candidates, budget };
        cmd.SetAction((parse, cancel) => Task.FromResult(CliErrors.Guard(() =>
        {
            var cli = SourcePosition.InFile("quant-check tune");
            var request = new TuneRequest
            {
                ModelPath = parse.GetValue(model)!.FullName,
                ConfigPath = parse.GetValue(config)!.FullName,
                OutputDirectory = parse.GetValue(outDir)!.FullName,
                Name = parse.GetValue(name),
                CacheDirectory = parse.GetValue(cache)?.FullName,
                Threads = Math.Max(1, parse.GetValue(threads)),
                // Globs on the command line are relative to the current folder.
                EvaluationData = parse.GetValue(data) is { Length: > 0 } globs ? globs.Select(Path.GetFullPath).ToList() : null,
                Candidates = parse.GetValue(candidates) is { } c ? TuneCandidates.ParseList(c, cli with { File = "--candidates" }) : null,
                Budget = parse.GetValue(budget) is { } b ? TuneConfig.ParseBudget(b, cli with { File = "--budget" }) : null,
                Log = line => Console.Error.WriteLine(line),
            };
            return CliLock.Holding(request.OutputDirectory, request.Name ?? Path.GetFileNameWithoutExtension(request.ModelPath), () => Run(request, cancel), cancel);
        })));
        return cmd;
    }

    private static int Run(TuneRequest request, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        var result = Tuner.Run(request, new ProgressLines(Console.Error, () => clock.Elapsed), cancel);
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"evaluated {result.Visited.Count} configurations on {result.EvaluationData} in {ProgressLines.Duration(result.Elapsed)}" +
            (result.StoppedByBudget ? " (stopped by the budget)" : ""));
        Console.WriteLine($"cost model: {TuneCost.Description}");
        foreach (var (key, value) in result.FloatValues) Console.WriteLine($"float model: {key} {value.ToString("G6", inv)}");
        Console.WriteLine();
        Console.WriteLine("cost / accuracy Pareto points visited");
        var head = new List<string> { "step", "changes", "cost", "vs baseline" };
        head.AddRange(result.Targets.Select(t => t.Key));
        head.Add("meets");
        double baseCost = result.Baseline.Cost;
        ConsoleTable.Write(head, result.Visited.Where(p => p.Pareto || p == result.Best).OrderBy(p => p.Cost).Select(p =>
        {
            var row = new List<string>
            {
                p.Step.ToString(inv) + (p == result.Best ? " (best)" : ""), p.Changes.Count.ToString(inv), p.Cost.ToString("G6", inv),
                (baseCost > 0 ? (p.Cost / baseCost - 1) * 100 : 0).ToString("+0.0;-0.0;0.0", inv) + " %",
            };
            row.AddRange(result.Targets.Select(t => p.Values[t.Key].ToString("G6", inv)));
            row.Add(p.Meets ? "yes" : "no");
            return (IReadOnlyList<string>)row;
        }).ToList());
        Console.WriteLine();
        if (result.Best.Changes.Count > 0)
        {
            Console.WriteLine("changes in the best configuration");
            ConsoleTable.Write(["node", "op", "change", "cost"], result.Best.Changes.Select(c =>
                (IReadOnlyList<string>)[c.Subgraph is { } b ? $"{c.Node} ({b.Nodes.Count} nodes, {b.Nodes[0]} .. {b.Nodes[^1]})" : c.Node,
                    c.OpType, TuneCandidates.Of(c.Change), c.Cost.ToString("G6", inv)]).ToList());
            Console.WriteLine();
        }
        Console.WriteLine($"tuned config: {result.TunedConfigPath}");
        Console.WriteLine($"report:       {result.ReportPath}");
        if (result.Met) return 0;

        // Missed: the best configuration is written anyway; say which target, how close, and what to try.
        foreach (var t in result.Targets.Where(t => !t.Meets(result.Best.Values[t.Key])))
            Console.Error.WriteLine(new QuantException(ErrorCode.TuneTargetMissed, t.Position,
                $"tune target {t.BoundText()} missed: best reached {result.Best.Values[t.Key].ToString("G6", inv)} (baseline {result.Baseline.Values[t.Key].ToString("G6", inv)}) " +
                $"at step {result.Best.Step} with {result.Best.Changes.Count} change(s), written to {Path.GetFileName(result.TunedConfigPath)}; " +
                (result.StoppedByBudget ? "the budget ran out: give more time (--budget), " : "") +
                "try more candidates (--candidates int16,ec,dual_int16,float16,float32,subgraph_float16), more calibration data, or a looser bound").ToDiagnostic());
        return CliErrors.Failure;
    }
}
