using Quant.Core.Config;
using Quant.Core.Export;
using Quant.Core.Precision;
using Quant.Core.Stages;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Calibration;

/// <summary>What the model-wise choice measured for one candidate.</summary>
public sealed record CandidateScore(string Label, double Score, double Mean);

/// <summary>The calibration the export uses, and how it was chosen.</summary>
public sealed class CalibrationOutcome
{
    public required CalibrationCandidate Chosen { get; init; }
    /// <summary>The label the report shows: the chosen candidate, plus the per-tensor search's changes when it ran.</summary>
    public required string Label { get; init; }
    /// <summary>Every candidate's score on the scored samples (empty when there was only one candidate).</summary>
    public required IReadOnlyList<CandidateScore> Scores { get; init; }
    /// <summary>The exported parameters: the chosen method (and per-tensor choices) applied to every sample's statistics.</summary>
    public required IReadOnlyDictionary<string, QuantParams> Activations { get; init; }
    /// <summary>The per-tensor search's result, when it ran.</summary>
    public LayerwiseResult? Layerwise { get; init; }
}

/// <summary>The model, its precision plan and fixed parts that every candidate shares.</summary>
public sealed record CalibrationContext(
    OnnxModel Model,
    PrecisionPlan Plan,
    IReadOnlyDictionary<string, QType> Tensors,
    IReadOnlyDictionary<string, QuantParams> FixedParams,
    IReadOnlyDictionary<string, QuantParams> Weights,
    SessionOptions SessionOptions,
    string ModelPath);

/// <summary>
/// Chooses the activation calibration (HMCT's <c>default</c> and search lists): every candidate of
/// <see cref="CalibrationCandidates"/> is derived from the statistics without the held-out samples, exported, run in
/// the engine on the held-out samples and scored against the float outputs (<see cref="OutputAgreement"/>: the worst
/// output's pooled cosine). The best (first on ties, so the order of the lists decides) is then derived again from
/// every sample's statistics for the export. With <c>layerwise_search</c>, <see cref="LayerwiseSearch"/> then
/// revisits each tensor.
/// </summary>
public static class CalibrationChoice
{
    public static CalibrationOutcome Choose(CalibrationContext context, CalibrationRun run, IReadOnlyList<CalibrationCandidate> candidates,
        InferenceSession floatSession, LayerwiseSearchConfig? layerwise, Action<string, int, int>? progress, CancellationToken cancel)
    {
        if (candidates.Count == 0) throw new ArgumentException("no calibration candidates", nameof(candidates));
        IReadOnlyList<IReadOnlyDictionary<string, Tensor>>? reference = null;
        IReadOnlyList<IReadOnlyDictionary<string, Tensor>> Reference() =>
            reference ??= run.ScoredInputs.Select(i => StageModels.Run(floatSession, i, context.ModelPath)).ToList();

        var chosen = candidates[0];
        var scores = new List<CandidateScore>();
        if (candidates.Count > 1)
        {
            OutputAgreement? best = null;
            for (int k = 0; k < candidates.Count; k++)
            {
                cancel.ThrowIfCancellationRequested();
                progress?.Invoke("choosing calibration method", k, candidates.Count);
                var c = candidates[k];
                var agreement = Score(context, Params(context, c, run.Of(c.NumBins).Fit), run.ScoredInputs, Reference());
                scores.Add(new CandidateScore(c.Label, agreement.Score, agreement.Mean));
                if (best is null || agreement.Beats(best)) { best = agreement; chosen = c; }
            }
            progress?.Invoke("choosing calibration method", candidates.Count, candidates.Count);
        }

        var stats = run.Of(chosen.NumBins);
        if (layerwise is null)
            return new CalibrationOutcome { Chosen = chosen, Label = chosen.Label, Scores = scores, Activations = Params(context, chosen, stats.All) };

        // The per-tensor alternatives: the chosen candidate's histogram size and channel layout, every method and sign mode.
        var alternatives = candidates.Where(c => c.NumBins == chosen.NumBins && c.Options.PerChannel == chosen.Options.PerChannel).ToList();
        var result = LayerwiseSearch.Run(context, chosen, alternatives, stats.Fit, run.ScoredInputs, Reference(), layerwise,
            (done, total) => progress?.Invoke("choosing calibration per tensor", done, total), cancel);
        var all = Params(context, chosen, stats.All);
        var final = new Dictionary<string, QuantParams>(all, StringComparer.Ordinal);
        foreach (var (tensor, candidate) in result.Choices)
            final[tensor] = candidate.Derive(stats.All, new Dictionary<string, QType> { [tensor] = context.Tensors[tensor] }, context.FixedParams)[tensor];
        string label = result.Choices.Count == 0 ? chosen.Label : $"{chosen.Label} + per-tensor choice on {result.Choices.Count} tensors";
        return new CalibrationOutcome { Chosen = chosen, Label = label, Scores = scores, Activations = final, Layerwise = result };
    }

    /// <summary>
    /// A candidate's parameters from one set of statistics. Model inputs keep their full range under every method:
    /// their range is the preprocessing's, and clipping it (rec pads lines with -1, exactly its minimum) shifts whole
    /// regions of the image.
    /// </summary>
    public static IReadOnlyDictionary<string, QuantParams> Params(CalibrationContext context, CalibrationCandidate c, CalibrationStatistics stats)
    {
        var fixedParams = new Dictionary<string, QuantParams>(context.FixedParams, StringComparer.Ordinal);
        var max = c.Options with { Method = CalibrationMethod.Max };
        foreach (var input in context.Model.Graph.RuntimeInputs)
            if (context.Tensors.TryGetValue(input.Name, out var qt) && !fixedParams.ContainsKey(input.Name) && stats.TryGet(input.Name, out var st))
                fixedParams[input.Name] = ActivationScales.Derive(st, qt, max);
        return c.Derive(stats, context.Tensors, fixedParams);
    }

    /// <summary>Exports <paramref name="activations"/>, runs the qat model in the engine on the inputs and scores it.</summary>
    public static OutputAgreement Score(CalibrationContext context, IReadOnlyDictionary<string, QuantParams> activations,
        IReadOnlyList<IReadOnlyDictionary<string, Tensor>> inputs, IReadOnlyList<IReadOnlyDictionary<string, Tensor>> reference)
    {
        var exported = QdqExporter.Export(context.Model, context.Plan, activations, context.Weights);
        var qat = StageModels.Session(exported, context.SessionOptions, context.ModelPath);
        var agreement = new OutputAgreement();
        for (int i = 0; i < inputs.Count; i++) agreement.Add(reference[i], StageModels.Run(qat, inputs[i], context.ModelPath));
        return agreement;
    }
}
