using System.Globalization;
using Quant.Core.Checks;
using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Core.Precision;
using Quant.Core.Stages;
using Quant.Engine;

namespace Quant.Core.Analysis.Sensitivity;

/// <summary>One row of the sweep: the candidates promoted at a threshold and what the export then scores.</summary>
public sealed class SweepRow
{
    /// <summary>Null for the first row: the config as written, nothing promoted.</summary>
    public required double? Threshold { get; init; }
    public required IReadOnlyList<string> Candidates { get; init; }
    /// <summary>The nodes node_config promotes (a candidate may stand for a GEMM-type node and its fused activation).</summary>
    public required IReadOnlyList<string> Nodes { get; init; }
    public required double Share { get; init; }
    public required OutputScores Scores { get; init; }
    /// <summary>The qat_vs_float evaluator's metric, when the config's checks have one.</summary>
    public double? Evaluator { get; init; }
}

/// <summary>What <see cref="ThresholdSweep.Run"/> measured.</summary>
public sealed class SweepResult
{
    public required SensitivityResult Sensitivity { get; init; }
    public required QType To { get; init; }
    public required IReadOnlyList<SweepRow> Rows { get; init; }
    /// <summary>The evaluator's metric name, when there is one.</summary>
    public string? EvaluatorMetric { get; init; }
}

/// <summary>
/// The threshold sweep: for each threshold of the first metric, every candidate at least as sensitive as it (in mode
/// alone: a score at or below the threshold for cosine/SQNR, at or above it for the error metrics; in mode restore the
/// other way round) is promoted to <c>to</c> through node_config (<c>qtype</c> of the candidate's nodes; for weight
/// candidates the weight inputs, <c>inputN</c>), the config is exported from the same statistics
/// (<see cref="ExportStage.Quantize"/>: no calibration pass) and the qat model is scored on the same samples.
/// </summary>
public static class ThresholdSweep
{
    /// <summary>Where in the ranking the default thresholds fall: the most sensitive 5 %, 10 %, 20 %, 30 % and 50 %.</summary>
    public static readonly double[] DefaultShares = [0.05, 0.10, 0.20, 0.30, 0.50];

    public static SweepResult Run(CalibratedModel cal, QuantizedModel q, SensitivityResult sensitivity, IReadOnlyList<double>? thresholds, QType to,
        string? evaluatorDirectory, IProgress<StageProgress>? progress = null, CancellationToken cancel = default)
    {
        if (to is QType.Int8)
            throw new QuantException(ErrorCode.SweepInvalidTarget, SourcePosition.InFile("--to"), "--to int8 promotes nothing (int8 is the lowest precision); give int16, float16 or float32");
        var metric = sensitivity.Metrics[0];
        var list = thresholds is { Count: > 0 } given ? given.ToList() : Defaults(sensitivity, metric);
        foreach (var t in list)
            if (!double.IsFinite(t))
                throw new QuantException(ErrorCode.SweepInvalidThreshold, SourcePosition.InFile("--sweep"), $"threshold {t.ToString(CultureInfo.InvariantCulture)} is not a finite number");

        var samples = cal.Data.Samples().Take(sensitivity.Samples).ToList();
        var references = samples.Select(s => StageModels.Run(cal.FloatSession, s, cal.ModelPath)).ToList();
        var evaluator = q.Config.CheckRules.Rules.FirstOrDefault(r => r.Stage == CheckStagePair.QatVsFloat && r.Evaluator is not null)?.Evaluator;
        string? referenceFolder = null;
        if (evaluator is not null && evaluatorDirectory is not null)
        {
            var reference = new OutputFolder(Path.Combine(evaluatorDirectory, "reference"));
            for (int s = 0; s < samples.Count; s++) reference.Add(s, cal.Data.SampleLabel(s), references[s]);
            reference.WriteIndex();
            referenceFolder = reference.Root;
        }

        var rows = new List<SweepRow>();
        var steps = new List<double?> { null };
        steps.AddRange(list.Distinct().Select(t => (double?)t));
        int total = steps.Count, done = 0;
        progress?.Report(new StageProgress("threshold sweep", 0, total));
        foreach (var threshold in steps)
        {
            cancel.ThrowIfCancellationRequested();
            var promoted = threshold is { } th ? sensitivity.Candidates.Where(c => AtLeastAsSensitive(c.Worst(metric), th, metric, sensitivity.Mode)).ToList() : [];
            var config = Promote(q.Config, q.Plan, promoted, sensitivity.Type, to);
            var variant = ReferenceEquals(config, q.Config) ? q : ExportStage.Quantize(cal, config, null, cancel);
            var session = StageModels.Session(variant.QatModel, cal.SessionOptions, cal.ModelPath);
            var scores = new OutputScores(sensitivity.Outputs);
            OutputFolder? outputs = referenceFolder is null ? null
                : new OutputFolder(Path.Combine(evaluatorDirectory!, "row" + rows.Count.ToString("D2", CultureInfo.InvariantCulture)));
            for (int s = 0; s < samples.Count; s++)
            {
                var actual = StageModels.Run(session, samples[s], cal.ModelPath);
                scores.Add(references[s], actual);
                outputs?.Add(s, cal.Data.SampleLabel(s), actual);
            }
            double? evaluated = null;
            if (outputs is not null)
            {
                outputs.WriteIndex();
                evaluated = EvaluatorRunner.Run(evaluator!, outputs.Root, referenceFolder!, Path.Combine(evaluatorDirectory!, "result.json"),
                    q.Config.BaseDirectory, new Dictionary<string, string>(), cancel);
            }
            var nodes = promoted.SelectMany(c => c.Candidate.Nodes).Distinct().ToList();
            rows.Add(new SweepRow
            {
                Threshold = threshold, Candidates = promoted.Select(c => c.Name).ToList(), Nodes = nodes,
                Share = sensitivity.Candidates.Count == 0 ? 0 : promoted.Count / (double)sensitivity.Candidates.Count, Scores = scores, Evaluator = evaluated,
            });
            progress?.Report(new StageProgress("threshold sweep", ++done, total));
        }
        return new SweepResult { Sensitivity = sensitivity, To = to, Rows = rows, EvaluatorMetric = referenceFolder is null ? null : evaluator!.Metric };
    }

    /// <summary>The first metric's value at the most sensitive 5/10/20/30/50 % of the candidates (distinct, in that order).</summary>
    public static List<double> Defaults(SensitivityResult sensitivity, CheckMetric metric)
    {
        var ranked = sensitivity.Candidates;
        if (ranked.Count == 0) return [];
        return DefaultShares.Select(p => ranked[Math.Clamp((int)Math.Ceiling(p * ranked.Count) - 1, 0, ranked.Count - 1)].Worst(metric))
            .Where(double.IsFinite).Distinct().ToList();
    }

    /// <summary>At or beyond the threshold on the sensitive side (see the class summary).</summary>
    public static bool AtLeastAsSensitive(double value, double threshold, CheckMetric metric, SensitivityMode mode)
    {
        bool lowIsSensitive = CheckNames.HigherIsBetter(metric) == (mode == SensitivityMode.Alone);
        return lowIsSensitive ? value <= threshold : value >= threshold;
    }

    /// <summary>The config with node_config promoting the candidates' nodes to <paramref name="to"/>; the same object when nothing is promoted.</summary>
    public static QuantConfig Promote(QuantConfig config, PrecisionPlan plan, IReadOnlyList<CandidateScore> promoted, CandidateType type, QType to)
    {
        if (promoted.Count == 0) return config;
        var nodes = new Dictionary<string, NodeConfig>(config.Nodes, StringComparer.Ordinal);
        foreach (var c in promoted)
            foreach (var name in c.Candidate.Nodes)
            {
                nodes.TryGetValue(name, out var existing);
                var np = plan.ByName(name);
                if (type == CandidateType.Weight && np is not null)
                {
                    var inputs = new Dictionary<int, InputQType>(existing?.Inputs ?? []);
                    foreach (var i in np.Inputs.Where(i => i.Role == InputRole.Weight && i.QType is not null)) inputs[i.Index] = new InputQType(to, false, default);
                    nodes[name] = Entry(name, existing, existing?.QType ?? (np.Compute == QType.Float32 ? null : np.Compute), inputs);
                }
                else nodes[name] = Entry(name, existing, to, []);
            }
        return new QuantConfig
        {
            SourceFile = config.SourceFile, Model = config.Model, OpTypes = config.OpTypes, Nodes = nodes, Subgraphs = config.Subgraphs,
            Preset = config.Preset, PresetPosition = config.PresetPosition, Inputs = config.Inputs, Calibration = config.Calibration,
            Checks = config.Checks, ChecksPosition = config.ChecksPosition, CheckRules = config.CheckRules,
        };
    }

    private static NodeConfig Entry(string name, NodeConfig? existing, QType? q, Dictionary<int, InputQType> inputs) => new()
    {
        NodeName = name, QType = q, Inputs = inputs, Scale = existing?.Scale, Threshold = existing?.Threshold,
        Position = existing?.Position ?? default, QTypePosition = existing?.QTypePosition ?? default,
        ScalePosition = existing?.ScalePosition ?? default, ThresholdPosition = existing?.ThresholdPosition ?? default,
    };
}
