using Quant.Core.Analysis;
using Quant.Core.Checks;
using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Core.Stages;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Tuning;

/// <summary>One evaluation sample: the model inputs and the name an evaluator sees as its source.</summary>
public sealed record TuneSample(IReadOnlyDictionary<string, Tensor> Inputs, string Source);

/// <summary>
/// Measures a qat model on the evaluation samples: each similarity target against the float model's outputs
/// (aggregated over samples as a check does), each evaluator target by running its command on the outputs written as
/// an evaluator folder (Checks/Evaluator's OutputFolder). The float outputs are computed once.
/// </summary>
public sealed class TuneEvaluation : IDisposable
{
    private readonly IReadOnlyList<TuneSample> _samples;
    private readonly IReadOnlyList<TuneTarget> _targets;
    private readonly List<IReadOnlyDictionary<string, Tensor>> _reference = [];
    /// <summary>Every float output of the first <see cref="RankingSamples"/> samples (what a ranking compares).</summary>
    private readonly List<IReadOnlyDictionary<string, Tensor>> _rankingReference = [];
    public const int RankingSamples = 4;
    private readonly string _workDir;
    private readonly string _evaluatorDir;
    private readonly IReadOnlyDictionary<string, string> _environment;
    private readonly SessionOptions _options;
    private readonly string _modelPath;
    private readonly HashSet<string> _compared;

    /// <param name="workDir">Where evaluator folders are written (removed by <see cref="Dispose"/>).</param>
    /// <param name="evaluatorDirectory">The folder evaluator commands run in (the user's config folder).</param>
    public TuneEvaluation(IReadOnlyList<TuneSample> samples, IReadOnlyList<TuneTarget> targets, InferenceSession floatSession, string modelPath,
        SessionOptions options, string workDir, string evaluatorDirectory, IReadOnlyDictionary<string, string> environment)
    {
        _samples = samples;
        _targets = targets;
        _options = options;
        _modelPath = modelPath;
        _workDir = workDir;
        _evaluatorDir = evaluatorDirectory;
        _environment = environment;
        _compared = targets.Where(t => t.Output is not null).Select(t => t.Output!).ToHashSet(StringComparer.Ordinal);
        bool evaluators = targets.Any(t => t.Evaluator is not null);
        if (Directory.Exists(workDir)) Directory.Delete(workDir, recursive: true);
        var reference = evaluators ? new OutputFolder(Path.Combine(workDir, "reference")) : null;
        for (int i = 0; i < samples.Count; i++)
        {
            var outputs = StageModels.Run(floatSession, samples[i].Inputs, modelPath);
            reference?.Add(i, samples[i].Source, outputs);
            // Only the outputs a similarity target compares are kept (rec's logits are a megabyte per sample).
            _reference.Add(outputs.Where(o => _compared.Contains(o.Key)).ToDictionary(o => o.Key, o => o.Value.Clone(), StringComparer.Ordinal));
            if (i < RankingSamples)
                _rankingReference.Add(outputs.Where(o => o.Value.Type is ElementType.Float or ElementType.Float16 or ElementType.Double)
                    .ToDictionary(o => o.Key, o => o.Value.Clone(), StringComparer.Ordinal));
        }
        reference?.WriteIndex();
        // The float model's own task metrics: what "99 % of float" is measured against.
        var floatValues = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var t in targets.Where(t => t.Evaluator is not null))
            floatValues[t.Key] = RunEvaluator(t.Evaluator!, Path.Combine(workDir, "reference"), CancellationToken.None);
        FloatValues = floatValues;
    }

    /// <summary>Each evaluator target's value on the float model's outputs.</summary>
    public IReadOnlyDictionary<string, double> FloatValues { get; }

    public IReadOnlyList<TuneSample> Samples => _samples;

    /// <summary>The targets' values for <paramref name="qatModel"/> (keys: <see cref="TuneTarget.Key"/>).</summary>
    public IReadOnlyDictionary<string, double> Measure(OnnxModel qatModel, CancellationToken cancel)
    {
        var session = StageModels.Session(qatModel, _options, _modelPath);
        var table = new SimilarityTable();
        var evaluators = _targets.Where(t => t.Evaluator is not null).ToList();
        var outputsDir = Path.Combine(_workDir, "outputs");
        if (Directory.Exists(outputsDir)) Directory.Delete(outputsDir, recursive: true);
        var folder = evaluators.Count > 0 ? new OutputFolder(outputsDir) : null;
        for (int i = 0; i < _samples.Count; i++)
        {
            cancel.ThrowIfCancellationRequested();
            var outputs = StageModels.Run(session, _samples[i].Inputs, _modelPath);
            foreach (var (name, r) in _reference[i]) table.Add(name, Similarity.Of(outputs[name], r));
            folder?.Add(i, _samples[i].Source, outputs);
        }
        folder?.WriteIndex();

        var values = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var t in _targets)
        {
            if (t.Similarity is { } m)
            {
                var spread = table.Of(t.Output!, CheckStage.Metric(m));
                values[t.Key] = t.Over switch { CheckAggregate.Min => spread.Min, CheckAggregate.Avg => spread.Avg, _ => spread.Max };
            }
            else values[t.Key] = RunEvaluator(t.Evaluator!, outputsDir, cancel);
        }
        return values;
    }

    /// <summary>The float-vs-qat cosine of every float output, worst sample, on the first <see cref="RankingSamples"/> samples (for ranking).</summary>
    public double WorstCosine(OnnxModel qatModel)
    {
        var session = StageModels.Session(qatModel, _options, _modelPath);
        double worst = 1;
        for (int i = 0; i < _rankingReference.Count; i++)
        {
            var outputs = StageModels.Run(session, _samples[i].Inputs, _modelPath);
            foreach (var (name, r) in _rankingReference[i]) worst = Math.Min(worst, Similarity.Of(outputs[name], r).Cosine);
        }
        return worst;
    }

    private double RunEvaluator(EvaluatorConfig e, string outputsDir, CancellationToken cancel)
    {
        try
        {
            return EvaluatorRunner.Run(e, outputsDir, Path.Combine(_workDir, "reference"), Path.Combine(_workDir, "result.json"), _evaluatorDir, _environment, cancel);
        }
        catch (QuantException q) when (q.Code == ErrorCode.CheckEvaluatorFailed)
        {
            // The check's message names the metric; the tuner's also names the command the user wrote.
            throw new QuantException(ErrorCode.TuneEvaluatorFailed, e.CommandPosition,
                $"tune target evaluator '{e.Command}': {q.Message.Split(": ", 2).Last()}; the tuner needs it to print a JSON object with '{e.Metric}' for every configuration it tries");
        }
    }

    public void Dispose()
    {
        try { if (Directory.Exists(_workDir)) Directory.Delete(_workDir, recursive: true); }
        catch (IOException) { }
    }
}
