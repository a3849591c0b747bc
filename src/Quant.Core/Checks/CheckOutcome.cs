using System.Globalization;
using Quant.Core.Config;
using Quant.Core.Diagnostics;

namespace Quant.Core.Checks;

/// <summary>
/// Threshold and Evaluator: a rule's bound; Baseline: an accepted value; Default: a bound a stage pair applies without
/// a rule (<see cref="DefaultBounds"/>).
/// </summary>
public enum CheckKind { Threshold, Evaluator, Baseline, Default }

/// <summary>
/// What a default bound rests on: the qat model is stable under last-bit noise (cosine 0.9999), fragile (the measured
/// floor), or the pair must be bit-exact (compiled_vs_quantized).
/// </summary>
public enum DefaultBoundKind { Stable, Fragile, BitExact }

/// <summary>One check's result: a bound on a measured value, or a comparison with the baseline.</summary>
public sealed class CheckOutcome
{
    public required CheckKind Kind { get; init; }
    /// <summary>The rule the check comes from; null for a baseline entry no rule covers.</summary>
    public string? Rule { get; init; }
    public required CheckStagePair Stage { get; init; }
    /// <summary>The model output; empty for an evaluator.</summary>
    public required string Output { get; init; }
    /// <summary>cosine, l1, ... or the evaluator's metric.</summary>
    public required string Metric { get; init; }
    /// <summary>min, avg or max over samples; null for an evaluator.</summary>
    public CheckAggregate? Aggregate { get; init; }
    public required double Value { get; init; }
    /// <summary>The bound (threshold kinds) or the baseline value (baseline kind).</summary>
    public required double Limit { get; init; }
    /// <summary>True when the value must be at least <see cref="Limit"/> (minus the tolerance for baselines).</summary>
    public required bool Lower { get; init; }
    /// <summary>Baseline kind only: how much worse than the baseline the value may be.</summary>
    public double Tolerance { get; init; }
    /// <summary>Default kind only: the qat model's last-bit stability floor (min cosine) the bound comes from.</summary>
    public double NoiseFloor { get; init; }
    /// <summary>Default kind only: what the bound rests on.</summary>
    public DefaultBoundKind? DefaultBound { get; init; }
    public required bool Passed { get; init; }
    /// <summary>Where the threshold is written (baseline kind: the covering threshold, else the baseline file).</summary>
    public required SourcePosition Position { get; init; }
    public required ErrorCode Code { get; init; }
    /// <summary>The diagnostic text without position and severity, e.g. <c>cls: qat_vs_float output 'y' cosine min 0.98 &lt; 0.99</c>.</summary>
    public required string Message { get; init; }

    public string CodeText => Code.Text();

    /// <summary>What is measured, e.g. <c>output 'y' cosine min</c> or <c>evaluator 'accuracy'</c>.</summary>
    public string Subject => Kind == CheckKind.Evaluator || (Kind == CheckKind.Baseline && Aggregate is null)
        ? $"evaluator '{Metric}'"
        : $"output '{Output}' {Metric} {CheckNames.Of(Aggregate!.Value)}";

    /// <summary>The bound as text: <c>&gt;= 0.99</c>, or <c>baseline 0.995 ± 0.001</c>.</summary>
    public string LimitText => Kind == CheckKind.Baseline
        ? $"{(Lower ? ">=" : "<=")} baseline {Format.Number(Limit)} {(Lower ? "-" : "+")} {Format.Number(Tolerance)}"
        : $"{(Lower ? ">=" : "<=")} {Format.Number(Limit)}";

    /// <summary>A stable test-case name: rule, stage, subject and bound.</summary>
    public string CaseName => RuleText + $": {Subject} {LimitText}";

    /// <summary>The rule column of tables: the rule's name, <c>baseline</c>, or <c>default</c>.</summary>
    public string RuleText => Kind == CheckKind.Default ? (DefaultBound == DefaultBoundKind.BitExact ? "default (bit-exact)" : "default") : Rule is null ? "baseline" : Kind == CheckKind.Baseline ? $"{Rule} (baseline)" : Rule;

    /// <summary>The canonical MSBuild line: <c>file(line,col): error QB5001: message</c>.</summary>
    public string Diagnostic(bool asWarning) => $"{Position}: {(asWarning ? "warning" : "error")} {CodeText}: {Message}";
}

/// <summary>Number text for messages and reports: short, but never so short that a failing value looks equal to its bound.</summary>
public static class Format
{
    public static string Number(double x) => x.ToString("G6", CultureInfo.InvariantCulture);

    /// <summary>
    /// Both numbers at the precision that keeps their order (G6; more digits when rounding would print
    /// 0.9999997 against 1 as "1 &lt; 1").
    /// </summary>
    public static (string, string) Pair(double a, double b)
    {
        foreach (var f in new[] { "G6", "G9" })
        {
            string x = a.ToString(f, CultureInfo.InvariantCulture), y = b.ToString(f, CultureInfo.InvariantCulture);
            if (double.IsNaN(a) || double.IsNaN(b) || Order(double.Parse(x, CultureInfo.InvariantCulture), double.Parse(y, CultureInfo.InvariantCulture)) == Order(a, b))
                return (x, y);
        }
        return (a.ToString("R", CultureInfo.InvariantCulture), b.ToString("R", CultureInfo.InvariantCulture));
    }

    private static int Order(double a, double b) => a < b ? -1 : a > b ? 1 : 0;
}
