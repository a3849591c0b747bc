using Quant.Core.Config;
using Quant.Core.Data;
using Quant.Core.Diagnostics;
using Quant.Core.Passes;
using Quant.Core.Stages;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Analysis.Compare;

/// <summary>What <c>quant-check compare</c> is asked to do.</summary>
public sealed class CompareRequest
{
    public required string FloatModelPath { get; init; }
    public required string QatModelPath { get; init; }
    public string? QuantizedModelPath { get; init; }
    public string? CompiledModelPath { get; init; }
    /// <summary>The config giving the data and its preprocessing (and weight equalization, which the float model's preparation repeats); null: --data only.</summary>
    public string? ConfigPath { get; init; }
    /// <summary>Data globs replacing the config's (single-input models); with no config, the files are fed as stored.</summary>
    public IReadOnlyList<string>? Data { get; init; }
    /// <summary>How many samples to pool (the first ones of the data set).</summary>
    public int Samples { get; init; } = 4;
    public required string OutputDirectory { get; init; }
    public string? Name { get; init; }
    public int Threads { get; init; } = Environment.ProcessorCount;

    public string ArtifactName => Name ?? Path.GetFileNameWithoutExtension(FloatModelPath);
}

/// <summary>Everything compare measured and found.</summary>
public sealed class CompareResult
{
    public required string Name { get; init; }
    public required string ModelFile { get; init; }
    public required int Samples { get; init; }
    public required IReadOnlyList<CompareStage> Stages { get; init; }
    public required IReadOnlyList<MatchedTensor> Tensors { get; init; }
    public required IReadOnlyList<TensorResult> Results { get; init; }
    public required IReadOnlyList<List<string>> Flags { get; init; }
    /// <summary>Float tensors the qat model does not hold (removed or renamed by a different preparation).</summary>
    public required IReadOnlyList<string> Unmatched { get; init; }
    /// <summary>Per stage that produced NaN or infinity, where it first did.</summary>
    public required IReadOnlyList<NonFiniteOrigin> NonFinite { get; init; }
    public required IReadOnlyList<CompareFinding> Findings { get; init; }
    public string JsonPath { get; init; } = "";
    public string TextPath { get; init; } = "";
}

/// <summary>
/// Layer-wise comparison (hmct-debugger's): runs the float model (prepared as the export prepares it, so its tensors
/// are the ones the qat model was made from) and the qat model, optionally the quantized and compiled ones, on the
/// same samples; every value is seen through an observer as it is produced, matched to its float tensor
/// (<see cref="TensorMatcher"/>) and pooled; then the failure patterns are flagged (<see cref="CompareFindings"/>).
/// </summary>
public static class LayerCompare
{
    public static string JsonFile(string name) => name + ".compare.json";
    public static string TextFile(string name) => name + ".compare.txt";

    public static CompareResult Run(CompareRequest request, IProgress<StageProgress>? progress = null, CancellationToken cancel = default)
    {
        if (request.Samples < 1)
            throw new QuantException(ErrorCode.CompareInvalidSampleCount, SourcePosition.InFile(request.FloatModelPath),
                $"-d {request.Samples}: compare needs at least 1 sample");
        var name = request.ArtifactName;
        Directory.CreateDirectory(request.OutputDirectory);
        var jsonPath = Path.Combine(request.OutputDirectory, JsonFile(name));
        var textPath = Path.Combine(request.OutputDirectory, TextFile(name));
        File.Delete(jsonPath);
        File.Delete(textPath);

        var config = request.ConfigPath is { } cp ? QuantConfigLoader.Load(cp)
            : QuantConfigLoader.Parse("", Path.Combine(Directory.GetCurrentDirectory(), "--data"));
        var floatModel = GraphPreparation.Prepare(StageModels.Load(request.FloatModelPath),
            new PreparationOptions { Equalize = config.Model.Weight.Equalization }).Model;
        var qatModel = StageModels.Load(request.QatModelPath);
        RequireSameInputs(floatModel, qatModel.Graph.RuntimeInputs, request.QatModelPath, "qat");
        var tensors = TensorMatcher.Match(floatModel, qatModel, out var unmatched);
        RequireExportOf(floatModel, qatModel, tensors, unmatched, request.QatModelPath);

        var options = new SessionOptions { Threads = request.Threads };
        var floatSession = StageModels.Session(floatModel, options, request.FloatModelPath);
        var qatSession = StageModels.Session(qatModel, options, request.QatModelPath);
        var stages = new List<CompareStage> { CompareStage.Float, CompareStage.Qat };
        InferenceSession? quantizedSession = null;
        if (request.QuantizedModelPath is { } qp)
        {
            var quantized = StageModels.Load(qp);
            RequireSameInputs(floatModel, quantized.Graph.RuntimeInputs, qp, "quantized");
            RequireLaterStage(tensors, CompareStage.Quantized, TensorMatcher.ValueNames(quantized.Graph), floatModel, qp);
            quantizedSession = StageModels.Session(quantized, options, qp);
            stages.Add(CompareStage.Quantized);
        }
        Quant.Runtime.QbmModel? compiled = null;
        if (request.CompiledModelPath is { } cpath)
        {
            compiled = CompiledModels.Load(cpath);
            var inputs = compiled.File.Inputs.Select(i => compiled.File.Values[i.Value]).Select(v => new ValueInfo(v.Name, v.Type, null));
            RequireSameInputs(floatModel, inputs, cpath, "compiled");
            RequireLaterStage(tensors, CompareStage.Compiled, compiled.File.Values.Select(v => v.Name).ToHashSet(StringComparer.Ordinal), floatModel, cpath);
            stages.Add(CompareStage.Compiled);
        }

        if (request.Data is { Count: > 0 } globs) CalibrationDataOverride.Apply(config, globs, floatModel.Graph.RuntimeInputs, "--data");
        var data = CalibrationDataSet.Create(config, floatModel.Graph.RuntimeInputs);
        int samples = Math.Min(request.Samples, data.SampleCount);

        var results = tensors.Select(t => new TensorResult
        {
            Qat = new StageResult { Value = t.Qat },
            Quantization = t.Scale is { } s && t.QType is QType.Int8 or QType.Int16 ? new QuantizationNoise(s, t.ZeroPoint, t.IntegerRange.Min, t.IntegerRange.Max) : null,
        }).ToList();
        for (int i = 0; i < tensors.Count; i++)
            foreach (var (stage, v) in tensors[i].Later) results[i].Later[stage] = new StageResult { Value = v.Name };

        var locators = stages.ToDictionary(s => s, s => new NonFiniteLocator(s, s switch
        {
            CompareStage.Float => floatSession.ConstantValue,
            CompareStage.Qat => qatSession.ConstantValue,
            CompareStage.Quantized => quantizedSession!.ConstantValue,
            _ => _ => null, // a .qbm's constants are checked by its loader
        }));
        var byFloat = Index(tensors, t => [t.Tensor]);
        var byQat = Index(tensors, t => [t.Qat]);
        var byLater = stages.Skip(2).ToDictionary(s => s, s => Index(tensors, t => t.Later.TryGetValue(s, out var v) ? [v.Name] : []));

        int sample = 0;
        foreach (var input in data.Samples())
        {
            if (sample == samples) break;
            cancel.ThrowIfCancellationRequested();
            var reference = new float[]?[tensors.Count];
            RunObserved(CompareStage.Float, v =>
            {
                if (!byFloat.TryGetValue(v.Name, out var i) || TensorValues.AsFloat(v.Value) is not { } values) return;
                reference[i] = values;
                results[i].Observed++;
                results[i].Reference.Add(values);
                results[i].Quantization?.Add(values);
            }, o => StageModels.Run(floatSession, input, request.FloatModelPath, new RunOptions { Observer = o }));
            RunObserved(CompareStage.Qat, v =>
            {
                if (byQat.TryGetValue(v.Name, out var i)) Pair(results[i].Qat, reference[i], TensorValues.AsFloat(v.Value));
            }, o => StageModels.Run(qatSession, input, request.QatModelPath, new RunOptions { Observer = o }));
            if (quantizedSession is not null)
                RunObserved(CompareStage.Quantized, v => Later(CompareStage.Quantized, v),
                    o => StageModels.Run(quantizedSession, input, request.QuantizedModelPath!, new RunOptions { Observer = o }));
            if (compiled is not null)
                RunObserved(CompareStage.Compiled, v => Later(CompareStage.Compiled, v), o => CompiledModels.Run(compiled, input, request.CompiledModelPath!, o));
            sample++;
            progress?.Report(new StageProgress("comparing " + string.Join(", ", stages.Select(s => s.Name())) + " layer by layer", sample, samples));

            void Later(CompareStage stage, ObservedValue v)
            {
                if (!byLater[stage].TryGetValue(v.Name, out var i)) return;
                Pair(results[i].Later[stage], reference[i], TensorValues.AsFloat(v.Value, tensors[i].Later[stage]));
            }

            void RunObserved(CompareStage stage, Action<ObservedValue> seen, Action<IValueObserver> run)
            {
                var locator = locators[stage];
                locator.Reset();
                int at = sample;
                run(new Observer(v => { locator.Observe(v, at); seen(v); }));
            }
        }

        var nonFinite = stages.Select(s => locators[s].First).OfType<NonFiniteOrigin>().ToList();
        var (flags, findings) = CompareFindings.Find(floatModel, tensors, results, nonFinite);
        // Tensors the float run never produced (constants the engine folds, non-float values) are not layer outputs to compare.
        var kept = Enumerable.Range(0, tensors.Count).Where(i => results[i].Observed > 0).ToList();
        var result = new CompareResult
        {
            Name = name, ModelFile = Path.GetFileName(request.FloatModelPath), Samples = sample, Stages = stages,
            Tensors = kept.Select(i => tensors[i]).ToList(), Results = kept.Select(i => results[i]).ToList(), Flags = kept.Select(i => flags[i]).ToList(),
            Unmatched = unmatched, NonFinite = nonFinite, Findings = findings, JsonPath = jsonPath, TextPath = textPath,
        };
        var report = new CompareReport(result, Path.GetFileName(request.QatModelPath));
        AtomicText.Write(textPath, report.Text());
        AtomicText.Write(jsonPath, report.Json());
        return result;
    }

    private static void Pair(StageResult into, float[]? reference, float[]? actual)
    {
        if (reference is null || actual is null) return;
        if (reference.Length != actual.Length) { into.ShapeMismatches++; return; }
        into.Actual.Add(actual);
        into.Pair.Add(actual, reference);
    }

    private static Dictionary<string, int> Index(IReadOnlyList<MatchedTensor> tensors, Func<MatchedTensor, IEnumerable<string>> names)
    {
        var map = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < tensors.Count; i++)
            foreach (var n in names(tensors[i])) map.TryAdd(n, i);
        return map;
    }

    private sealed class Observer(Action<ObservedValue> seen) : IValueObserver
    {
        public Tensor? OnValue(in ObservedValue value)
        {
            seen(value);
            return null;
        }
    }

    private static void RequireSameInputs(OnnxModel floatModel, IEnumerable<ValueInfo> inputs, string file, string what)
    {
        var theirs = inputs.ToDictionary(i => i.Name, StringComparer.Ordinal);
        foreach (var mine in floatModel.Graph.RuntimeInputs)
        {
            if (!theirs.TryGetValue(mine.Name, out var other))
                throw new QuantException(ErrorCode.CompareInputsDiffer, SourcePosition.InFile(file),
                    $"the {what} model has no input '{mine.Name}' that the float model has (its inputs: {string.Join(", ", theirs.Keys)}); compare the models of one export");
            if (other.Type != ElementType.Undefined && mine.Type != ElementType.Undefined && other.Type != mine.Type)
                throw new QuantException(ErrorCode.CompareInputsDiffer, SourcePosition.InFile(file),
                    $"input '{mine.Name}' is {other.Type.OnnxName()} in the {what} model but {mine.Type.OnnxName()} in the float model; compare the models of one export");
        }
        foreach (var extra in theirs.Keys.Where(k => !floatModel.Graph.RuntimeInputs.Any(i => i.Name == k)))
            throw new QuantException(ErrorCode.CompareInputsDiffer, SourcePosition.InFile(file),
                $"the {what} model has an input '{extra}' that the float model lacks; compare the models of one export");
    }

    /// <summary>
    /// The export keeps every tensor of the prepared float model and its producer (renaming only what it inserts), so
    /// a missing output or tensor, or a tensor another kind of op produces, means the qat model came from another model
    /// (or another preparation: re-exporting with this build fixes that).
    /// </summary>
    private static void RequireExportOf(OnnxModel floatModel, OnnxModel qat, IReadOnlyList<MatchedTensor> tensors, IReadOnlyList<string> unmatched, string file)
    {
        var qatOutputs = qat.Graph.Outputs.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        var producers = qat.Graph.Producers();
        string? why = floatModel.Graph.Outputs.FirstOrDefault(o => !qatOutputs.Contains(o.Name)) is { } missingOutput
            ? $"it has no output '{missingOutput.Name}'"
            : unmatched.Count > 0
                ? $"{unmatched.Count} of the float model's {tensors.Count + unmatched.Count} tensors are missing from it ({string.Join(", ", unmatched.Take(3).Select(u => $"'{u}'"))}{(unmatched.Count > 3 ? ", ..." : "")})"
                : null;
        if (why is null)
            foreach (var t in tensors)
            {
                if (t.OpType is null || !producers.TryGetValue(t.Tensor, out var p) || p.OpType == t.OpType) continue;
                // What the export may put on a float name: the end of a Q/DQ or float16 chain (model outputs), an ec Add.
                if (p.OpType is "DequantizeLinear" or "Cast" or "Add") continue;
                why = $"'{t.Tensor}' is computed by {p.OpType} '{p.Name}' there but by {t.OpType} '{t.Node}' in the float model";
                break;
            }
        if (why is null) return;
        throw new QuantException(ErrorCode.CompareNotFromFloat, SourcePosition.InFile(file),
            $"the qat model is not an export of this float model: {why}; re-export it from this float model (quant-check export) with this build");
    }

    private static void RequireLaterStage(IReadOnlyList<MatchedTensor> tensors, CompareStage stage, IReadOnlySet<string> values, OnnxModel floatModel, string file)
    {
        int found = TensorMatcher.MatchLater(tensors, stage, values);
        var missing = floatModel.Graph.Outputs.FirstOrDefault(o => !values.Contains(o.Name));
        if (found > 0 && missing is null) return;
        throw new QuantException(ErrorCode.CompareStageNotFromQat, SourcePosition.InFile(file),
            $"the {stage.Name()} model " + (missing is not null ? $"has no output '{missing.Name}'" : "holds none of the qat model's tensors") +
            $"; {(stage == CompareStage.Quantized ? "convert" : "compile")} it from this qat model");
    }
}
