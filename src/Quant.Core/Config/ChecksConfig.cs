using System.Globalization;
using Quant.Core.Diagnostics;
using YamlDotNet.RepresentationModel;

namespace Quant.Core.Config;

/// <summary>Which two models a check compares: the later stage's outputs against the earlier stage's.</summary>
public enum CheckStagePair
{
    /// <summary>The exported fake-quant QDQ model against the float model.</summary>
    QatVsFloat,
    /// <summary>The converted integer model (NAME.quantized.onnx) against the qat model, both in the engine.</summary>
    QuantizedVsQat,
    /// <summary>The compiled model (NAME.qbm in Quant.Runtime) against the quantized model in the engine: bit-exact.</summary>
    CompiledVsQuantized,
    /// <summary>
    /// The qat model as users deploy it — ONNX Runtime with all graph optimizations, which replace Q/DQ groups by
    /// integer kernels — against the same qat model run by our engine.
    /// </summary>
    RuntimeVsQat,
}

/// <summary>The output-similarity metrics of <see cref="Analysis.Similarity"/> a check can bound.</summary>
public enum CheckMetric { Cosine, L1, L2, Chebyshev, Mse, Mre, Sqnr }

/// <summary>Which aggregate over samples a bound applies to.</summary>
public enum CheckAggregate { Min, Avg, Max }

/// <summary>Names used in yaml, reports and the baseline file.</summary>
public static class CheckNames
{
    public static readonly IReadOnlyList<(string Name, CheckStagePair Value)> Stages =
        [("qat_vs_float", CheckStagePair.QatVsFloat), ("runtime_vs_qat", CheckStagePair.RuntimeVsQat),
         ("quantized_vs_qat", CheckStagePair.QuantizedVsQat), ("compiled_vs_quantized", CheckStagePair.CompiledVsQuantized)];
    public static readonly IReadOnlyList<(string Name, CheckMetric Value)> Metrics =
        [("cosine", CheckMetric.Cosine), ("l1", CheckMetric.L1), ("l2", CheckMetric.L2), ("chebyshev", CheckMetric.Chebyshev),
         ("mse", CheckMetric.Mse), ("mre", CheckMetric.Mre), ("sqnr", CheckMetric.Sqnr)];
    public static readonly IReadOnlyList<(string Name, CheckAggregate Value)> Aggregates =
        [("min", CheckAggregate.Min), ("avg", CheckAggregate.Avg), ("max", CheckAggregate.Max)];

    public static string Of(CheckStagePair s) => Stages.First(x => x.Value == s).Name;
    public static string Of(CheckMetric m) => Metrics.First(x => x.Value == m).Name;
    public static string Of(CheckAggregate a) => Aggregates.First(x => x.Value == a).Name;

    /// <summary>Cosine and SQNR grow as outputs get closer; the error metrics shrink.</summary>
    public static bool HigherIsBetter(CheckMetric m) => m is CheckMetric.Cosine or CheckMetric.Sqnr;

    /// <summary>The aggregate that is the worst sample for the metric (what a baseline records by default).</summary>
    public static CheckAggregate Worst(CheckMetric m) => HigherIsBetter(m) ? CheckAggregate.Min : CheckAggregate.Max;

    /// <summary>The stage pair of a name; null when it is none.</summary>
    public static CheckStagePair? StageOf(string name) =>
        Stages.Where(s => s.Name == name).Select(s => (CheckStagePair?)s.Value).FirstOrDefault();
}

/// <summary>
/// A bound on one metric: <c>{min: 0.99}</c> and/or <c>{max: 0.01}</c>, applied to the aggregate <see cref="Over"/>
/// of the per-sample values. Without <c>over</c>, a lower bound applies to the worst (minimum) sample and an
/// upper bound to the worst (maximum) sample.
/// </summary>
public sealed class MetricThreshold
{
    public required CheckMetric Metric { get; init; }
    public double? Min { get; init; }
    public double? Max { get; init; }
    /// <summary>As written; null when not given (see <see cref="AggregateFor"/>).</summary>
    public CheckAggregate? Over { get; init; }
    /// <summary>Where the metric key is written.</summary>
    public SourcePosition Position { get; init; }
    /// <summary>Where the <c>min</c> value is written (what a failing lower bound points at).</summary>
    public SourcePosition MinPosition { get; init; }
    public SourcePosition MaxPosition { get; init; }

    /// <summary>The aggregate a lower (<paramref name="lower"/>) or upper bound is checked on.</summary>
    public CheckAggregate AggregateFor(bool lower) => Over ?? (lower ? CheckAggregate.Min : CheckAggregate.Max);
}

/// <summary>
/// <c>evaluator:</c> a user command run on the stage's outputs (written as .npy files) that prints, or writes to
/// <c>$QUANT_EVALUATOR_RESULT</c>, a JSON object; <see cref="Metric"/> is read from it and bounded like a metric.
/// </summary>
public sealed class EvaluatorConfig
{
    public required string Command { get; init; }
    public required string Metric { get; init; }
    public double? Min { get; init; }
    public double? Max { get; init; }
    /// <summary>Seconds before the command is killed and the check fails.</summary>
    public int TimeoutSeconds { get; init; } = 600;
    public SourcePosition Position { get; init; }
    public SourcePosition CommandPosition { get; init; }
    public SourcePosition MinPosition { get; init; }
    public SourcePosition MaxPosition { get; init; }

    /// <summary>A lower bound means larger is better (accuracy); only an upper bound means smaller is better (error rate).</summary>
    public bool HigherIsBetter => Min is not null || Max is null;
}

/// <summary>How much worse than the baseline a value may be: one absolute amount, optionally per metric name.</summary>
public sealed class BaselineTolerance
{
    public const double DefaultAbsolute = 0.001;
    public double Default { get; init; } = DefaultAbsolute;
    /// <summary>By metric name (cosine, sqnr, ... or an evaluator's metric).</summary>
    public IReadOnlyDictionary<string, double> ByMetric { get; init; } = new Dictionary<string, double>(StringComparer.Ordinal);
    public SourcePosition Position { get; init; }

    public double For(string metric) => ByMetric.TryGetValue(metric, out var t) ? t : Default;
}

/// <summary>One rule of <c>checks:</c>: a stage pair, an output (or <c>*</c>), metric bounds and an optional evaluator.</summary>
public sealed class CheckRule
{
    /// <summary>The mapping key, the <c>name</c> of a list item, or <c>rule N</c> (1-based) for an unnamed list item.</summary>
    public required string Name { get; init; }
    public CheckStagePair Stage { get; init; } = CheckStagePair.QatVsFloat;
    /// <summary>A model output name, or <c>*</c> for every float output.</summary>
    public string Output { get; init; } = "*";
    public IReadOnlyList<MetricThreshold> Thresholds { get; init; } = [];
    public EvaluatorConfig? Evaluator { get; init; }
    /// <summary>This rule's tolerance for baseline comparisons of what it covers; null: the section's.</summary>
    public BaselineTolerance? Tolerance { get; init; }
    public SourcePosition Position { get; init; }
    public SourcePosition StagePosition { get; init; }
    public SourcePosition OutputPosition { get; init; }

    public bool Covers(string output) => Output == "*" || Output == output;
}

/// <summary>The typed <c>checks:</c> section (see docs/config-reference.md).</summary>
public sealed class ChecksConfig
{
    public static ChecksConfig None { get; } = new();

    public IReadOnlyList<CheckRule> Rules { get; init; } = [];
    public BaselineTolerance Tolerance { get; init; } = new();
    /// <summary>Where <c>checks:</c> is written (default when absent).</summary>
    public SourcePosition Position { get; init; }

    /// <summary>The tolerance for a baseline entry: the strictest of the rules covering it, else the section's.</summary>
    public double ToleranceFor(CheckStagePair stage, string output, string metric)
    {
        double? best = null;
        foreach (var r in Rules)
            if (r.Stage == stage && r.Tolerance is { } t && (output.Length == 0 || r.Covers(output)))
                best = Math.Min(best ?? double.MaxValue, t.For(metric));
        return best ?? Tolerance.For(metric);
    }
}

/// <summary>Reads <c>checks:</c> with the loader's positioned errors.</summary>
internal static class ChecksConfigReader
{
    private static readonly string[] RuleKeys = ["name", "stage", "output", "evaluator", "baseline_tolerance", .. CheckNames.Metrics.Select(m => m.Name)];
    private static readonly string[] ThresholdKeys = ["min", "max", "over"];
    private static readonly string[] EvaluatorKeys = ["command", "metric", "min", "max", "timeout"];

    /// <summary>Reads rules written like <c>checks:</c>; <paramref name="section"/> names them in messages (<c>tune.targets</c> reuses the syntax).</summary>
    public static ChecksConfig Read(YamlReader r, YamlScalarNode keyNode, YamlNode node, string section = "checks")
    {
        var rules = new List<CheckRule>();
        var tolerance = new BaselineTolerance();
        if (node is YamlSequenceNode seq)
        {
            for (int i = 0; i < seq.Children.Count; i++)
                rules.Add(ReadRule(r, seq.Children[i], $"{section}[{i}]", null, $"rule {i + 1}"));
        }
        else
        {
            foreach (var (key, kn, v) in r.Entries(r.Mapping(node, section), section, null))
            {
                if (key == "baseline_tolerance") tolerance = ReadTolerance(r, v, $"{section}.baseline_tolerance");
                else rules.Add(ReadRule(r, v, $"{section}.{key}", kn, key));
            }
        }
        var names = new Dictionary<string, CheckRule>(StringComparer.Ordinal);
        var evaluators = new Dictionary<(CheckStagePair, string), CheckRule>();
        foreach (var rule in rules)
        {
            if (!names.TryAdd(rule.Name, rule))
                throw new QuantException(ErrorCode.ConfigInvalidValue, rule.Position,
                    $"{section}: two rules are named '{rule.Name}' (the other at line {names[rule.Name].Position.Line}); names label results and must be unique");
            if (rule.Evaluator is { } e && !evaluators.TryAdd((rule.Stage, e.Metric), rule))
                throw new QuantException(ErrorCode.ConfigInvalidValue, e.Position,
                    $"{section}.{rule.Name}.evaluator: metric '{e.Metric}' is already read by rule '{evaluators[(rule.Stage, e.Metric)].Name}' for the same stage; the baseline keys evaluators by metric, so give each a distinct metric name");
        }
        return new ChecksConfig { Rules = rules, Tolerance = tolerance, Position = r.At(keyNode) };
    }

    private static CheckRule ReadRule(YamlReader r, YamlNode node, string path, YamlScalarNode? keyNode, string defaultName)
    {
        var map = r.Mapping(node, path);
        string name = defaultName;
        var stage = CheckStagePair.QatVsFloat;
        string output = "*";
        SourcePosition stageAt = default, outputAt = default;
        var thresholds = new List<MetricThreshold>();
        EvaluatorConfig? evaluator = null;
        BaselineTolerance? tolerance = null;
        foreach (var (key, kn, v) in r.Entries(map, path, RuleKeys))
        {
            var p = $"{path}.{key}";
            switch (key)
            {
                case "name":
                    if (keyNode is not null)
                        throw r.Error(ErrorCode.ConfigInvalidValue, kn, $"{p}: a rule of a mapping is named by its key ('{keyNode.Value}'); 'name' is for list items");
                    name = r.String(v, p);
                    break;
                case "stage": stage = r.Choice(v, p, CheckNames.Stages); stageAt = r.At(v); break;
                case "output": output = r.String(v, p); outputAt = r.At(v); break;
                case "evaluator": evaluator = ReadEvaluator(r, v, p); break;
                case "baseline_tolerance": tolerance = ReadTolerance(r, v, p); break;
                default: thresholds.Add(ReadThreshold(r, kn, v, p, CheckNames.Metrics.First(m => m.Name == key).Value)); break;
            }
        }
        var at = keyNode is not null ? r.At(keyNode) : r.At(node);
        if (thresholds.Count == 0 && evaluator is null)
            throw new QuantException(ErrorCode.ConfigInvalidValue, at,
                $"{path}: the rule checks nothing; give at least one of {string.Join(", ", CheckNames.Metrics.Select(m => m.Name))} (e.g. cosine: {{min: 0.99}}) or an evaluator");
        return new CheckRule
        {
            Name = name, Stage = stage, Output = output, Thresholds = thresholds, Evaluator = evaluator, Tolerance = tolerance,
            Position = at, StagePosition = stageAt.File is null ? at : stageAt, OutputPosition = outputAt.File is null ? at : outputAt,
        };
    }

    private static MetricThreshold ReadThreshold(YamlReader r, YamlScalarNode keyNode, YamlNode node, string path, CheckMetric metric)
    {
        if (node is not YamlMappingNode)
            throw r.Error(ErrorCode.ConfigWrongType, node,
                $"{path}: expected a bound like {{min: 0.99}} or {{max: 0.01, over: avg}}, got {YamlReader.Describe(node)}");
        double? min = null, max = null;
        CheckAggregate? over = null;
        SourcePosition minAt = default, maxAt = default;
        foreach (var (key, _, v) in r.Entries((YamlMappingNode)node, path, ThresholdKeys))
        {
            var p = $"{path}.{key}";
            switch (key)
            {
                case "min": min = Bound(r, v, p); minAt = r.At(v); break;
                case "max": max = Bound(r, v, p); maxAt = r.At(v); break;
                case "over": over = r.Choice(v, p, CheckNames.Aggregates); break;
            }
        }
        if (min is null && max is null)
            throw r.Error(ErrorCode.ConfigInvalidValue, keyNode, $"{path}: give min or max (e.g. {path.Split('.')[^1]}: {{{(CheckNames.HigherIsBetter(metric) ? "min: 0.99" : "max: 0.01")}}})");
        if (min > max)
            throw r.Error(ErrorCode.ConfigInvalidValue, keyNode, $"{path}: min {Text(min!.Value)} is above max {Text(max!.Value)}; no value can pass");
        return new MetricThreshold { Metric = metric, Min = min, Max = max, Over = over, Position = r.At(keyNode), MinPosition = minAt, MaxPosition = maxAt };
    }

    private static EvaluatorConfig ReadEvaluator(YamlReader r, YamlNode node, string path)
    {
        var map = r.Mapping(node, path);
        string? command = null, metric = null;
        double? min = null, max = null;
        int timeout = 600;
        SourcePosition commandAt = default, minAt = default, maxAt = default;
        foreach (var (key, _, v) in r.Entries(map, path, EvaluatorKeys))
        {
            var p = $"{path}.{key}";
            switch (key)
            {
                case "command": command = r.String(v, p); commandAt = r.At(v); break;
                case "metric": metric = r.String(v, p); break;
                case "min": min = Bound(r, v, p); minAt = r.At(v); break;
                case "max": max = Bound(r, v, p); maxAt = r.At(v); break;
                case "timeout":
                    timeout = r.Integer(v, p);
                    if (timeout < 1) throw r.Error(ErrorCode.ConfigInvalidValue, v, $"{p}: {timeout} must be at least 1 (seconds)");
                    break;
            }
        }
        if (command is null) throw r.Error(ErrorCode.ConfigInvalidValue, node, $"{path}: 'command' is required (the command that prints a JSON object of metrics)");
        if (metric is null) throw r.Error(ErrorCode.ConfigInvalidValue, node, $"{path}: 'metric' is required (the key of the JSON object to check)");
        if (min is null && max is null) throw r.Error(ErrorCode.ConfigInvalidValue, node, $"{path}: give min or max for '{metric}'");
        if (min > max) throw r.Error(ErrorCode.ConfigInvalidValue, node, $"{path}: min {Text(min!.Value)} is above max {Text(max!.Value)}; no value can pass");
        return new EvaluatorConfig
        {
            Command = command, Metric = metric, Min = min, Max = max, TimeoutSeconds = timeout,
            Position = r.At(node), CommandPosition = commandAt, MinPosition = minAt, MaxPosition = maxAt,
        };
    }

    /// <summary>A number, or a mapping of metric name to number (<c>default</c> for the rest).</summary>
    private static BaselineTolerance ReadTolerance(YamlReader r, YamlNode node, string path)
    {
        if (node is YamlMappingNode map)
        {
            double def = BaselineTolerance.DefaultAbsolute;
            var by = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var (key, _, v) in r.Entries(map, path, null))
            {
                var x = NonNegative(r, v, $"{path}.{key}");
                if (key == "default") def = x;
                else by[key] = x;
            }
            return new BaselineTolerance { Default = def, ByMetric = by, Position = r.At(node) };
        }
        return new BaselineTolerance { Default = NonNegative(r, node, path), Position = r.At(node) };
    }

    private static double NonNegative(YamlReader r, YamlNode node, string path)
    {
        var x = r.Number(node, path);
        if (!(x >= 0) || double.IsInfinity(x))
            throw r.Error(ErrorCode.ConfigInvalidValue, node, $"{path}: {((YamlScalarNode)node).Value} is not a tolerance; give a finite number >= 0 (an absolute amount, e.g. 0.001)");
        return x;
    }

    private static double Bound(YamlReader r, YamlNode node, string path)
    {
        var x = r.Number(node, path);
        if (double.IsNaN(x)) throw r.Error(ErrorCode.ConfigInvalidValue, node, $"{path}: NaN is not a bound");
        return x;
    }

    private static string Text(double x) => x.ToString("R", CultureInfo.InvariantCulture);
}
