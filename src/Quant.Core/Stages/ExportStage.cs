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
    /// <summary>The external-data files the float model's weights were read from.</summary>
    public IReadOnlyList<string> ExternalDataFiles { get; init; } = [];
    /// <summary>The config as the stage used it (calibration data overrides applied).</summary>
    public required QuantConfig Config { get; init; }
    /// <summary>Warnings in the canonical form (<c>FILE: warning QBnnnn: ...</c>), e.g. where a QDQ input model's own quantization overrides the config.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
}

/// <summary>
/// Export: float ONNX + quantization config + calibration data → <c>NAME.qat.onnx</c> (QDQ),
/// <c>NAME.model_check.txt/.json</c>, <c>NAME.qconfig_changelogs.txt</c> and a calibration cache.
/// Calibration is one streamed pass whose statistics are cached on disk, keyed by the model bytes,
/// the data fingerprint and the statistics settings: a changed precision setting re-derives scales
/// from the cache without running calibration again.
/// </summary>
public static partial class ExportStage
{
    public static ExportResult Run(ExportRequest request, IProgress<StageProgress>? progress = null, CancellationToken cancel = default)
    {
        var total = Stopwatch.StartNew();
        string name = request.Name ?? Path.GetFileNameWithoutExtension(request.ModelPath);
        Directory.CreateDirectory(request.OutputDirectory);
        var cacheDir = request.CacheDirectory ?? request.OutputDirectory;
        Directory.CreateDirectory(cacheDir);
        // What an export killed mid-write left (never read; AtomicFile): gone before this one writes the same files.
        AtomicFile.SweepStale(request.OutputDirectory, name + ".");
        AtomicFile.SweepStale(cacheDir, name + ".");

        var config = QuantConfigLoader.Load(request.ConfigPath);
        var cal = Calibrate(request, config, cacheDir, name, progress, cancel);
        var q = Quantize(cal, config, progress, cancel);
        var (original, prepared, model, sessionOptions, floatSession, data) = (cal.Original, cal.Prepared, cal.Model, cal.SessionOptions, cal.FloatSession, cal.Data);
        var (floatSha256, dataFingerprint, calibrationTime) = (cal.FloatSha256, cal.DataFingerprint, cal.CalibrationTime);
        var (plan, qatPlan, activations, weights, outcome) = (q.Plan, q.QatPlan, q.Activations, q.Weights, q.Outcome);
        string chosen = outcome.Label;
        var scores = outcome.Scores.Select(c => (c.Label, c.Score)).ToList();
        var stats = cal.Run.Of(outcome.Chosen.NumBins).All;
        bool fromCache = cal.Run.FromCache;
        var cachePath = cal.Run.CachePath;
        var qatModel = q.QatModel;
        var biasCorrection = q.BiasCorrection;
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
            ExternalDataFiles = cal.ExternalDataFiles,
            Config = config,
            Warnings = [.. cal.Run.Warnings, .. qatPlan?.Warnings ?? []],
        };
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

    private static IReadOnlyList<FusedPair> FusedPairs(OnnxModel model, PreparedModel prepared)
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
