using System.Diagnostics;
using Quant.Core.Config;
using Quant.Core.Export;
using Quant.Core.Stages;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Calibration;

/// <summary>One tensor whose method the per-tensor search changed, with the score the change alone reached.</summary>
public sealed record LayerwiseChoice(string Tensor, string From, string To, double ScoreAlone);

/// <summary>What the per-tensor search did.</summary>
public sealed class LayerwiseResult
{
    /// <summary>The tensors that take another candidate's parameters than the model-wise choice.</summary>
    public required IReadOnlyDictionary<string, CalibrationCandidate> Choices { get; init; }
    public required IReadOnlyList<LayerwiseChoice> Changes { get; init; }
    /// <summary>Tensors whose alternatives were tried.</summary>
    public required int TensorsSearched { get; init; }
    /// <summary>Downstream re-runs made (one per tensor, alternative and sample).</summary>
    public required int ReRuns { get; init; }
    public required int Samples { get; init; }
    /// <summary>Score of the model-wise choice and of the result on every scored sample.</summary>
    public required double BaseScore { get; init; }
    public required double FinalScore { get; init; }
    public required TimeSpan Elapsed { get; init; }
}

/// <summary>
/// The per-tensor calibration choice (HMCT's layer-wise search idea: judge a tensor's quantization by its effect on the
/// model output, not by its own error). Starting from the model-wise choice, every activation tensor's alternatives
/// (the other methods and sign modes of the candidate list, derived from the same statistics) are tried one at a time:
/// the tensor's QuantizeLinear scale and zero point are replaced and only the nodes downstream of them re-run
/// (<see cref="InferenceSession.RunDownstream"/> over a <see cref="ValueCache"/> of the base run), and the model output
/// is scored against the float output (<see cref="OutputAgreement"/>). Each tensor's best alternative that beats the
/// base on its own is a proposal. Proposals interact, so they are applied in order of their gain and the best prefix
/// (all, half, a quarter, ... one, or none) is kept, each judged by a full run on every scored sample.
/// </summary>
/// <remarks>
/// Cost: Σ over tensors of (alternatives × samples) downstream re-runs (on average about half a model run each) plus
/// a few full exports. Bounded by <see cref="LayerwiseSearchConfig.Samples"/> and the candidate list, not by a clock,
/// so the result is deterministic. Tensors whose quantization pair the export did not name after them
/// (<c>T_q</c>/<c>T_q16</c>), model inputs and node_config scale/threshold tensors keep the model-wise choice.
/// </remarks>
public static class LayerwiseSearch
{
    public static LayerwiseResult Run(CalibrationContext context, CalibrationCandidate chosen, IReadOnlyList<CalibrationCandidate> alternatives,
        CalibrationStatistics stats, IReadOnlyList<IReadOnlyDictionary<string, Tensor>> inputs, IReadOnlyList<IReadOnlyDictionary<string, Tensor>> reference,
        LayerwiseSearchConfig config, Action<int, int>? progress, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        var baseParams = CalibrationChoice.Params(context, chosen, stats);
        var others = alternatives.Where(a => a != chosen).ToList();
        var altParams = others.Select(a => CalibrationChoice.Params(context, a, stats)).ToList();
        var exported = QdqExporter.Export(context.Model, context.Plan, baseParams, context.Weights);
        var session = StageModels.Session(exported, context.SessionOptions, context.ModelPath);
        var inputNames = new HashSet<string>(context.Model.Graph.RuntimeInputs.Select(i => i.Name), StringComparer.Ordinal);

        // The tensors to search, in the exported graph's order, each with its distinct alternatives.
        var pairs = QuantizationPairs(exported);
        var work = new List<(string Tensor, List<(int Alt, Dictionary<string, Tensor> Changed)> Options)>();
        foreach (var (tensor, qs) in pairs)
        {
            if (!context.Tensors.ContainsKey(tensor) || context.FixedParams.ContainsKey(tensor) || inputNames.Contains(tensor)) continue;
            var options = new List<(int, Dictionary<string, Tensor>)>();
            var seen = new List<QuantParams> { baseParams[tensor] };
            for (int k = 0; k < others.Count; k++)
            {
                var p = altParams[k][tensor];
                if (seen.Any(s => SameNumbers(s, p))) continue;
                seen.Add(p);
                options.Add((k, Changes(exported, qs, p)));
            }
            if (options.Count > 0) work.Add((tensor, options));
        }

        int samples = Math.Min(Math.Max(1, config.Samples), inputs.Count);
        int total = samples * work.Sum(w => w.Options.Count), done = 0;
        var agreements = work.Select(w => w.Options.Select(_ => new OutputAgreement()).ToArray()).ToArray();
        var baseAgreement = new OutputAgreement();
        progress?.Invoke(0, total);
        for (int s = 0; s < samples; s++)
        {
            var cache = new ValueCache();
            baseAgreement.Add(reference[s], StageModels.Run(session, inputs[s], context.ModelPath, new RunOptions { KeepValues = cache }));
            for (int t = 0; t < work.Count; t++)
                for (int a = 0; a < work[t].Options.Count; a++)
                {
                    cancel.ThrowIfCancellationRequested();
                    var outputs = ReRun(session, cache, work[t].Options[a].Changed, context.ModelPath);
                    agreements[t][a].Add(reference[s], outputs);
                    progress?.Invoke(++done, total);
                }
        }

        // Proposals: each tensor's best alternative that beats the base alone, largest gain first.
        var proposals = new List<(string Tensor, CalibrationCandidate Alt, OutputAgreement Agreement)>();
        for (int t = 0; t < work.Count; t++)
        {
            OutputAgreement best = baseAgreement;
            int bestAlt = -1;
            for (int a = 0; a < work[t].Options.Count; a++)
                if (agreements[t][a].Beats(best)) { best = agreements[t][a]; bestAlt = a; }
            if (bestAlt >= 0) proposals.Add((work[t].Tensor, others[work[t].Options[bestAlt].Alt], best));
        }
        proposals = proposals.OrderByDescending(p => p.Agreement.Score).ThenByDescending(p => p.Agreement.Mean)
            .ThenBy(p => p.Tensor, StringComparer.Ordinal).ToList();

        var baseFull = CalibrationChoice.Score(context, baseParams, inputs, reference);
        OutputAgreement bestFull = baseFull;
        int keep = 0;
        var sizes = new SortedSet<int>();
        for (int n = proposals.Count; n >= 1; n /= 2) sizes.Add(n);
        foreach (var n in sizes.Reverse())
        {
            cancel.ThrowIfCancellationRequested();
            var trial = new Dictionary<string, QuantParams>(baseParams, StringComparer.Ordinal);
            foreach (var (tensor, alt, _) in proposals.Take(n)) trial[tensor] = altParams[others.IndexOf(alt)][tensor];
            var agreement = CalibrationChoice.Score(context, trial, inputs, reference);
            if (agreement.Beats(bestFull)) { bestFull = agreement; keep = n; }
        }
        var kept = proposals.Take(keep).ToList();
        return new LayerwiseResult
        {
            Choices = kept.ToDictionary(p => p.Tensor, p => p.Alt, StringComparer.Ordinal),
            Changes = kept.Select(p => new LayerwiseChoice(p.Tensor, chosen.Label, p.Alt.Label, p.Agreement.Score)).ToList(),
            TensorsSearched = work.Count,
            ReRuns = total,
            Samples = samples,
            BaseScore = baseFull.Score,
            FinalScore = bestFull.Score,
            Elapsed = clock.Elapsed,
        };
    }

    /// <summary>The activation QuantizeLinear nodes of the export by the tensor they quantize (<c>T_q</c>, <c>T_q16</c>).</summary>
    internal static List<(string Tensor, List<Node> Quantizers)> QuantizationPairs(OnnxModel exported)
    {
        var byTensor = new Dictionary<string, List<Node>>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var n in exported.Graph.Nodes)
        {
            if (n.OpType != "QuantizeLinear" || n.Inputs.Count < 3) continue;
            string? tensor = n.Name.EndsWith("_q16", StringComparison.Ordinal) ? n.Name[..^4]
                : n.Name.EndsWith("_q", StringComparison.Ordinal) ? n.Name[..^2] : null;
            if (tensor is null || !exported.Graph.Initializers.ContainsKey(n.Inputs[1]) || !exported.Graph.Initializers.ContainsKey(n.Inputs[2])) continue;
            if (!byTensor.TryGetValue(tensor, out var list)) { byTensor[tensor] = list = []; order.Add(tensor); }
            list.Add(n);
        }
        return order.Select(t => (t, byTensor[t])).ToList();
    }

    /// <summary>New scale and zero-point values for every quantizer of a tensor (each in its own qtype).</summary>
    internal static Dictionary<string, Tensor> Changes(OnnxModel exported, List<Node> quantizers, QuantParams p)
    {
        var changed = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var q in quantizers)
        {
            var scale = exported.Graph.Initializers[q.Inputs[1]];
            var zp = exported.Graph.Initializers[q.Inputs[2]];
            var target = zp.Type == ElementType.Int16 ? QType.Int16 : QType.Int8;
            var converted = QdqExporter.ConvertTo(p, target);
            int[] shape = scale.Dims.Select(d => (int)d).ToArray();
            if (Tensor.ElementCount(shape) != converted.Scales.Length) continue; // another channel layout: not a drop-in change
            changed[q.Inputs[1]] = Tensor.From((float[])converted.Scales.Clone(), shape);
            var zps = converted.ZeroPoints.Length == converted.Scales.Length ? converted.ZeroPoints : Enumerable.Repeat(converted.ZeroPoints.FirstOrDefault(), converted.Scales.Length).ToArray();
            changed[q.Inputs[2]] = target == QType.Int16
                ? Tensor.From(zps.Select(z => (short)z).ToArray(), shape)
                : Tensor.From(zps.Select(z => (sbyte)z).ToArray(), shape);
        }
        return changed;
    }

    private static IReadOnlyDictionary<string, Tensor> ReRun(InferenceSession session, ValueCache cache, Dictionary<string, Tensor> changed, string file)
    {
        try { return session.RunDownstream(cache, changed); }
        catch (EngineException e) { throw new Diagnostics.QuantException(Diagnostics.ErrorCode.ModelRunFailed, Diagnostics.SourcePosition.InFile(file), e.Message, e); }
    }

    private static bool SameNumbers(QuantParams a, QuantParams b) =>
        a.QType == b.QType && a.Axis == b.Axis && a.Scales.AsSpan().SequenceEqual(b.Scales) && a.ZeroPoints.AsSpan().SequenceEqual(b.ZeroPoints);
}
