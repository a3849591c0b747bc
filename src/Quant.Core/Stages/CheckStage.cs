using Quant.Core.Analysis;
using Quant.Core.Checks;
using Quant.Core.Config;
using Quant.Core.Data;
using Quant.Core.DeploymentRuntime;
using Quant.Core.Diagnostics;
using Quant.Core.Passes;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Stages;

/// <summary>What the check stage is asked to do.</summary>
public sealed class CheckRequest
{
    /// <summary>The float .onnx model (the reference of qat_vs_float).</summary>
    public required string ModelPath { get; init; }
    /// <summary>The export stage's NAME.qat.onnx.</summary>
    public required string QatModelPath { get; init; }
    /// <summary>The convert stage's NAME.quantized.onnx (quantized_vs_qat, and the reference of compiled_vs_quantized); null: not checked.</summary>
    public string? QuantizedModelPath { get; init; }
    /// <summary>The compile stage's NAME.qbm (compiled_vs_quantized); null: not checked.</summary>
    public string? CompiledModelPath { get; init; }
    public required string ConfigPath { get; init; }
    /// <summary>Folder for NAME.check.json, NAME.check.junit.xml and NAME.check.md.</summary>
    public required string OutputDirectory { get; init; }
    /// <summary>Artifact base name and the model's name in messages (default: the model file's name without extension).</summary>
    public string? Name { get; init; }
    /// <summary>A committed baseline of accepted metrics, or <c>package:ID[@VERSION]</c> (a shipped package's check report); null: no regression checks.</summary>
    public string? BaselinePath { get; init; }
    /// <summary>The project whose nuget.config settings resolve a package baseline and where problems with it are reported; null: the current folder.</summary>
    public string? ProjectPath { get; init; }
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>Calibration data globs replacing the config's for a single-input model (MSBuild CalibrationData); null: the config's.</summary>
    public IReadOnlyList<string>? CalibrationData { get; init; }
    /// <summary>
    /// The stage pairs to measure; null: qat_vs_float and runtime_vs_qat (only when ONNX Runtime can load the qat model),
    /// plus quantized_vs_qat when <see cref="QuantizedModelPath"/> is given and compiled_vs_quantized when
    /// <see cref="CompiledModelPath"/> is too. A stage named here (or by a rule) is required: ORT failing to load the
    /// model is then an error, and so is a missing quantized or compiled model.
    /// </summary>
    public IReadOnlyList<CheckStagePair>? Stages { get; init; }
    /// <summary>A Markdown file the summary is appended to (GitHub Actions' job summary); null: none.</summary>
    public string? StepSummaryPath { get; init; } = Environment.GetEnvironmentVariable("GITHUB_STEP_SUMMARY") is { Length: > 0 } s ? s : null;

    public string ArtifactName => Name ?? Path.GetFileNameWithoutExtension(ModelPath);
}

/// <summary>Every measured value of one check run, before thresholds are applied.</summary>
public sealed class CheckMeasurements
{
    public required string Name { get; init; }
    public required QuantConfig Config { get; init; }
    public required int SampleCount { get; init; }
    /// <summary>Per stage pair that was measured: per float output, the per-sample similarity.</summary>
    public required IReadOnlyDictionary<CheckStagePair, SimilarityTable> Similarity { get; init; }
    /// <summary>Per stage pair: evaluator metric → value.</summary>
    public required IReadOnlyDictionary<CheckStagePair, SortedDictionary<string, double>> Evaluators { get; init; }
    /// <summary>The qat model the stage pairs measured (named by the runtime_vs_qat default bound).</summary>
    public required string QatModelPath { get; init; }
    /// <summary>The quantized and compiled models measured; null when their stage pairs were not.</summary>
    public string? QuantizedModelPath { get; init; }
    public string? CompiledModelPath { get; init; }
    /// <summary>
    /// Per float output, the qat model's last-bit stability behind the default bounds of runtime_vs_qat and
    /// quantized_vs_qat; empty when no default bound needed it.
    /// </summary>
    public IReadOnlyList<LastBitStability.OutputStability> Stability { get; init; } = [];
    /// <summary>
    /// Per float output, the qat model's floor under ±1-LSB requantization flips (LastBitStability.MeasureRequantizationFlips)
    /// on the same sample; quantized_vs_qat's default bound uses the lower of this and <see cref="Stability"/>. Empty when
    /// that pair had no default bound to set.
    /// </summary>
    public IReadOnlyList<LastBitStability.OutputStability> FlipStability { get; init; } = [];
    /// <summary>The share of integers <see cref="FlipStability"/> flipped: the quantized model's own, measured node by node on the same sample.</summary>
    public double FlipShare { get; init; } = LastBitStability.RequantizationFlipShare;
    /// <summary>compiled_vs_quantized's byte-for-byte comparison of every output; null when that pair was not measured.</summary>
    public BitExactness? Exactness { get; init; }
    /// <summary>True when qat_vs_float was read from the export's <see cref="FloatVsQatCache"/> instead of run again.</summary>
    public bool QatVsFloatFromExport { get; init; }
    /// <summary>runtime_vs_qat's circumstances when that stage was selected; null when it was not.</summary>
    public RuntimeMeasurement? Runtime { get; init; }
}

/// <summary>How runtime_vs_qat ran (or why it did not).</summary>
public sealed class RuntimeMeasurement
{
    /// <summary>The ONNX Runtime version, e.g. 1.32.0 (always with all graph optimizations: what deployments run).</summary>
    public required string Version { get; init; }
    /// <summary>Why the stage was skipped (ONNX Runtime cannot load the qat model); null when it ran.</summary>
    public string? Skipped { get; init; }
    /// <summary>Per output, the qat model's last-bit stability behind the default bounds; empty when every output has a rule.</summary>
    public required IReadOnlyList<LastBitStability.OutputStability> Stability { get; init; }
}

/// <summary>What the check stage found and wrote.</summary>
public sealed class CheckResult
{
    public required CheckMeasurements Measurements { get; init; }
    /// <summary>Every check, in rule order then baseline entries.</summary>
    public required IReadOnlyList<CheckOutcome> Outcomes { get; init; }
    public bool Passed => Outcomes.All(o => o.Passed);
    public IEnumerable<CheckOutcome> Failures => Outcomes.Where(o => !o.Passed);
    public required string JsonPath { get; init; }
    public required string JUnitPath { get; init; }
    public required string MarkdownPath { get; init; }
}

/// <summary>
/// The accuracy gate: runs the float and the qat model over the calibration samples, measures every float output
/// (<see cref="Similarity"/>), runs evaluator commands, applies the <c>checks:</c> thresholds and the baseline, and
/// writes <c>NAME.check.json</c> (deterministic), <c>NAME.check.junit.xml</c> and <c>NAME.check.md</c>.
/// Earlier reports of the same name are deleted first, so a run that fails or is cancelled leaves none behind.
/// </summary>
public static class CheckStage
{
    public static string JsonFile(string name) => name + ".check.json";
    public static string JUnitFile(string name) => name + ".check.junit.xml";
    public static string MarkdownFile(string name) => name + ".check.md";

    public static CheckResult Run(CheckRequest request, IProgress<StageProgress>? progress = null, CancellationToken cancel = default)
    {
        var name = request.ArtifactName;
        Directory.CreateDirectory(request.OutputDirectory);
        var jsonPath = Path.Combine(request.OutputDirectory, JsonFile(name));
        var junitPath = Path.Combine(request.OutputDirectory, JUnitFile(name));
        var mdPath = Path.Combine(request.OutputDirectory, MarkdownFile(name));
        foreach (var p in new[] { jsonPath, junitPath, mdPath }) File.Delete(p);

        // The baseline is read before the models run so that a broken one fails fast.
        var baseline = request.BaselinePath is { } bp ? Baseline.Open(bp, name, request.ProjectPath, cancel) : null;
        var m = Measure(request, progress, cancel);
        var outcomes = Evaluate(m, baseline);
        var result = new CheckResult { Measurements = m, Outcomes = outcomes, JsonPath = jsonPath, JUnitPath = junitPath, MarkdownPath = mdPath };

        var reports = new CheckReports(result, request);
        AtomicText.Write(mdPath, reports.Markdown());
        AtomicText.Write(junitPath, reports.JUnit());
        AtomicText.Write(jsonPath, reports.Json());
        if (request.StepSummaryPath is { } summary) File.AppendAllText(summary, reports.Markdown() + "\n");
        return result;
    }

    /// <summary>
    /// Runs the models and evaluators: every metric of every float output of every selected stage pair, whatever the
    /// thresholds. qat_vs_float comes from the export's <see cref="FloatVsQatCache"/> when it matches (no evaluator
    /// needs the outputs themselves); runtime_vs_qat runs ONNX Runtime (all optimizations) and the engine on the qat model.
    /// </summary>
    public static CheckMeasurements Measure(CheckRequest request, IProgress<StageProgress>? progress = null, CancellationToken cancel = default)
    {
        var name = request.ArtifactName;
        var config = QuantConfigLoader.Load(request.ConfigPath);
        var rules = config.CheckRules.Rules;
        var selected = SelectStages(request, rules);
        bool qatVsFloat = selected.Contains(CheckStagePair.QatVsFloat);
        bool runtime = selected.Contains(CheckStagePair.RuntimeVsQat);
        bool quantizedVsQat = selected.Contains(CheckStagePair.QuantizedVsQat);
        bool compiledVsQuantized = selected.Contains(CheckStagePair.CompiledVsQuantized);

        var original = StageModels.Load(request.ModelPath);
        var floatModel = GraphPreparation.Prepare(original).Model;
        var qatModel = StageModels.Load(request.QatModelPath);
        var options = new SessionOptions { Threads = request.Threads };
        var floatSession = StageModels.Session(floatModel, options, request.ModelPath);
        var qatSession = StageModels.Session(qatModel, options, request.QatModelPath);
        // The quantized model runs in the same engine as the qat model (its quant.build kernels are registered there);
        // the compiled one in Quant.Runtime, as it is deployed.
        var quantizedPath = request.QuantizedModelPath;
        var quantizedSession = quantizedVsQat || compiledVsQuantized
            ? StageModels.Session(StageModels.Load(quantizedPath!), options, quantizedPath!) : null;
        var compiled = compiledVsQuantized ? CompiledModels.Load(request.CompiledModelPath!) : null;
        CalibrationDataOverride.Apply(config, request.CalibrationData, floatModel.Graph.RuntimeInputs, "--calibration-data");
        var data = CalibrationDataSet.Create(config, floatModel.Graph.RuntimeInputs);

        var floatOutputs = floatModel.Graph.Outputs.Where(o => o.Type is ElementType.Float or ElementType.Float16 or ElementType.Double).Select(o => o.Name).ToList();
        var allOutputs = floatModel.Graph.Outputs.Select(o => o.Name).ToList();
        foreach (var rule in rules)
        {
            if (rule.Output == "*" || floatOutputs.Contains(rule.Output)) continue;
            var why = allOutputs.Contains(rule.Output) ? "is not a float output, so it has no similarity metrics"
                : $"is not an output of the model" + (YamlReader.Nearest(rule.Output, allOutputs) is { } near ? $"; did you mean '{near}'?" : "");
            throw new QuantException(ErrorCode.CheckUnknownOutput, rule.OutputPosition,
                $"checks.{rule.Name}.output: '{rule.Output}' {why} Float outputs: {string.Join(", ", floatOutputs)}");
        }

        // ONNX Runtime: the stage is skipped (and says why) when ORT cannot load the model, unless it was asked for by name.
        OrtRunner? ort = null;
        string? runtimeSkipped = null;
        if (runtime)
        {
            bool required = request.Stages is not null || rules.Any(r => r.Stage == CheckStagePair.RuntimeVsQat);
            try { ort = new OrtRunner(request.QatModelPath, OrtOptimization.All, request.Threads); }
            catch (QuantException e) when (e.Code == ErrorCode.ModelUnreadable && !required)
            {
                runtimeSkipped = e.Message;
                runtime = false;
            }
        }
        using var ortScope = ort;

        var labels = Enumerable.Range(0, data.SampleCount).Select(data.SampleLabel).ToList();
        var cache = qatVsFloat || runtime || quantizedVsQat
            ? FloatVsQatCache.TryRead(request.QatModelPath, FloatVsQatCache.KeyOf(FloatVsQatCache.ModelSha256(request.ModelPath, original), request.QatModelPath, data.Fingerprint()), labels, floatOutputs)
            : null;
        // Evaluators read each sample's outputs, which the cache does not hold.
        var fromCache = qatVsFloat && cache is not null && !rules.Any(r => r.Stage == CheckStagePair.QatVsFloat && r.Evaluator is not null)
            ? cache.Similarity : null;
        // The last-bit floor is needed for the outputs no runtime_vs_qat (quantized_vs_qat) rule bounds.
        bool Unbounded(CheckStagePair stage) => floatOutputs.Any(o => !rules.Any(r => r.Stage == stage && r.Thresholds.Count > 0 && r.Covers(o)));
        bool needFloor = (runtime && Unbounded(CheckStagePair.RuntimeVsQat)) || (quantizedVsQat && Unbounded(CheckStagePair.QuantizedVsQat));
        IReadOnlyList<LastBitStability.OutputStability> stability =
            needFloor && cache is not null && floatOutputs.All(o => cache.Stability.Any(st => st.Output == o)) ? cache.Stability : [];
        bool needFlipFloor = quantizedVsQat && Unbounded(CheckStagePair.QuantizedVsQat);
        IReadOnlyList<LastBitStability.OutputStability> flipStability = [];
        double flipShare = LastBitStability.RequantizationFlipShare;

        var measured = new List<CheckStagePair>();
        if (qatVsFloat) measured.Add(CheckStagePair.QatVsFloat);
        if (runtime) measured.Add(CheckStagePair.RuntimeVsQat);
        if (quantizedVsQat) measured.Add(CheckStagePair.QuantizedVsQat);
        if (compiledVsQuantized) measured.Add(CheckStagePair.CompiledVsQuantized);
        var exactness = compiledVsQuantized ? new BitExactness() : null;
        var tables = measured.ToDictionary(s => s, s => s == CheckStagePair.QatVsFloat && fromCache is not null ? fromCache : new SimilarityTable());
        var evaluators = rules.Where(r => r.Evaluator is not null && measured.Contains(r.Stage)).ToList();
        string? evalDir = evaluators.Count > 0 ? Path.Combine(request.OutputDirectory, $".{name}.check.evaluator.{Environment.ProcessId}") : null;
        try
        {
            // Per stage with an evaluator: the later stage's outputs and the earlier stage's, as .npy files.
            var folders = new Dictionary<CheckStagePair, (OutputFolder Outputs, OutputFolder Reference)>();
            if (evalDir is not null)
            {
                if (Directory.Exists(evalDir)) Directory.Delete(evalDir, recursive: true);
                foreach (var stage in evaluators.Select(r => r.Stage).Distinct())
                    folders[stage] = (new OutputFolder(Path.Combine(evalDir, CheckNames.Of(stage), "outputs")),
                                      new OutputFolder(Path.Combine(evalDir, CheckNames.Of(stage), "reference")));
            }
            bool runFloat = qatVsFloat && fromCache is null;
            bool runQat = runFloat || runtime || quantizedVsQat;
            var phase = Phase(runFloat, runtime, quantizedVsQat, compiledVsQuantized);
            int index = 0;
            if (runQat || quantizedSession is not null)
                foreach (var sample in data.Samples())
                {
                    cancel.ThrowIfCancellationRequested();
                    IReadOnlyDictionary<string, Tensor>? qat = null;
                    if (runQat)
                    {
                        // On the first sample, like the export: how far the qat model's outputs move under last-bit noise.
                        if (index == 0 && needFloor && stability.Count == 0) stability = StageModels.Stability(qatSession, sample, request.QatModelPath);
                        if (index == 0 && needFlipFloor) (flipStability, flipShare) = StageModels.FlipStability(qatSession, quantizedSession?.Model, sample, request.QatModelPath);
                        qat = Outputs(StageModels.Run(qatSession, sample, request.QatModelPath), request.QatModelPath, "qat model", "re-export it from this model");
                    }
                    if (runFloat) Compare(CheckStagePair.QatVsFloat, StageModels.Run(floatSession, sample, request.ModelPath), qat!);
                    if (runtime) Compare(CheckStagePair.RuntimeVsQat, qat!, ort!.Run(sample));
                    if (quantizedSession is not null)
                    {
                        var quantized = Outputs(StageModels.Run(quantizedSession, sample, quantizedPath!), quantizedPath!, "quantized model", "convert the qat model again");
                        if (quantizedVsQat) Compare(CheckStagePair.QuantizedVsQat, qat!, quantized);
                        if (compiled is not null)
                        {
                            var qbm = request.CompiledModelPath!;
                            var compiledOut = CompiledModels.Run(compiled, sample, qbm);
                            exactness!.Add(index, compiledOut, quantized);
                            // Similarity needs the same shape; a program that gets even that wrong is reported here as the bug it is.
                            foreach (var o in floatOutputs)
                                if (!compiledOut.TryGetValue(o, out var c) || c.Type != quantized[o].Type || !c.Shape.AsSpan().SequenceEqual(quantized[o].Shape))
                                    throw new QuantException(ErrorCode.CheckCompiledNotBitExact, SourcePosition.InFile(qbm),
                                        $"{name}: compiled_vs_quantized output '{o}' is {(c is null ? "missing" : c.ToString())} where the quantized model gives {quantized[o]}; " +
                                        "the compiled program must compute exactly what the quantized model does, so this is a bug in compile or in Quant.Runtime: please report it with the model");
                            Compare(CheckStagePair.CompiledVsQuantized, quantized, compiledOut);
                        }
                    }
                    index++;
                    progress?.Report(new StageProgress(phase, index, data.SampleCount));

                    IReadOnlyDictionary<string, Tensor> Outputs(IReadOnlyDictionary<string, Tensor> outputs, string file, string what, string fix)
                    {
                        foreach (var o in floatOutputs)
                            if (!outputs.ContainsKey(o))
                                throw new QuantException(ErrorCode.CheckUnknownOutput, SourcePosition.InFile(file),
                                    $"the {what} has no output '{o}' that the float model has; {fix}");
                        return outputs;
                    }

                    void Compare(CheckStagePair stage, IReadOnlyDictionary<string, Tensor> reference, IReadOnlyDictionary<string, Tensor> actual)
                    {
                        foreach (var o in floatOutputs) tables[stage].Add(o, Similarity.Of(actual[o], reference[o]));
                        if (folders.TryGetValue(stage, out var f))
                        {
                            f.Outputs.Add(index, data.SampleLabel(index), actual);
                            f.Reference.Add(index, data.SampleLabel(index), reference);
                        }
                    }
                }

            var values = measured.ToDictionary(s => s, _ => new SortedDictionary<string, double>(StringComparer.Ordinal));
            if (evalDir is not null)
            {
                foreach (var (outputs, reference) in folders.Values)
                {
                    outputs.WriteIndex();
                    reference.WriteIndex();
                }
                int k = 0;
                foreach (var rule in evaluators)
                {
                    cancel.ThrowIfCancellationRequested();
                    progress?.Report(new StageProgress("running evaluators", k, evaluators.Count));
                    k++;
                    var env = new Dictionary<string, string>
                    {
                        ["QUANT_MODEL_NAME"] = name,
                        ["QUANT_STAGE"] = CheckNames.Of(rule.Stage),
                        ["QUANT_MODEL"] = Path.GetFullPath(request.ModelPath),
                        ["QUANT_QAT_MODEL"] = Path.GetFullPath(request.QatModelPath),
                        ["QUANT_QUANTIZED_MODEL"] = quantizedPath is null ? "" : Path.GetFullPath(quantizedPath),
                        ["QUANT_COMPILED_MODEL"] = request.CompiledModelPath is null ? "" : Path.GetFullPath(request.CompiledModelPath),
                        ["QUANT_CONFIG"] = Path.GetFullPath(request.ConfigPath),
                    };
                    var e = rule.Evaluator!;
                    var (outputs, reference) = folders[rule.Stage];
                    values[rule.Stage][e.Metric] = EvaluatorRunner.Run(e, outputs.Root, reference.Root, Path.Combine(evalDir, "result.json"),
                        config.BaseDirectory, env, cancel);
                }
                progress?.Report(new StageProgress("running evaluators", evaluators.Count, evaluators.Count));
            }
            return new CheckMeasurements
            {
                Name = name, Config = config, SampleCount = data.SampleCount, QatModelPath = request.QatModelPath,
                QuantizedModelPath = quantizedVsQat || compiledVsQuantized ? quantizedPath : null,
                CompiledModelPath = compiledVsQuantized ? request.CompiledModelPath : null,
                Similarity = tables, Evaluators = values, QatVsFloatFromExport = fromCache is not null,
                Stability = stability, FlipStability = flipStability, FlipShare = flipShare, Exactness = exactness,
                Runtime = selected.Contains(CheckStagePair.RuntimeVsQat)
                    ? new RuntimeMeasurement { Version = OrtRunner.Version, Skipped = runtimeSkipped, Stability = stability }
                    : null,
            };
        }
        finally
        {
            if (evalDir is not null && Directory.Exists(evalDir))
            {
                try { Directory.Delete(evalDir, recursive: true); }
                catch (IOException) { } // a still-running child holding a file: the folder name is per process and never read back
            }
        }
    }

    /// <summary>
    /// The stage pairs to measure: the request's, else the default (qat_vs_float, runtime_vs_qat, and the pairs whose
    /// models were given). A pair named by --stage, or by a rule when the default applies, whose model is missing is
    /// QB5006: a rule that silently checks nothing would pass a build it should not.
    /// </summary>
    private static IReadOnlyList<CheckStagePair> SelectStages(CheckRequest request, IReadOnlyList<CheckRule> rules)
    {
        string? Missing(CheckStagePair stage) => stage switch
        {
            CheckStagePair.QuantizedVsQat when request.QuantizedModelPath is null => "the convert stage's NAME.quantized.onnx (--quantized)",
            CheckStagePair.CompiledVsQuantized when request.QuantizedModelPath is null || request.CompiledModelPath is null =>
                "the compile stage's NAME.qbm (--compiled) and the NAME.quantized.onnx it was compiled from (--quantized)",
            _ => null,
        };
        const string Fix = "pass it, or in a build keep convert and compile in the QuantModel's Stages";
        foreach (var stage in request.Stages ?? [])
            if (Missing(stage) is { } what)
                throw new QuantException(ErrorCode.CheckStageUnavailable, SourcePosition.InFile(request.ConfigPath),
                    $"--stage {CheckNames.Of(stage)} compares {what}, which was not given; {Fix}");
        if (request.Stages is not null) return request.Stages;
        foreach (var rule in rules)
            if (Missing(rule.Stage) is { } what)
                throw new QuantException(ErrorCode.CheckStageUnavailable, rule.StagePosition,
                    $"checks.{rule.Name}: stage '{CheckNames.Of(rule.Stage)}' compares {what}, which was not given; {Fix}, or remove the rule");
        var selected = new List<CheckStagePair> { CheckStagePair.QatVsFloat, CheckStagePair.RuntimeVsQat };
        if (request.QuantizedModelPath is not null) selected.Add(CheckStagePair.QuantizedVsQat);
        if (request.QuantizedModelPath is not null && request.CompiledModelPath is not null) selected.Add(CheckStagePair.CompiledVsQuantized);
        return selected;
    }

    /// <summary>What the progress line says the sample loop compares.</summary>
    private static string Phase(bool qatVsFloat, bool runtime, bool quantized, bool compiled)
    {
        if (runtime && !qatVsFloat && !quantized && !compiled) return "comparing ONNX Runtime and qat";
        var models = new List<string>();
        if (qatVsFloat) models.Add("float");
        if (qatVsFloat || runtime || quantized) models.Add("qat");
        if (runtime) models.Add("ONNX Runtime");
        if (quantized || compiled) models.Add("quantized");
        if (compiled) models.Add("compiled");
        if (models.Count == 0) return "comparing"; // nothing runs: qat_vs_float comes from the export's measurement
        return "comparing " + (models.Count == 1 ? models[0] : string.Join(", ", models.Take(models.Count - 1)) + " and " + models[^1]);
    }

    /// <summary>Applies the rules' thresholds and the baseline to the measurements.</summary>
    public static IReadOnlyList<CheckOutcome> Evaluate(CheckMeasurements m, Baseline? baseline)
    {
        var outcomes = new List<CheckOutcome>();
        var checks = m.Config.CheckRules;
        foreach (var rule in checks.Rules)
        {
            if (!m.Similarity.TryGetValue(rule.Stage, out var table)) continue;
            var stage = CheckNames.Of(rule.Stage);
            foreach (var output in table.Outputs.Where(rule.Covers))
                foreach (var t in rule.Thresholds)
                    foreach (var (lower, limit, at) in Bounds(t.Min, t.Max, t.MinPosition, t.MaxPosition))
                    {
                        var over = t.AggregateFor(lower);
                        var value = Aggregate(table.Of(output, Metric(t.Metric)), over);
                        bool ok = lower ? value >= limit : value <= limit;
                        var (v, l) = Format.Pair(value, limit);
                        outcomes.Add(new CheckOutcome
                        {
                            Kind = CheckKind.Threshold, Rule = rule.Name, Stage = rule.Stage, Output = output,
                            Metric = CheckNames.Of(t.Metric), Aggregate = over, Value = value, Limit = limit, Lower = lower, Passed = ok,
                            Position = at, Code = ErrorCode.CheckFailed,
                            Message = $"{m.Name}: {stage} output '{output}' {CheckNames.Of(t.Metric)} {CheckNames.Of(over)} {v} {Compare(ok, lower)} {l}",
                        });
                    }
            if (rule.Evaluator is { } e && m.Evaluators.TryGetValue(rule.Stage, out var ev) && ev.TryGetValue(e.Metric, out var score))
                foreach (var (lower, limit, at) in Bounds(e.Min, e.Max, e.MinPosition, e.MaxPosition))
                {
                    bool ok = lower ? score >= limit : score <= limit;
                    var (v, l) = Format.Pair(score, limit);
                    outcomes.Add(new CheckOutcome
                    {
                        Kind = CheckKind.Evaluator, Rule = rule.Name, Stage = rule.Stage, Output = "", Metric = e.Metric,
                        Value = score, Limit = limit, Lower = lower, Passed = ok, Position = at, Code = ErrorCode.CheckFailed,
                        Message = $"{m.Name}: {stage} evaluator '{e.Metric}' {v} {Compare(ok, lower)} {l}",
                    });
                }
        }
        if (m.Similarity.TryGetValue(CheckStagePair.RuntimeVsQat, out var runtime)) outcomes.AddRange(DefaultBounds.RuntimeVsQat(m, runtime));
        if (m.Similarity.TryGetValue(CheckStagePair.QuantizedVsQat, out var quantized)) outcomes.AddRange(DefaultBounds.QuantizedVsQat(m, quantized));
        if (m.Exactness is { } exactness) outcomes.AddRange(DefaultBounds.CompiledVsQuantized(m, exactness));
        if (baseline is not null) outcomes.AddRange(AgainstBaseline(m, baseline));
        return outcomes;
    }

    /// <summary>
    /// The baseline a <c>baseline update</c> writes: per float output the worst-sample aggregate of every metric and
    /// every other aggregate a threshold reads, plus every evaluator metric.
    /// </summary>
    public static Baseline BaselineOf(CheckMeasurements m)
    {
        var b = new Baseline();
        foreach (var (stage, table) in m.Similarity)
        {
            var bs = b.Stage(stage);
            foreach (var output in table.Outputs)
            {
                var metrics = new SortedDictionary<string, double>(StringComparer.Ordinal);
                foreach (var (_, metric) in CheckNames.Metrics)
                {
                    var spread = table.Of(output, Metric(metric));
                    metrics[Baseline.Key(metric, CheckNames.Worst(metric))] = Aggregate(spread, CheckNames.Worst(metric));
                    foreach (var rule in m.Config.CheckRules.Rules.Where(r => r.Stage == stage && r.Covers(output)))
                        foreach (var t in rule.Thresholds.Where(t => t.Metric == metric))
                            foreach (var (lower, _, _) in Bounds(t.Min, t.Max, default, default))
                                metrics[Baseline.Key(metric, t.AggregateFor(lower))] = Aggregate(spread, t.AggregateFor(lower));
                }
                bs.Outputs[output] = metrics;
            }
        }
        foreach (var (stage, values) in m.Evaluators)
            foreach (var (metric, v) in values) b.Stage(stage).Evaluators[metric] = v;
        return b;
    }

    private static IEnumerable<CheckOutcome> AgainstBaseline(CheckMeasurements m, Baseline baseline)
    {
        var checks = m.Config.CheckRules;
        var file = baseline.Label;
        foreach (var (stageName, bs) in baseline.Stages)
        {
            var stage = CheckNames.Stages.First(s => s.Name == stageName).Value;
            if (!m.Similarity.TryGetValue(stage, out var table)) continue; // a later stage pair this build does not run
            foreach (var (output, metrics) in bs.Outputs)
                foreach (var (key, accepted) in metrics)
                {
                    var (metric, over) = Baseline.ParseKey(key)!.Value;
                    var metricName = CheckNames.Of(metric);
                    bool higher = CheckNames.HigherIsBetter(metric);
                    var covering = checks.Rules.Where(r => r.Stage == stage && r.Covers(output))
                        .SelectMany(r => r.Thresholds.Where(t => t.Metric == metric)
                            .SelectMany(t => Bounds(t.Min, t.Max, t.MinPosition, t.MaxPosition).Where(b => t.AggregateFor(b.Lower) == over)
                                .Select(b => (Rule: r, b.At))))
                        .FirstOrDefault();
                    double tolerance = checks.ToleranceFor(stage, output, metricName);
                    var at = covering.Rule is not null ? covering.At : baseline.Position;
                    if (!table.Outputs.Contains(output))
                    {
                        yield return Missing(m.Name, stage, output, metricName, over, accepted, higher, tolerance, covering.Rule?.Name, at, file, baseline.AcceptHint);
                        continue;
                    }
                    var value = Aggregate(table.Of(output, Metric(metric)), over);
                    yield return Regression(m.Name, stage, output, metricName, over, value, accepted, higher, tolerance, covering.Rule?.Name, at, file, baseline.AcceptHint,
                        $"output '{output}' {metricName} {CheckNames.Of(over)}");
                }
            foreach (var (metric, accepted) in bs.Evaluators)
            {
                var rule = checks.Rules.FirstOrDefault(r => r.Stage == stage && r.Evaluator?.Metric == metric);
                double tolerance = checks.ToleranceFor(stage, "", metric);
                var e = rule?.Evaluator;
                var at = e is null ? baseline.Position : e.Min is not null ? e.MinPosition : e.MaxPosition;
                bool higher = e?.HigherIsBetter ?? true;
                if (e is null || !m.Evaluators.TryGetValue(stage, out var values) || !values.TryGetValue(metric, out var value))
                {
                    yield return Missing(m.Name, stage, "", metric, null, accepted, higher, tolerance, rule?.Name, at, file, baseline.AcceptHint);
                    continue;
                }
                yield return Regression(m.Name, stage, "", metric, null, value, accepted, higher, tolerance, rule!.Name, at, file, baseline.AcceptHint, $"evaluator '{metric}'");
            }
        }
    }

    private static CheckOutcome Regression(string name, CheckStagePair stage, string output, string metric, CheckAggregate? over,
        double value, double accepted, bool higher, double tolerance, string? rule, SourcePosition at, string file, string accept, string subject)
    {
        // NaN compares false both ways: a NaN value is a regression, a NaN baseline accepts nothing.
        bool ok = higher ? value >= accepted - tolerance : value <= accepted + tolerance;
        if (double.IsPositiveInfinity(accepted) && double.IsPositiveInfinity(value)) ok = true;
        var (v, a) = Format.Pair(value, accepted);
        return new CheckOutcome
        {
            Kind = CheckKind.Baseline, Rule = rule, Stage = stage, Output = output, Metric = metric, Aggregate = over,
            Value = value, Limit = accepted, Lower = higher, Tolerance = tolerance, Passed = ok, Position = at, Code = ErrorCode.CheckBaselineRegression,
            Message = ok
                ? $"{name}: {CheckNames.Of(stage)} {subject} {v} is within {Format.Number(tolerance)} of baseline {a} ({file})"
                : $"{name}: {CheckNames.Of(stage)} {subject} {v} regressed from baseline {a} by more than the tolerance {Format.Number(tolerance)} ({file}; " +
                  $"if the new value is accepted, {accept})",
        };
    }

    private static CheckOutcome Missing(string name, CheckStagePair stage, string output, string metric, CheckAggregate? over,
        double accepted, bool higher, double tolerance, string? rule, SourcePosition at, string file, string accept) => new()
    {
        Kind = CheckKind.Baseline, Rule = rule, Stage = stage, Output = output, Metric = metric, Aggregate = over,
        Value = double.NaN, Limit = accepted, Lower = higher, Tolerance = tolerance, Passed = false, Position = at, Code = ErrorCode.CheckBaselineRegression,
        Message = $"{name}: {CheckNames.Of(stage)} " + (over is null ? $"evaluator '{metric}'" : $"output '{output}' {metric} {CheckNames.Of(over.Value)}") +
                  $" has baseline {Format.Number(accepted)} ({file}) but is no longer measured; to accept that, {accept}",
    };

    private static IEnumerable<(bool Lower, double Limit, SourcePosition At)> Bounds(double? min, double? max, SourcePosition minAt, SourcePosition maxAt)
    {
        if (min is { } lo) yield return (true, lo, minAt);
        if (max is { } hi) yield return (false, hi, maxAt);
    }

    internal static string Compare(bool ok, bool lower) => ok ? (lower ? ">=" : "<=") : (lower ? "<" : ">");

    internal static Func<Similarity, double> Metric(CheckMetric m) => m switch
    {
        CheckMetric.Cosine => s => s.Cosine,
        CheckMetric.L1 => s => s.L1,
        CheckMetric.L2 => s => s.L2,
        CheckMetric.Chebyshev => s => s.Chebyshev,
        CheckMetric.Mse => s => s.Mse,
        CheckMetric.Mre => s => s.Mre,
        CheckMetric.Sqnr => s => s.Sqnr,
        _ => throw new ArgumentOutOfRangeException(nameof(m)),
    };

    internal static double Aggregate(Spread s, CheckAggregate a) => a switch
    {
        CheckAggregate.Min => s.Min,
        CheckAggregate.Avg => s.Avg,
        _ => s.Max,
    };
}
