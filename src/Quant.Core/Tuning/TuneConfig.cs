using Quant.Core.Config;
using Quant.Core.Diagnostics;
using YamlDotNet.RepresentationModel;

namespace Quant.Core.Tuning;

/// <summary>
/// The <c>tune:</c> section: <c>targets</c> (rules written like <c>checks:</c>, stage qat_vs_float only),
/// <c>candidates</c> (the changes the search may make, Tuning/TuneCandidates) and <c>budget</c> (a duration).
/// Command-line options override candidates and budget.
/// </summary>
public sealed class TuneConfig
{
    public IReadOnlyList<TuneTarget> Targets { get; init; } = [];
    public IReadOnlyList<TuneChange>? Candidates { get; init; }
    public TimeSpan? Budget { get; init; }

    private static readonly string[] Keys = ["targets", "candidates", "budget"];

    /// <summary>Reads <paramref name="config"/>'s <c>tune:</c> section; <paramref name="floatOutputs"/> are the model's outputs targets may name.</summary>
    public static TuneConfig Read(QuantConfig config, IReadOnlyList<string> floatOutputs)
    {
        if (config.Tune is not { } node) return new TuneConfig();
        var r = new YamlReader(config.SourceFile);
        var targets = new List<TuneTarget>();
        IReadOnlyList<TuneChange>? candidates = null;
        TimeSpan? budget = null;
        foreach (var (key, kn, v) in r.Entries(r.Mapping(node, "tune"), "tune", Keys))
        {
            switch (key)
            {
                case "targets":
                    var rules = ChecksConfigReader.Read(r, kn, v, "tune.targets");
                    if (rules.Tolerance.Position.Line > 0)
                        throw new QuantException(ErrorCode.TuneInvalidTarget, rules.Tolerance.Position,
                            "tune.targets.baseline_tolerance: targets have no baseline; remove it (it belongs under checks:)");
                    targets.AddRange(FromRules(rules, floatOutputs));
                    break;
                case "candidates":
                    candidates = r.OneOrMany(v, "tune.candidates", (n, p) => TuneCandidates.Parse(r.String(n, p), r.At(n))).ToList();
                    break;
                case "budget":
                    budget = ParseBudget(r.String(v, "tune.budget"), r.At(v));
                    break;
            }
        }
        return new TuneConfig { Targets = targets, Candidates = candidates, Budget = budget };
    }

    /// <summary>Each metric bound of each rule, per output it covers (<c>*</c>: every float output), and each evaluator.</summary>
    public static IReadOnlyList<TuneTarget> FromRules(ChecksConfig rules, IReadOnlyList<string> floatOutputs)
    {
        var result = new List<TuneTarget>();
        foreach (var rule in rules.Rules)
        {
            if (rule.Stage != CheckStagePair.QatVsFloat)
                throw new QuantException(ErrorCode.TuneInvalidTarget, rule.StagePosition,
                    $"tune.targets.{rule.Name}: the tuner changes the qat model, so a target compares it with float (stage qat_vs_float, the default); remove 'stage: {CheckNames.Of(rule.Stage)}'");
            if (rule.Tolerance is not null)
                throw new QuantException(ErrorCode.TuneInvalidTarget, rule.Position,
                    $"tune.targets.{rule.Name}: targets have no baseline; remove baseline_tolerance");
            if (rule.Output != "*" && !floatOutputs.Contains(rule.Output))
                throw new QuantException(ErrorCode.TuneUnknownOutput, rule.OutputPosition,
                    $"tune.targets.{rule.Name}: the model has no float output '{rule.Output}'; its float outputs are: {string.Join(", ", floatOutputs)} (or \"*\" for all)");
            foreach (var t in rule.Thresholds)
                foreach (var output in rule.Output == "*" ? floatOutputs : [rule.Output])
                    result.Add(new TuneTarget
                    {
                        Rule = rule.Name, Output = output, Metric = CheckNames.Of(t.Metric), Similarity = t.Metric,
                        Over = t.AggregateFor(lower: t.Min is not null), Min = t.Min, Max = t.Max, Position = t.Position,
                    });
            if (rule.Evaluator is { } e)
                result.Add(new TuneTarget { Rule = rule.Name, Metric = e.Metric, Min = e.Min, Max = e.Max, Evaluator = e, Position = e.Position });
        }
        // Two targets on the same output and metric aggregated differently (worst sample and average) are two values:
        // the later one's key names its aggregation (OUTPUT:metric:avg), so neither overwrites the other.
        for (int i = 0; i < result.Count; i++)
            if (result[i].Similarity is not null && result.Take(i).Any(t => t.Key == result[i].Key && t.Over != result[i].Over))
                result[i] = result[i].WithKeySuffix(":" + CheckNames.Of(result[i].Over));
        return result;
    }

    /// <summary><c>90s</c>, <c>10m</c>, <c>1h</c>, <c>1h30m</c> or plain seconds.</summary>
    public static TimeSpan ParseBudget(string text, SourcePosition at)
    {
        var s = text.Trim();
        if (double.TryParse(s, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var plain) && plain > 0)
            return TimeSpan.FromSeconds(plain);
        double total = 0;
        int i = 0;
        bool any = false;
        while (i < s.Length)
        {
            int start = i;
            while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.')) i++;
            if (i == start || i == s.Length) { any = false; break; }
            var n = double.Parse(s[start..i], System.Globalization.CultureInfo.InvariantCulture);
            double unit = s[i++] switch { 'h' => 3600, 'm' => 60, 's' => 1, _ => double.NaN };
            if (double.IsNaN(unit)) { any = false; break; }
            total += n * unit;
            any = true;
        }
        if (!any || total <= 0)
            throw new QuantException(ErrorCode.TuneInvalidSetting, at, $"budget '{text}' is not a duration; write e.g. 90s, 10m or 1h30m");
        return TimeSpan.FromSeconds(total);
    }
}
