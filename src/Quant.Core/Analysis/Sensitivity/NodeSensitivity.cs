using System.Diagnostics;
using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Core.Export;
using Quant.Core.Precision;
using Quant.Core.Stages;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Analysis.Sensitivity;

/// <summary>
/// Node sensitivity (hmct-debugger's get-sensitivity-of-nodes): how much each candidate's quantization moves the chosen
/// outputs away from the float model's, on the first samples of the config's calibration data.
/// </summary>
/// <remarks>
/// The base model (the float model in mode alone, the model quantized as configured in mode restore) runs once per
/// sample keeping every value (<see cref="RunOptions.KeepValues"/>). For each candidate, a small model of the nodes the
/// exporter writes differently (<see cref="LocalVariant"/>) computes the changed values from the kept ones and only
/// the base model's nodes downstream of them re-run (<see cref="InferenceSession.RunDownstream"/>). The result equals
/// a full export of the variant config run end to end (the tests prove it against exports built from node_config).
/// </remarks>
public static class NodeSensitivity
{
    /// <summary>Loads the config, gets the statistics (from the export's cache when present) and scores the candidates.</summary>
    public static SensitivityResult Run(ExportRequest request, SensitivityOptions options, IProgress<StageProgress>? progress = null, CancellationToken cancel = default)
    {
        var (cal, q, _) = Prepare(request, progress, cancel);
        return Run(cal, q, options, progress, cancel);
    }

    /// <summary>The calibrated model and the config's quantization, as the export makes them (statistics from its cache).</summary>
    public static (CalibratedModel Calibrated, QuantizedModel Quantized, QuantConfig Config) Prepare(ExportRequest request, IProgress<StageProgress>? progress, CancellationToken cancel)
    {
        string name = request.Name ?? Path.GetFileNameWithoutExtension(request.ModelPath);
        var cacheDir = request.CacheDirectory ?? request.OutputDirectory;
        Directory.CreateDirectory(cacheDir);
        var config = QuantConfigLoader.Load(request.ConfigPath);
        var cal = ExportStage.Calibrate(request, config, cacheDir, name, progress, cancel);
        return (cal, ExportStage.Quantize(cal, config, progress, cancel), config);
    }

    /// <summary>Scores every candidate of <paramref name="q"/>'s plan (see <see cref="SensitivityOptions"/>).</summary>
    public static SensitivityResult Run(CalibratedModel cal, QuantizedModel q, SensitivityOptions options, IProgress<StageProgress>? progress = null, CancellationToken cancel = default)
    {
        var model = cal.Model;
        var outputs = ScoredOutputs(cal, options);
        var candidates = Select(cal, q.Plan, options);
        if (options.Metrics.Count == 0)
            throw new QuantException(ErrorCode.SensitivityUnknownMetric, SourcePosition.InFile(Path.GetFileName(cal.ModelPath)), "no metric to score with; give at least one of " + MetricList);
        int available = cal.Data.SampleCount;
        if (options.SamplesAtMost && available >= 1) options = With(options, Math.Min(options.Samples, available));
        if (options.Samples < 1 || options.Samples > available)
            throw new QuantException(ErrorCode.SensitivitySampleCount, q.Config.Calibration.SamplesPosition.Line > 0 ? q.Config.Calibration.SamplesPosition : SourcePosition.InFile(q.Config.SourceFile),
                $"{options.Samples} samples asked for, but the config's calibration data has {available}; give a number from 1 to {available}");

        var notes = new List<string>();
        if (q.BiasCorrection is not null)
            notes.Add("bias_correction is not part of the scores: candidates are scored on the export before bias correction");

        var clock = Stopwatch.StartNew();
        var inputs = cal.Data.Samples().Take(options.Samples).ToList();
        var exported = options.Mode == SensitivityMode.Restore ? QdqExporter.Export(model, q.Plan, q.Activations, q.Weights) : null;
        var baseSession = exported is null ? cal.FloatSession : StageModels.Session(exported, cal.SessionOptions, cal.ModelPath);
        var references = new List<IReadOnlyDictionary<string, Tensor>>();
        var baseline = new OutputScores(outputs);
        ValueCache BaseRun(int s)
        {
            cancel.ThrowIfCancellationRequested();
            var cache = new ValueCache();
            var outs = StageModels.Run(baseSession, inputs[s], cal.ModelPath, new RunOptions { KeepValues = cache });
            var reference = exported is null ? outs : StageModels.Run(cal.FloatSession, inputs[s], cal.ModelPath);
            references.Add(reference);
            baseline.Add(reference, outs);
            return cache;
        }
        // Every sample's values kept at once when they fit (each candidate's score is then complete before the next one
        // starts); otherwise one sample at a time, every candidate on it, its small model built once and kept.
        var caches = new List<ValueCache> { BaseRun(0) };
        bool keepAll = options.Strategy == SensitivityStrategy.FullExport || Bytes(caches[0]) * inputs.Count <= options.MaxKeptBytes;
        if (keepAll) for (int s = 1; s < inputs.Count; s++) caches.Add(BaseRun(s));
        double baseSeconds = clock.Elapsed.TotalSeconds;

        var context = new VariantContext
        {
            Model = model, Producers = model.Graph.Producers(), Consumers = model.Graph.Consumers(), Infos = ValueInfos(model),
            Activations = q.Activations, Weights = q.Weights, BaseValues = new HashSet<string>(caches[0].Names, StringComparer.Ordinal),
            SessionOptions = cal.SessionOptions,
        };
        var basePlan = options.Mode == SensitivityMode.Alone ? PlanVariants.AllFloat(q.Plan) : q.Plan;
        var scores = candidates.Select(_ => new OutputScores(outputs)).ToArray();
        var variants = new LocalVariant?[candidates.Count];
        var scoring = Stopwatch.StartNew();
        double first = 0;
        int passes = keepAll ? 1 : inputs.Count, total = candidates.Count * passes, done = 0;
        progress?.Report(new StageProgress("sensitivity", 0, total));
        for (int pass = 0; pass < passes; pass++)
        {
            var window = keepAll ? caches : [pass == 0 ? caches[0] : BaseRun(pass)];
            var windowReferences = keepAll ? references : [references[pass]];
            if (!keepAll && pass > 0) caches.Clear(); // the previous sample's values are no longer needed
            for (int k = 0; k < candidates.Count; k++)
            {
                cancel.ThrowIfCancellationRequested();
                Score(context, q.Plan, basePlan, candidates[k], options, baseSession, window, windowReferences, scores[k], ref variants[k], cal.ModelPath);
                if (++done == 1) first = scoring.Elapsed.TotalSeconds;
                progress?.Report(new StageProgress("sensitivity", done, total));
            }
        }
        var scored = candidates.Select((c, k) => new CandidateScore { Candidate = c.Info, Scores = scores[k], LocalNodes = variants[k]?.NodeCount ?? 0 }).ToList();
        double seconds = scoring.Elapsed.TotalSeconds;
        return new SensitivityResult
        {
            Model = Path.GetFileName(cal.ModelPath), Config = Path.GetFileName(q.Config.SourceFile), Type = options.Type, Mode = options.Mode, Samples = inputs.Count,
            Outputs = outputs, Metrics = options.Metrics, Candidates = SensitivityResult.Rank(scored, options.Mode, options.Metrics[0]),
            Baseline = baseline, Notes = notes, SecondsPerCandidate = candidates.Count == 0 ? 0 : seconds / candidates.Count,
            SecondsToFirstResult = first, SecondsForBaseRuns = baseSeconds,
            SecondsBuildingVariants = context.BuildTicks / (double)Stopwatch.Frequency, SecondsRerunning = context.RunTicks / (double)Stopwatch.Frequency,
        };
    }

    private static SensitivityOptions With(SensitivityOptions o, int samples) => new()
    {
        Type = o.Type, Mode = o.Mode, Metrics = o.Metrics, Outputs = o.Outputs, Samples = samples, Nodes = o.Nodes, Strategy = o.Strategy,
        MaxKeptBytes = o.MaxKeptBytes,
    };

    private static long Bytes(ValueCache cache)
    {
        long bytes = 0;
        foreach (var name in cache.Names)
            if (cache[name] is { Type: not ElementType.String } t) bytes += t.Bytes().Length;
        return bytes;
    }

    private static void Score(VariantContext context, PrecisionPlan plan, PrecisionPlan basePlan, Candidate c, SensitivityOptions options,
        InferenceSession baseSession, List<ValueCache> caches, List<IReadOnlyDictionary<string, Tensor>> references, OutputScores scores,
        ref LocalVariant? built, string file)
    {
        var members = new HashSet<Node>(c.Nodes, ReferenceEqualityComparer.Instance);
        NodePrecision Variant(Node n)
        {
            if (!members.Contains(n)) return basePlan[n];
            var copy = PlanVariants.Clone(plan[n]);
            (options.Mode == SensitivityMode.Alone ? c.Alone : c.Restore)(copy);
            return copy;
        }
        var changed = c.Nodes.Where(n => !PlanVariants.Same(basePlan[n], Variant(n))).ToList();
        if (options.Strategy == SensitivityStrategy.FullExport)
        {
            ScoreFull(context, Variant, caches, references, scores, file);
            return;
        }
        long t0 = Stopwatch.GetTimestamp();
        LocalVariant variant;
        try { variant = built ??= LocalVariant.Build(context, changed, n => basePlan[n], Variant); }
        catch (EngineException e) { throw new QuantException(ErrorCode.ModelRunFailed, SourcePosition.InFile(file), e.Message, e); }
        long t1 = Stopwatch.GetTimestamp();
        for (int s = 0; s < caches.Count; s++)
        {
            try
            {
                var changes = variant.Changes(caches[s]);
                var outs = changes.Count == 0 ? BaseOutputs(baseSession, caches[s]) : baseSession.RunDownstream(caches[s], changes);
                scores.Add(references[s], outs);
            }
            catch (EngineException e) { throw new QuantException(ErrorCode.ModelRunFailed, SourcePosition.InFile(file), e.Message, e); }
        }
        context.BuildTicks += t1 - t0;
        context.RunTicks += Stopwatch.GetTimestamp() - t1;
    }

    /// <summary>The naive way, for benchmarks and checks: export the whole variant and run it end to end on every sample.</summary>
    private static void ScoreFull(VariantContext context, Func<Node, NodePrecision> variant, List<ValueCache> caches,
        List<IReadOnlyDictionary<string, Tensor>> references, OutputScores scores, string file)
    {
        var plan = PlanVariants.Copy(context.Model, context.Model.Graph.Nodes, variant);
        var exported = QdqExporter.Export(context.Model, plan, context.Activations, context.Weights);
        var session = StageModels.Session(exported, context.SessionOptions, file);
        var inputNames = context.Model.Graph.RuntimeInputs.Select(i => i.Name).ToList();
        for (int s = 0; s < caches.Count; s++)
        {
            var feeds = inputNames.ToDictionary(n => n, n => caches[s][n], StringComparer.Ordinal);
            scores.Add(references[s], StageModels.Run(session, feeds, file));
        }
    }

    private static IReadOnlyDictionary<string, Tensor> BaseOutputs(InferenceSession session, ValueCache cache) =>
        session.OutputNames.ToDictionary(o => o, o => cache[o], StringComparer.Ordinal);

    internal static string MetricList => string.Join(", ", CheckNames.Metrics.Select(m => m.Name));

    /// <summary>The metric of a name (cosine, mse, mre, sqnr, chebyshev, l1, l2); QB8003 naming the valid ones.</summary>
    public static CheckMetric MetricOf(string name)
    {
        foreach (var (n, v) in CheckNames.Metrics) if (n == name.ToLowerInvariant()) return v;
        throw new QuantException(ErrorCode.SensitivityUnknownMetric, SourcePosition.InFile("-m"), $"unknown metric '{name}'; the metrics are {MetricList}");
    }

    private static List<string> ScoredOutputs(CalibratedModel cal, SensitivityOptions options)
    {
        var floatOutputs = cal.Model.Graph.Outputs.Where(o => o.Type is ElementType.Float or ElementType.Float16 or ElementType.Double or ElementType.Undefined)
            .Select(o => o.Name).ToList();
        if (options.Outputs is null || options.Outputs.Count == 0) return floatOutputs;
        foreach (var o in options.Outputs)
            if (!floatOutputs.Contains(o))
                throw new QuantException(ErrorCode.SensitivityUnknownOutput, SourcePosition.InFile(Path.GetFileName(cal.ModelPath)),
                    $"-o '{o}' is not a float output of the model; its float outputs are {string.Join(", ", floatOutputs)}");
        return options.Outputs.Distinct().ToList();
    }

    private static List<Candidate> Select(CalibratedModel cal, PrecisionPlan plan, SensitivityOptions options)
    {
        var all = SensitivityCandidates.Of(plan, options.Type);
        if (options.Nodes is null || options.Nodes.Count == 0) return all;
        var g = cal.Model.Graph;
        var nodeNames = g.Nodes.Where(n => n.Name.Length > 0).Select(n => n.Name).ToHashSet(StringComparer.Ordinal);
        var values = new HashSet<string>(g.Nodes.SelectMany(n => n.Outputs).Concat(g.Inputs.Select(i => i.Name)), StringComparer.Ordinal);
        var file = SourcePosition.InFile(Path.GetFileName(cal.ModelPath));
        var wanted = new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in options.Nodes)
        {
            bool known = nodeNames.Contains(name) || (options.Type == CandidateType.Activation && values.Contains(name));
            if (!known)
                throw new QuantException(ErrorCode.SensitivityUnknownNode, file,
                    $"-i '{name}' is not a node{(options.Type == CandidateType.Activation ? " or tensor" : "")} of the model (after graph preparation){Suggest(name, options.Type == CandidateType.Activation ? nodeNames.Concat(values) : nodeNames)}");
            if (!all.Any(c => c.Info.Name == name || c.Info.Node == name || c.Info.Nodes.Contains(name)))
            {
                var np = plan.ByName(name);
                string what = np is null ? "is not converted" : $"is {PrecisionPlan.QTypeText(np.Compute)}{(np.ShapeOnly ? " (shape only)" : "")}";
                throw new QuantException(ErrorCode.SensitivityNotACandidate, file,
                    $"-i '{name}' {what} under this config, so it has no {SensitivityOptions.Name(options.Type)} sensitivity; candidates are the nodes the config quantizes (int8, int16) or rounds to float16");
            }
            wanted.Add(name);
        }
        return all.Where(c => wanted.Contains(c.Info.Name) || wanted.Contains(c.Info.Node) || c.Info.Nodes.Any(wanted.Contains)).ToList();
    }

    private static string Suggest(string name, IEnumerable<string> names)
    {
        var close = names.Distinct().Select(n => (n, d: PrecisionPlanner.Distance(name, n))).Where(x => x.d <= Math.Max(3, name.Length / 3))
            .OrderBy(x => x.d).ThenBy(x => x.n, StringComparer.Ordinal).Take(3).Select(x => $"'{x.n}'").ToList();
        return close.Count == 0 ? "" : $"; did you mean {string.Join(" or ", close)}?";
    }

    private static Dictionary<string, ValueInfo> ValueInfos(OnnxModel model)
    {
        var infos = new Dictionary<string, ValueInfo>(StringComparer.Ordinal);
        try { foreach (var (k, v) in Quant.Onnx.Shapes.ShapeInference.Run(model)) infos[k] = v; }
        catch (Exception e) when (e is OnnxFormatException or ArgumentException or InvalidOperationException or KeyNotFoundException) { }
        foreach (var i in model.Graph.Inputs) infos[i.Name] = i;
        return infos;
    }
}

/// <summary>How candidates are run: the downstream cone only (the default), or a full export run end to end (for benchmarks and checks).</summary>
public enum SensitivityStrategy { Downstream, FullExport }
