using System.Diagnostics;
using Quant.Core.Analysis;
using Quant.Core.Calibration;
using Quant.Core.Checks;
using Quant.Core.Config;
using Quant.Core.Data;
using Quant.Core.Diagnostics;
using Quant.Core.Export;
using Quant.Core.Passes;
using Quant.Core.Precision;
using Quant.Core.Reports;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Stages;

/// <summary>What the export stage is asked to do.</summary>
public sealed class ExportRequest
{
    public required string ModelPath { get; init; }
    public required string ConfigPath { get; init; }
    public required string OutputDirectory { get; init; }
    /// <summary>Artifact base name (default: the model file's name without extension).</summary>
    public string? Name { get; init; }
    /// <summary>Where the calibration statistics cache lives (default: the output directory).</summary>
    public string? CacheDirectory { get; init; }
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>Calibration data globs replacing the config's for a single-input model (MSBuild CalibrationData); null: the config's.</summary>
    public IReadOnlyList<string>? CalibrationData { get; init; }
    /// <summary>At most how many samples calibration candidates are scored on (held out from the statistics when there are enough).</summary>
    public int SelectionSamples { get; init; } = HeldOutSplit.MaxHeldOutSamples;
}

/// <summary>A step of the stage with its progress, for a progress bar.</summary>
public readonly record struct StageProgress(string Phase, int Done, int Total);

/// <summary>What the export stage produced and measured.</summary>
public sealed class ExportResult
{
    public required string QatModelPath { get; init; }
    public required string ModelCheckTextPath { get; init; }
    public required string ModelCheckJsonPath { get; init; }
    public required string ChangeLogPath { get; init; }
    public required string CalibrationCachePath { get; init; }
    public required bool CalibrationFromCache { get; init; }
    public required string ChosenMethod { get; init; }
    /// <summary>Candidate → its score (the worst output's pooled cosine vs float on the held-out samples) when several were compared.</summary>
    public required IReadOnlyList<(string Method, double Score)> Candidates { get; init; }
    /// <summary>What the per-tensor calibration choice (model_config.layerwise_search) did; null when it did not run.</summary>
    public LayerwiseResult? Layerwise { get; init; }
    public required SimilarityTable Similarity { get; init; }
    /// <summary>Per output: the qat model's cosine against itself with last-bit noise in its float ops (first sample).</summary>
    public required IReadOnlyList<LastBitStability.OutputStability> Stability { get; init; }
    public required PrecisionPlan Plan { get; init; }
    public required PreparedModel Prepared { get; init; }
    public required TimeSpan CalibrationTime { get; init; }
    public required TimeSpan TotalTime { get; init; }
    public required IReadOnlyList<string> DataFiles { get; init; }
    /// <summary>The config as the stage used it (calibration data overrides applied).</summary>
    public required QuantConfig Config { get; init; }
    /// <summary>Warnings in the canonical form (<c>FILE: warning QBnnnn: ...</c>), e.g. where a QDQ input model's own quantization overrides the config.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
}

/// <summary>What every precision variant of one export shares (<see cref="ExportStage.Prepare"/>).</summary>
public sealed class ExportBasis
{
    /// <summary>The float model as read (a QDQ input model's float graph).</summary>
    public required OnnxModel Original { get; init; }
    public required PreparedModel Prepared { get; init; }
    public OnnxModel Model => Prepared.Model;
    public QatInput? QatInput { get; init; }
    public required InferenceSession FloatSession { get; init; }
    public required SessionOptions SessionOptions { get; init; }
    public required CalibrationDataSet Data { get; init; }
    public required CalibrationRun Calibration { get; init; }
    public required string FloatSha256 { get; init; }
    public required string DataFingerprint { get; init; }
    public required string ModelPath { get; init; }
    public required TimeSpan CalibrationTime { get; init; }
}

/// <summary>One config's qat model and how it was derived (<see cref="ExportStage.Derive"/>).</summary>
public sealed class QatDerivation
{
    public required OnnxModel QatModel { get; init; }
    public required PrecisionPlan Plan { get; init; }
    public QatInputPlan? QatPlan { get; init; }
    public required CalibrationOutcome Outcome { get; init; }
    public required IReadOnlyDictionary<string, QuantParams> Weights { get; init; }
    public BiasCorrection.Result? BiasCorrection { get; init; }
    /// <summary>The model, plan and fixed parameters the calibration candidates were derived in.</summary>
    public required CalibrationContext Context { get; init; }
}

/// <summary>
/// Export: float ONNX + quantization config + calibration data → <c>NAME.qat.onnx</c> (QDQ),
/// <c>NAME.model_check.txt/.json</c>, <c>NAME.qconfig_changelogs.txt</c> and a calibration cache.
/// Calibration is one streamed pass whose statistics are cached on disk, keyed by the model bytes,
/// the data fingerprint and the statistics settings: a changed precision setting re-derives scales
/// from the cache without running calibration again.
/// </summary>
public static class ExportStage
{
    public static ExportResult Run(ExportRequest request, IProgress<StageProgress>? progress = null, CancellationToken cancel = default)
    {
        var total = Stopwatch.StartNew();
        string name = request.Name ?? Path.GetFileNameWithoutExtension(request.ModelPath);
        Directory.CreateDirectory(request.OutputDirectory);
        var config = QuantConfigLoader.Load(request.ConfigPath);
        var basis = Prepare(request, config, progress, cancel);
        var derived = Derive(basis, config, progress, cancel);
        var (original, prepared, model, data) = (basis.Original, basis.Prepared, basis.Model, basis.Data);
        var (floatSession, sessionOptions, floatSha256, dataFingerprint) = (basis.FloatSession, basis.SessionOptions, basis.FloatSha256, basis.DataFingerprint);
        var (plan, qatPlan, activations, weights, qatModel, biasCorrection) =
            (derived.Plan, derived.QatPlan, derived.Outcome.Activations, derived.Weights, derived.QatModel, derived.BiasCorrection);
        string chosen = derived.Outcome.Label;
        var scores = derived.Outcome.Scores.Select(c => (c.Label, c.Score)).ToList();
        var stats = basis.Calibration.Of(derived.Outcome.Chosen.NumBins).All;
        bool fromCache = basis.Calibration.FromCache;
        var cachePath = basis.Calibration.CachePath;
        var outcome = derived.Outcome;
        var calibrationTime = basis.CalibrationTime;

        var qatPath = Path.Combine(request.OutputDirectory, QdqExporter.FileName(name));
        OnnxModelWriter.Save(qatModel, qatPath);

        // Float vs qat over every calibration sample (the hmct-info table), streamed.
        var qatSession = StageModels.Session(qatModel, sessionOptions, qatPath);
        var similarity = new SimilarityTable();
        IReadOnlyList<LastBitStability.OutputStability> stability = [];
        int sampleCount = data.SampleCount, seen = 0;
        foreach (var sample in data.Samples())
        {
            cancel.ThrowIfCancellationRequested();
            // On the first sample: how much the qat model's outputs move under last-bit float differences,
            // i.e. how closely any two runtimes can agree on it.
            if (seen == 0) stability = StageModels.Stability(qatSession, sample, qatPath);
            var reference = StageModels.Run(floatSession, sample, request.ModelPath);
            Compare(similarity, reference, StageModels.Run(qatSession, sample, qatPath));
            // Not inside the Report call: `progress?.` skips evaluating its arguments when there is no progress sink.
            seen++;
            progress?.Report(new StageProgress("comparing float and qat", seen, sampleCount));
        }

        // What a check of the same models and samples would measure again: it reads this instead (FloatVsQatCache).
        FloatVsQatCache.Write(qatPath, FloatVsQatCache.KeyOf(floatSha256, qatPath, dataFingerprint),
            Enumerable.Range(0, sampleCount).Select(data.SampleLabel).ToList(), similarity, stability);

        var changeLogPath = Path.Combine(request.OutputDirectory, name + ".qconfig_changelogs.txt");
        AtomicText.Write(changeLogPath, plan.RenderChangeLog());
        // The weight scales as exported (the exporter applies the same deterministic int32-bias fit).
        var biasFit = Int32BiasFit.Apply(model, plan, activations, weights);
        var report = new ModelCheckReport(name, original, prepared, plan, activations, biasFit.Weights, stats, chosen, scores, similarity, stability,
            biasFit.Adjusted, biasCorrection);
        var txtPath = Path.Combine(request.OutputDirectory, name + ".model_check.txt");
        var jsonPath = Path.Combine(request.OutputDirectory, name + ".model_check.json");
        qatPlan?.NoteBiasFit(biasFit.Adjusted);
        AtomicText.Write(txtPath, report.RenderText() + qatPlan?.RenderText());
        AtomicText.Write(jsonPath, report.RenderJson());

        return new ExportResult
        {
            QatModelPath = qatPath,
            ModelCheckTextPath = txtPath,
            ModelCheckJsonPath = jsonPath,
            ChangeLogPath = changeLogPath,
            CalibrationCachePath = cachePath,
            CalibrationFromCache = fromCache,
            ChosenMethod = chosen,
            Candidates = scores,
            Layerwise = outcome.Layerwise,
            Similarity = similarity,
            Stability = stability,
            Plan = plan,
            Prepared = prepared,
            CalibrationTime = calibrationTime,
            TotalTime = total.Elapsed,
            DataFiles = data.Files,
            Config = config,
            Warnings = qatPlan?.Warnings ?? [],
        };
    }

    /// <summary>
    /// What every precision variant of one export shares: the prepared float model, its session, the calibration data
    /// and the calibration statistics (from the cache when model, data and statistics settings are unchanged). Applies
    /// the request's calibration data override to <paramref name="config"/>.
    /// </summary>
    public static ExportBasis Prepare(ExportRequest request, QuantConfig config, IProgress<StageProgress>? progress = null, CancellationToken cancel = default)
    {
        string name = request.Name ?? Path.GetFileNameWithoutExtension(request.ModelPath);
        var cacheDir = request.CacheDirectory ?? request.OutputDirectory;
        Directory.CreateDirectory(cacheDir);
        var original = StageModels.Load(request.ModelPath);
        // A model that already carries Q/DQ (QAT export, quantize_static): export its float graph, keep its scales.
        var qatInput = QatInput.Read(original, request.ModelPath);
        if (qatInput is not null) original = qatInput.FloatModel;

        var prepared = GraphPreparation.Prepare(original, new PreparationOptions { Equalize = config.Model.Weight.Equalization });
        var model = prepared.Model;
        var sessionOptions = new SessionOptions { Threads = request.Threads };
        var floatSession = StageModels.Session(model, sessionOptions, request.ModelPath);
        CalibrationDataOverride.Apply(config, request.CalibrationData, model.Graph.RuntimeInputs, "--calibration-data");
        var data = CalibrationDataSet.Create(config, model.Graph.RuntimeInputs);

        // Calibration statistics (CalibrationPass): from the cache when model, data and statistics settings are unchanged.
        var activation = config.Model.Activation;
        // Hashed once: the calibration cache and the float-vs-qat cache both key on it.
        string floatSha256 = FloatVsQatCache.FileSha256(request.ModelPath);
        string dataFingerprint = data.Fingerprint();
        var calibrationTime = Stopwatch.StartNew();
        // Equalization rescales channels, so statistics of the unequalized graph do not apply (and vice versa); and the
        // statistics are per tensor of the prepared graph, which a newer Quant.Build may prepare differently.
        string statisticsKey = $"model={floatSha256};data={dataFingerprint};graph={PreparedGraphHash(model)}"
            + (config.Model.Weight.Equalization ? ";equalization=true" : "");
        var run = CalibrationPass.Run(floatSession, request.ModelPath, data, cacheDir, name, statisticsKey,
            activation.NumBinCandidates, activation.PerChannel.Contains(true), request.SelectionSamples, request.Threads,
            (done, count) => progress?.Report(new StageProgress("calibration", done, count)), cancel);
        calibrationTime.Stop();
        return new ExportBasis
        {
            Original = original, Prepared = prepared, QatInput = qatInput, FloatSession = floatSession, SessionOptions = sessionOptions,
            Data = data, Calibration = run, FloatSha256 = floatSha256, DataFingerprint = dataFingerprint, ModelPath = request.ModelPath,
            CalibrationTime = calibrationTime.Elapsed,
        };
    }

    /// <summary>
    /// The qat model <paramref name="config"/>'s precision settings give on <paramref name="basis"/>: plan, calibration
    /// choice (scored on the held-out samples), QDQ export and bias correction. The same basis and config give the same
    /// model, which is how a tuned config reproduces what the tuner measured (Tuning/).
    /// </summary>
    public static QatDerivation Derive(ExportBasis basis, QuantConfig config, IProgress<StageProgress>? progress = null, CancellationToken cancel = default)
    {
        var model = basis.Model;
        var plan = PrecisionPlanner.Plan(model, config, FusedPairs(model, basis.Prepared));
        var qatPlan = basis.QatInput is null ? null : QatInputPlan.Apply(basis.QatInput, plan, config, basis.ModelPath);
        var tensorTypes = ActivationTensors(plan);
        var fixedParams = FixedParams(config, plan);
        var weights = WeightParams(model, plan, config.Model.Weight.PerChannel);
        // A QDQ input model's own scales win over calibration (QatInputPlan warns where the config asks otherwise).
        if (qatPlan is not null) (fixedParams, weights) = qatPlan.Overlay(tensorTypes, fixedParams, weights);
        // The candidates of `default` and the search lists, scored on held-out samples (CalibrationChoice).
        var context = new CalibrationContext(model, plan, tensorTypes, fixedParams, weights, basis.SessionOptions, basis.ModelPath);
        var outcome = CalibrationChoice.Choose(context, basis.Calibration, CalibrationCandidates.Of(config.Model.Activation), basis.FloatSession,
            config.Model.LayerwiseSearch, (phase, done, total) => progress?.Report(new StageProgress(phase, done, total)), cancel);

        var qatModel = QdqExporter.Export(model, plan, outcome.Activations, weights);
        BiasCorrection.Result? biasCorrection = null;
        if (config.Model.Weight.BiasCorrection)
        {
            progress?.Report(new StageProgress("bias correction", 0, 1));
            biasCorrection = BiasCorrection.Run(model, plan, qatModel, config.Model.Weight, basis.Data.SampleCount, basis.Data.Samples(), basis.SessionOptions);
            qatModel = biasCorrection.Apply(qatModel);
            progress?.Report(new StageProgress("bias correction", 1, 1));
        }
        return new QatDerivation { QatModel = qatModel, Plan = plan, QatPlan = qatPlan, Outcome = outcome, Weights = weights, BiasCorrection = biasCorrection, Context = context };
    }

    /// <summary>
    /// SHA-256 of the prepared graph's structure (each node's op type, inputs and outputs, in order): calibration
    /// statistics are kept per tensor of this graph, so a cache written for another preparation (an older build that
    /// did not fuse a composite op, say) must not be read.
    /// </summary>
    private static string PreparedGraphHash(OnnxModel model)
    {
        var text = new System.Text.StringBuilder();
        foreach (var n in model.Graph.Nodes)
            text.Append(n.Domain).Append(':').Append(n.OpType).Append('(').AppendJoin(',', n.Inputs).Append(")->").AppendJoin(',', n.Outputs).Append('\n');
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text.ToString())))[..16];
    }

    /// <summary>Every activation tensor some node reads or writes as int8/int16, with the qtype it is calibrated for.</summary>
    internal static IReadOnlyDictionary<string, QType> ActivationTensors(PrecisionPlan plan)
    {
        var result = new SortedDictionary<string, QType>(StringComparer.Ordinal);
        foreach (var n in plan.Nodes)
        {
            if (n.ShapeOnly) continue;
            foreach (var i in n.Inputs)
                if (i.Role == InputRole.Activation && !i.Fused && i.QType is QType.Int8 or QType.Int16 && i.Tensor.Length > 0)
                    result.TryAdd(i.Tensor, i.QType!.Value);
            foreach (var o in n.Outputs)
                if (o.QType is QType.Int8 or QType.Int16 && o.Tensor.Length > 0)
                    result.TryAdd(o.Tensor, o.QType!.Value);
        }
        return result;
    }

    private static IReadOnlyDictionary<string, QuantParams> FixedParams(QuantConfig config, PrecisionPlan plan)
    {
        var result = new Dictionary<string, QuantParams>(StringComparer.Ordinal);
        foreach (var (nodeName, nc) in config.Nodes)
        {
            if (nc.Scale is null && nc.Threshold is null) continue;
            var np = plan.ByName(nodeName);
            if (np is null) continue; // the planner already reported unknown node names
            foreach (var o in np.Outputs)
                if (o.Tensor.Length > 0)
                    result[o.Tensor] = ActivationScales.Fixed(o.QType is QType.Int16 ? QType.Int16 : QType.Int8, nc.Scale, nc.Threshold);
        }
        return result;
    }

    private static IReadOnlyDictionary<string, QuantParams> WeightParams(OnnxModel model, PrecisionPlan plan, bool perChannel)
    {
        var result = new SortedDictionary<string, QuantParams>(StringComparer.Ordinal);
        foreach (var n in plan.Nodes)
        {
            foreach (var i in n.Inputs)
            {
                if (i.Role != InputRole.Weight || i.QType is not (QType.Int8 or QType.Int16) || result.ContainsKey(i.Tensor)) continue;
                if (!model.Graph.Initializers.TryGetValue(i.Tensor, out var data)) continue;
                var w = Tensor.FromData(data);
                int? axis = perChannel ? QdqExporter.WeightAxis(n.Node, i.Index, w.Rank) : null;
                result[i.Tensor] = axis is int a ? WeightQuantizer.Params(w, a, i.QType.Value) : WeightQuantizer.PerTensor(w, i.QType.Value);
            }
        }
        return result;
    }

    internal static IReadOnlyList<FusedPair> FusedPairs(OnnxModel model, PreparedModel prepared)
    {
        var byName = model.Graph.Nodes.Where(n => n.Name.Length > 0).GroupBy(n => n.Name).ToDictionary(g => g.Key, g => g.First());
        var pairs = new List<FusedPair>();
        foreach (var f in prepared.Fusions.Where(f => f.Fused))
        {
            if (!byName.TryGetValue(f.ProducerNode, out var producer)) continue;
            foreach (var a in f.ActivationNodes)
                if (byName.TryGetValue(a, out var act)) pairs.Add(new FusedPair(producer, act));
        }
        return pairs;
    }

    private static void Compare(SimilarityTable table, IReadOnlyDictionary<string, Tensor> reference, IReadOnlyDictionary<string, Tensor> actual)
    {
        foreach (var (output, r) in reference)
            if (r.Type is ElementType.Float or ElementType.Float16 or ElementType.Double)
                table.Add(output, Similarity.Of(actual[output], r));
    }
}
