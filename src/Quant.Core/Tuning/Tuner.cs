using System.Diagnostics;
using System.Globalization;
using Quant.Core.Analysis.Sensitivity;
using Quant.Core.Config;
using Quant.Core.Data;
using Quant.Core.Diagnostics;
using Quant.Core.Stages;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Tuning;

/// <summary>What <c>quant-check tune</c> is asked to do.</summary>
public sealed class TuneRequest
{
    public required string ModelPath { get; init; }
    public required string ConfigPath { get; init; }
    public required string OutputDirectory { get; init; }
    public string? Name { get; init; }
    /// <summary>Where the calibration statistics cache lives (default: the output directory).</summary>
    public string? CacheDirectory { get; init; }
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>Evaluation data globs for the model's single input (absolute, or relative to the config); null: the held-out calibration samples.</summary>
    public IReadOnlyList<string>? EvaluationData { get; init; }
    /// <summary>Overrides tune.candidates.</summary>
    public IReadOnlyList<TuneChange>? Candidates { get; init; }
    /// <summary>Overrides tune.budget (default 10 minutes).</summary>
    public TimeSpan? Budget { get; init; }
    /// <summary>The node ranking; null: <see cref="SensitivityRanking"/>.</summary>
    public Func<TuneContext, NodeRanking>? Ranking { get; init; }
    /// <summary>Where progress lines go (one per evaluation).</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>What every evaluation of one tuning run shares (for rankings built on it).</summary>
public sealed record TuneContext(CalibratedModel Calibrated, QuantizedModel Baseline, TuneEvaluation Evaluation, Func<IReadOnlyDictionary<string, TuneChange>, QuantConfig> ConfigFor);

/// <summary>What the tuner found.</summary>
public sealed class TuneResult
{
    public required IReadOnlyList<TuneTarget> Targets { get; init; }
    public required TunePoint Baseline { get; init; }
    public required TunePoint Best { get; init; }
    public required IReadOnlyList<TunePoint> Visited { get; init; }
    public required string TunedConfigPath { get; init; }
    public required string ReportPath { get; init; }
    public required bool StoppedByBudget { get; init; }
    public required int EvaluationSamples { get; init; }
    public required string EvaluationData { get; init; }
    public required int CandidateNodes { get; init; }
    public required TimeSpan Elapsed { get; init; }
    /// <summary>Each evaluator target's value on the float model.</summary>
    public required IReadOnlyDictionary<string, double> FloatValues { get; init; }
    public bool Met => Best.Meets;
}

/// <summary>
/// <c>quant-check tune</c>: automatic mixed precision. Every configuration tried is the user's config with node_config
/// entries added, derived from the cached calibration statistics exactly as the export derives it
/// (<see cref="ExportStage.Quantize"/>: same plan, same calibration choice, same scales) and measured on the evaluation
/// samples; the search (<see cref="TuneSearch"/>) looks for the cheapest (<see cref="TuneCost"/>) that meets every
/// target. The best configuration found is always written, also when the targets are missed.
/// </summary>
public static class Tuner
{
    public static readonly TimeSpan DefaultBudget = TimeSpan.FromMinutes(10);

    public static TuneResult Run(TuneRequest request, IProgress<StageProgress>? progress = null, CancellationToken cancel = default)
    {
        var clock = Stopwatch.StartNew();
        string name = request.Name ?? Path.GetFileNameWithoutExtension(request.ModelPath);
        var outDir = Path.GetFullPath(request.OutputDirectory);
        Directory.CreateDirectory(outDir);
        var configPath = Path.GetFullPath(request.ConfigPath);
        var userConfig = QuantConfigLoader.Load(configPath);
        var userText = File.ReadAllText(configPath);
        var tunedPath = Path.Combine(outDir, name + ".tuned.yaml");
        // The branches the search may promote (found after the ranking), by name.
        var branches = new Dictionary<string, TuneSubgraph>(StringComparer.Ordinal);
        QuantConfig ConfigFor(IReadOnlyDictionary<string, TuneChange> changes) =>
            QuantConfigLoader.Parse(TunedConfigWriter.Render(userText, configPath, outDir, changes, branches), tunedPath);

        var exportRequest = new ExportRequest
        {
            ModelPath = request.ModelPath, ConfigPath = tunedPath, OutputDirectory = outDir, Name = name,
            CacheDirectory = request.CacheDirectory, Threads = request.Threads,
        };
        // Targets first: a mistake there is reported before the calibration pass.
        var floatOutputs = StageModels.Load(request.ModelPath).Graph.Outputs
            .Where(o => o.Type is ElementType.Float or ElementType.Float16 or ElementType.Double or ElementType.Undefined).Select(o => o.Name).ToList();
        var settings = TuneConfig.Read(userConfig, floatOutputs);
        if (settings.Targets.Count == 0)
            throw new QuantException(ErrorCode.TuneNoTargets, userConfig.Tune is null ? SourcePosition.InFile(configPath) : userConfig.TunePosition,
                "the tuner has no target; add e.g. 'tune: {targets: {out: {output: \"*\", cosine: {min: 0.999}}}}' to the config (docs/tuning.md)");
        var basis = ExportStage.Calibrate(exportRequest, ConfigFor(new Dictionary<string, TuneChange>()), request.CacheDirectory ?? outDir, name, progress, cancel);
        var candidates = request.Candidates ?? settings.Candidates ?? TuneCandidates.Default;
        var budget = request.Budget ?? settings.Budget ?? DefaultBudget;

        var (samples, dataText) = EvaluationSamples(request, basis, configPath);
        var environment = new Dictionary<string, string>
        {
            ["QUANT_MODEL_NAME"] = name, ["QUANT_STAGE"] = "tune", ["QUANT_MODEL"] = Path.GetFullPath(request.ModelPath), ["QUANT_CONFIG"] = configPath,
        };
        using var evaluation = new TuneEvaluation(samples, settings.Targets, basis.FloatSession, request.ModelPath, basis.SessionOptions,
            // Scratch for the evaluator folders (a megabyte per rec sample, rewritten per configuration): the system's
            // temporary folder (TMPDIR), removed at the end.
            Path.Combine(Path.GetTempPath(), $"quant-tune-{name}-{Environment.ProcessId}"), userConfig.BaseDirectory, environment);
        var cost = new TuneCost(basis.Model, basis.FloatSession, samples[0].Inputs, request.ModelPath);

        progress?.Report(new StageProgress("baseline", 0, 1));
        var baseline = ExportStage.Quantize(basis, ConfigFor(new Dictionary<string, TuneChange>()), null, cancel);
        var baselinePlan = baseline.Plan;
        // Every integer node is ranked when branches are searched (a branch is built from the ranking); a node whose
        // ladder is empty is then ranked but never changed alone.
        bool searchBranches = candidates.Any(TuneCandidates.IsSubgraph);
        var ladders = baselinePlan.Nodes
            .Select(n => (n, Ladder: (IReadOnlyList<TuneChange>)candidates.Where(c => TuneCandidates.Applies(c, n)).ToList()))
            .Where(l => l.Ladder.Count > 0 || (searchBranches && TuneCandidates.Applies(TuneChange.Float32, l.n)))
            .Select(l => (l.n.Name, l.Ladder)).ToList();

        TimeSpan lastEvaluation = TimeSpan.Zero;
        int step = 0;
        bool OutOfTime() => clock.Elapsed + lastEvaluation > budget;
        var log = request.Log;
        TunePoint Evaluate(IReadOnlyDictionary<string, TuneChange> changes)
        {
            var started = clock.Elapsed;
            var derived = ExportStage.Quantize(basis, ConfigFor(changes), null, cancel);
            var values = evaluation.Measure(derived.QatModel, cancel);
            double Added(string node) => cost.Of(derived.Plan.ByName(node)!) - cost.Of(baselinePlan.ByName(node)!);
            var nodeChanges = changes.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c =>
            {
                if (TuneCandidates.IsSubgraph(c.Value))
                {
                    // A branch costs what its nodes add, except those a node change of their own sets.
                    var branch = branches[c.Key];
                    return new NodeChange(c.Key, "subgraph", c.Value, branch.Nodes.Where(n => !changes.ContainsKey(n)).Sum(Added), branch);
                }
                return new NodeChange(c.Key, derived.Plan.ByName(c.Key)!.OpType, c.Value, Added(c.Key));
            }).ToList();
            double slack = settings.Targets.Min(t => t.Slack(values[t.Key]));
            var point = new TunePoint(step++, cost.Of(derived.Plan), values, nodeChanges, settings.Targets.All(t => t.Meets(values[t.Key])), slack);
            lastEvaluation = clock.Elapsed - started;
            log?.Invoke(Describe(point, settings.Targets, changes.Count, lastEvaluation));
            return point;
        }

        var context = new TuneContext(basis, baseline, evaluation, ConfigFor);
        var search = new TuneSearch(Evaluate, OutOfTime, cancel);
        TunePoint best;
        progress?.Report(new StageProgress("baseline", 1, 1));
        // The baseline first: when it already meets the targets nothing needs ranking.
        var ranking = (request.Ranking ?? SensitivityRanking)(context);
        best = search.Run(() =>
        {
            progress?.Report(new StageProgress("ranking nodes", 0, ladders.Count));
            // The ranking may take at most half of the time left: the search needs the rest.
            var rankingEnds = clock.Elapsed + (budget - clock.Elapsed) / 2;
            var ranked = ranking(ladders.Select(l => l.Name).ToList(), () => clock.Elapsed > rankingEnds, cancel);
            var position = ranked.Select((r, i) => (r.Node, i)).ToDictionary(x => x.Node, x => x.i, StringComparer.Ordinal);
            log?.Invoke($"ranked {ranked.Count} of {ladders.Count} candidate nodes; most sensitive: {string.Join(", ", ranked.Take(5).Select(r => r.Node))}");
            // Nodes the ranking did not reach (budget) follow in graph order.
            var nodes = ladders.Select((l, i) => (l, i)).OrderBy(x => position.TryGetValue(x.l.Name, out var p) ? p : int.MaxValue).ThenBy(x => x.i)
                .Where(x => x.l.Ladder.Count > 0).Select(x => (x.l.Name, x.l.Ladder)).ToList();
            var branchChanges = candidates.Where(TuneCandidates.IsSubgraph).ToList();
            if (branchChanges.Count > 0)
            {
                var reserved = baselinePlan.Nodes.Select(n => n.Name).Concat(userConfig.Subgraphs.Keys).ToHashSet(StringComparer.Ordinal);
                foreach (var b in TuneSubgraphs.Find(baselinePlan, ranked.Select(r => r.Node).ToList(), reserved)) branches[b.Name] = b;
                log?.Invoke(branches.Count == 0 ? "no branch where sensitive nodes cluster"
                    : "branches where sensitive nodes cluster: " + string.Join("; ", branches.Values.Select(b => $"{b.Name} ({(b.IsSpan ? "span" : "cluster")}, {b.Nodes.Count} nodes, {b.Nodes[0]} .. {b.Nodes[^1]})")));
            }
            return new TuneMoves(nodes, branches.Values.ToList(), branchChanges);
        });

        var visited = search.Visited;
        var bestChanges = best.Changes.ToDictionary(c => c.Node, c => c.Change, StringComparer.Ordinal);
        AtomicText.Write(tunedPath, TunedConfigWriter.Render(userText, configPath, outDir, bestChanges, branches));
        var result = new TuneResult
        {
            Targets = settings.Targets, Baseline = visited[0], Best = best, Visited = visited, TunedConfigPath = tunedPath,
            ReportPath = Path.Combine(outDir, name + ".tune.json"), StoppedByBudget = search.StoppedByBudget,
            EvaluationSamples = samples.Count, EvaluationData = dataText, CandidateNodes = ladders.Count, Elapsed = clock.Elapsed,
            FloatValues = evaluation.FloatValues,
        };
        AtomicText.Write(result.ReportPath, TuneReport.RenderJson(result, Path.GetFileName(request.ModelPath), Path.GetFileName(configPath)));
        return result;
    }

    /// <summary>
    /// The samples every configuration is measured on: the --data files (preprocessed as the config's input says), else
    /// the calibration samples held out from the statistics candidates are fitted on (all of them in the statistics of the
    /// exported scales, so the evaluation is then somewhat optimistic).
    /// </summary>
    private static (IReadOnlyList<TuneSample> Samples, string Description) EvaluationSamples(TuneRequest request, CalibratedModel basis, string configPath)
    {
        if (request.EvaluationData is { Count: > 0 } globs)
        {
            var config = QuantConfigLoader.Load(configPath);
            CalibrationDataOverride.Apply(config, globs, basis.Model.Graph.RuntimeInputs, "--data");
            var data = CalibrationDataSet.Create(config, basis.Model.Graph.RuntimeInputs);
            var samples = data.Samples().Select((s, i) => new TuneSample(s, data.SampleLabel(i))).ToList();
            return (samples, $"--data: {samples.Count} samples");
        }
        var split = basis.Run.Split;
        var held = split.ScoredBatches.Select((b, k) => new TuneSample(basis.Run.ScoredInputs[k], basis.Data.SampleLabel(basis.Data.BatchSamples[b][0]))).ToList();
        return (held, split.IsHeldOut
            ? $"{held.Count} calibration samples held out from the fitted statistics ({split.Describe()})"
            : $"the first {held.Count} calibration samples (too few samples to hold any out)");
    }

    /// <summary>
    /// The default ranking: the sensitivity analysis in mode <c>restore</c> (Analysis/Sensitivity: everything quantized
    /// as the baseline, one node restored to float32, exact downstream-only re-runs), by the worst float output's
    /// cosine on the first 4 calibration samples. Nodes it does not score follow in graph order.
    /// </summary>
    public static NodeRanking SensitivityRanking(TuneContext context) => (nodes, outOfTime, cancel) =>
    {
        var scored = new List<RankedNode>();
        // In chunks, so that the ranking stops at its deadline (each chunk re-runs the base model on the samples once).
        foreach (var chunk in nodes.Chunk(RankingChunk))
        {
            if (outOfTime()) break;
            var options = new SensitivityOptions
            {
                Type = CandidateType.Node, Mode = SensitivityMode.Restore, Metrics = [CheckMetric.Cosine], Nodes = chunk,
                Samples = Math.Min(TuneEvaluation.RankingSamples, context.Calibrated.Data.SampleCount),
            };
            var result = NodeSensitivity.Run(context.Calibrated, context.Baseline, options, null, cancel);
            scored.AddRange(result.Candidates.Where(c => chunk.Contains(c.Name)).Select(c => new RankedNode(c.Name, c.Worst(CheckMetric.Cosine))));
        }
        // Most sensitive first: restoring it to float brings the outputs closest to float (a stable sort keeps graph order on ties).
        return scored.OrderByDescending(r => double.IsNaN(r.Score) ? double.NegativeInfinity : r.Score).ToList();
    };

    private const int RankingChunk = 24;

    private static string Describe(TunePoint p, IReadOnlyList<TuneTarget> targets, int changes, TimeSpan took)
    {
        var inv = CultureInfo.InvariantCulture;
        var values = string.Join(", ", targets.Select(t => $"{t.Key} {p.Values[t.Key].ToString("G6", inv)}{(t.Meets(p.Values[t.Key]) ? "" : " (missed)")}"));
        return $"step {p.Step}: {changes} change(s), cost {p.Cost.ToString("G6", inv)}, {values} ({took.TotalSeconds.ToString("F1", inv)} s)";
    }
}
