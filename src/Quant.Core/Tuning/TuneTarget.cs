using System.Globalization;
using Quant.Core.Config;
using Quant.Core.Diagnostics;

namespace Quant.Core.Tuning;

/// <summary>
/// One bound the tuner must reach: a similarity metric of one model output against float (<see cref="Output"/> set),
/// aggregated over the evaluation samples like a check (<see cref="Over"/>), or an evaluator's task metric
/// (<see cref="Evaluator"/> set). Written in the yaml like a <c>checks:</c> rule (Tuning/TuneConfig).
/// </summary>
public sealed class TuneTarget
{
    /// <summary>The rule's name (its key, or <c>rule N</c>).</summary>
    public required string Rule { get; init; }
    /// <summary>The model output, null for an evaluator target.</summary>
    public string? Output { get; init; }
    /// <summary>A similarity metric name (cosine, mse, ...) or the evaluator's metric.</summary>
    public required string Metric { get; init; }
    public CheckMetric? Similarity { get; init; }
    public CheckAggregate Over { get; init; } = CheckAggregate.Min;
    public double? Min { get; init; }
    public double? Max { get; init; }
    public EvaluatorConfig? Evaluator { get; init; }
    public SourcePosition Position { get; init; }

    /// <summary>The key of this target's value in reports: <c>OUTPUT:metric</c> or <c>evaluator:metric</c>.</summary>
    public string Key => (Output is null ? $"evaluator:{Metric}" : $"{Output}:{Metric}") + _keySuffix;

    private string _keySuffix = "";

    /// <summary>This target with <paramref name="suffix"/> appended to its key (Tuning/TuneConfig: same output and metric, other aggregation).</summary>
    internal TuneTarget WithKeySuffix(string suffix) => new()
    {
        Rule = Rule, Output = Output, Metric = Metric, Similarity = Similarity, Over = Over, Min = Min, Max = Max, Evaluator = Evaluator,
        Position = Position, _keySuffix = suffix,
    };

    /// <summary>True when larger values are closer to float (cosine, SQNR, accuracies with a lower bound).</summary>
    public bool HigherIsBetter => Similarity is { } m ? CheckNames.HigherIsBetter(m) : Evaluator!.HigherIsBetter;

    public bool Meets(double value) => !double.IsNaN(value) && (Min is not { } lo || value >= lo) && (Max is not { } hi || value <= hi);

    /// <summary>
    /// How far inside its bounds <paramref name="value"/> is, relative to the bound (negative: outside). Cosine-like
    /// bounds near 1 are measured on 1 - x so that 0.998 against 0.999 counts as far off as 0.98 against 0.99.
    /// </summary>
    public double Slack(double value)
    {
        if (double.IsNaN(value)) return double.NegativeInfinity;
        double s = double.PositiveInfinity;
        if (Min is { } lo) s = Math.Min(s, Relative(value - lo, lo));
        if (Max is { } hi) s = Math.Min(s, Relative(hi - value, hi));
        return s;
    }

    private double Relative(double difference, double bound)
    {
        double scale = Similarity == CheckMetric.Cosine ? Math.Max(1e-9, 1 - bound) : Math.Max(1e-12, Math.Abs(bound));
        return difference / scale;
    }

    /// <summary>The bound as text, e.g. <c>cosine >= 0.999</c>.</summary>
    public string BoundText()
    {
        var parts = new List<string>();
        if (Min is { } lo) parts.Add($">= {Num(lo)}");
        if (Max is { } hi) parts.Add($"<= {Num(hi)}");
        string over = Similarity is { } m && Over != CheckNames.Worst(m) ? $" over {CheckNames.Of(Over)}" : "";
        return $"{Key} {string.Join(" and ", parts)}{over}";
    }

    internal static string Num(double x) => x.ToString("G6", CultureInfo.InvariantCulture);
}
