using System.Globalization;
using System.Text;
using System.Text.Json;
using Quant.Core.Config;
using Quant.Core.Diagnostics;

namespace Quant.Core.Checks;

/// <summary>
/// The accepted metric values a user commits (<c>quant-check baseline update</c> writes it; a check only reads it):
/// per stage pair, per output, <c>metric.aggregate</c> (e.g. <c>cosine.min</c>) → value, plus evaluator metrics.
/// <code>
/// { "format": "quant-build-baseline/1",
///   "stages": { "qat_vs_float": { "outputs": { "y": { "cosine.min": 0.9991 } }, "evaluators": { "accuracy": 0.97 } } } }
/// </code>
/// Non-finite values (an SQNR of identical outputs) are the strings "Infinity", "-Infinity", "NaN".
/// A check report (<c>NAME.check.json</c>, format <c>quant-build-check/1</c>) is read as a baseline too: what it
/// measured, as <c>baseline update</c> would have recorded it — that is how a shipped package serves as one.
/// </summary>
public sealed class Baseline
{
    public const string FormatName = "quant-build-baseline/1";

    public SortedDictionary<string, BaselineStage> Stages { get; } = new(StringComparer.Ordinal);

    /// <summary>How messages name where the accepted values come from: the file name, or "package ID VERSION".</summary>
    public string Label { get; private set; } = "";
    /// <summary>What it was read from: the file's path, or the exact <c>package:ID@VERSION</c> a package spec resolved to.</summary>
    public string Spec { get; private set; } = "";
    /// <summary>What to do when a worse value is accepted after all.</summary>
    public string AcceptHint { get; private set; } = "run 'quant-check baseline update'";
    /// <summary>Where a baseline entry that no <c>checks:</c> bound covers is reported.</summary>
    public SourcePosition Position { get; private set; }

    /// <summary>
    /// The baseline a check was given: a file, or <c>package:ID[@VERSION]</c> resolved with the NuGet settings of
    /// <paramref name="projectPath"/>'s folder (null: the current folder); problems with a package are reported at the
    /// spec in that project file.
    /// </summary>
    public static Baseline Open(string spec, string modelName, string? projectPath, CancellationToken cancel = default)
    {
        if (!PackageBaselineSpec.Is(spec)) return Load(spec);
        var at = SpecPosition(projectPath, spec);
        var parsed = PackageBaselineSpec.Parse(spec, at);
        var settingsDir = projectPath is null ? Directory.GetCurrentDirectory() : Path.GetDirectoryName(Path.GetFullPath(projectPath))!;
        var resolved = PackageBaseline.Resolve(parsed, modelName, settingsDir, at, cancel);
        var baseline = Load(resolved.CheckJsonPath);
        baseline.Label = $"package {resolved.Id} {resolved.Version.ToNormalizedString()}";
        baseline.Spec = resolved.Spec;
        baseline.Position = at;
        baseline.AcceptHint = parsed.Version is null
            ? $"ship it in a new version of {resolved.Id}, or raise baseline_tolerance"
            : $"point Baseline at a version of {resolved.Id} that has it, or raise baseline_tolerance";
        return baseline;
    }

    /// <summary>The spec's line and column in the project file (its Baseline="..." metadata); the file alone when not found there.</summary>
    private static SourcePosition SpecPosition(string? projectPath, string spec)
    {
        if (projectPath is null) return SourcePosition.InFile(Directory.GetCurrentDirectory());
        string[] lines;
        try { lines = File.ReadAllLines(projectPath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return SourcePosition.InFile(projectPath); }
        var id = spec.Split('@')[0];
        for (int i = 0; i < lines.Length; i++)
            if (lines[i].IndexOf(id, StringComparison.OrdinalIgnoreCase) is var col and >= 0) return new SourcePosition(projectPath, i + 1, col + 1);
        return SourcePosition.InFile(projectPath);
    }

    public BaselineStage Stage(CheckStagePair stage)
    {
        var key = CheckNames.Of(stage);
        if (!Stages.TryGetValue(key, out var s)) Stages[key] = s = new BaselineStage();
        return s;
    }

    public static string Key(CheckMetric metric, CheckAggregate over) => $"{CheckNames.Of(metric)}.{CheckNames.Of(over)}";

    /// <summary>Reads a baseline file; QB5005 at the file when it is missing or not one.</summary>
    public static Baseline Load(string path)
    {
        var at = SourcePosition.InFile(path);
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new QuantException(ErrorCode.CheckBaselineUnreadable, at,
                $"cannot read the baseline: {e.Message} (create it with 'quant-check baseline update')", e);
        }
        QuantException Bad(string why) => new(ErrorCode.CheckBaselineUnreadable, at, $"not a Quant.Build baseline: {why}");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(text); }
        catch (JsonException e) { throw Bad($"invalid JSON at line {e.LineNumber + 1}: {e.Message}"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw Bad("expected a JSON object");
            if (root.TryGetProperty("format", out var cf) && cf.ValueKind == JsonValueKind.String && cf.GetString() == CheckReports.JsonFormat)
                return FromCheckReport(root, Bad, path);
            if (!root.TryGetProperty("format", out var f) || f.ValueKind != JsonValueKind.String || f.GetString() != FormatName)
                throw Bad($"'format' must be \"{FormatName}\" (or \"{CheckReports.JsonFormat}\" for a check report)");
            var result = new Baseline { Label = Path.GetFileName(path), Spec = path, Position = at };
            if (!root.TryGetProperty("stages", out var stages)) return result;
            if (stages.ValueKind != JsonValueKind.Object) throw Bad("'stages' must be an object");
            foreach (var sp in stages.EnumerateObject())
            {
                if (!CheckNames.Stages.Any(s => s.Name == sp.Name))
                    throw Bad($"unknown stage pair '{sp.Name}' (known: {string.Join(", ", CheckNames.Stages.Select(s => s.Name))})");
                if (sp.Value.ValueKind != JsonValueKind.Object) throw Bad($"stages.{sp.Name} must be an object");
                var stage = new BaselineStage();
                result.Stages[sp.Name] = stage;
                if (sp.Value.TryGetProperty("outputs", out var outputs))
                {
                    if (outputs.ValueKind != JsonValueKind.Object) throw Bad($"stages.{sp.Name}.outputs must be an object");
                    foreach (var op in outputs.EnumerateObject())
                    {
                        if (op.Value.ValueKind != JsonValueKind.Object) throw Bad($"stages.{sp.Name}.outputs.{op.Name} must be an object");
                        var metrics = new SortedDictionary<string, double>(StringComparer.Ordinal);
                        foreach (var mp in op.Value.EnumerateObject())
                        {
                            if (ParseKey(mp.Name) is null)
                                throw Bad($"stages.{sp.Name}.outputs.{op.Name}: '{mp.Name}' is not metric.aggregate (e.g. cosine.min)");
                            metrics[mp.Name] = Number(mp.Value) ?? throw Bad($"stages.{sp.Name}.outputs.{op.Name}.{mp.Name} is not a number");
                        }
                        stage.Outputs[op.Name] = metrics;
                    }
                }
                if (sp.Value.TryGetProperty("evaluators", out var evaluators))
                {
                    if (evaluators.ValueKind != JsonValueKind.Object) throw Bad($"stages.{sp.Name}.evaluators must be an object");
                    foreach (var ep in evaluators.EnumerateObject())
                        stage.Evaluators[ep.Name] = Number(ep.Value) ?? throw Bad($"stages.{sp.Name}.evaluators.{ep.Name} is not a number");
                }
            }
            return result;
        }
    }

    /// <summary>
    /// A check report as a baseline, with the same entries <c>baseline update</c> records: per measured output the
    /// worst-sample aggregate of every metric plus each aggregate a threshold of that run read, and every evaluator metric.
    /// </summary>
    private static Baseline FromCheckReport(JsonElement root, Func<string, QuantException> bad, string path)
    {
        var result = new Baseline { Label = Path.GetFileName(path), Spec = path, Position = SourcePosition.InFile(path) };
        if (!root.TryGetProperty("metrics", out var metrics) || metrics.ValueKind != JsonValueKind.Object) throw bad("the check report has no 'metrics' object");
        double Value(JsonElement output, string where, string metric, string over) =>
            output.TryGetProperty(metric, out var m) && m.ValueKind == JsonValueKind.Object && m.TryGetProperty(over, out var v)
                ? Number(v) ?? throw bad($"{where}.{metric}.{over} is not a number")
                : throw bad($"{where} has no {metric}.{over}");
        var thresholds = root.TryGetProperty("checks", out var checks) && checks.ValueKind == JsonValueKind.Array
            ? checks.EnumerateArray().Where(c => c.ValueKind == JsonValueKind.Object && Text(c, "kind") == "threshold").ToList()
            : [];
        foreach (var sp in metrics.EnumerateObject())
        {
            var stage = CheckNames.Stages.Where(s => s.Name == sp.Name).Select(s => (CheckStagePair?)s.Value).FirstOrDefault()
                ?? throw bad($"unknown stage pair '{sp.Name}' in metrics");
            var bs = result.Stage(stage);
            if (sp.Value.TryGetProperty("outputs", out var outputs) && outputs.ValueKind == JsonValueKind.Object)
                foreach (var op in outputs.EnumerateObject())
                {
                    var where = $"metrics.{sp.Name}.outputs.{op.Name}";
                    var values = new SortedDictionary<string, double>(StringComparer.Ordinal);
                    foreach (var (name, metric) in CheckNames.Metrics)
                    {
                        var worst = CheckNames.Worst(metric);
                        values[Key(metric, worst)] = Value(op.Value, where, name, CheckNames.Of(worst));
                    }
                    foreach (var c in thresholds.Where(c => Text(c, "stage") == sp.Name && Text(c, "output") == op.Name))
                        if (Text(c, "metric") is { } m && Text(c, "over") is { } over && ParseKey($"{m}.{over}") is not null)
                            values[$"{m}.{over}"] = Value(op.Value, where, m, over);
                    bs.Outputs[op.Name] = values;
                }
            if (sp.Value.TryGetProperty("evaluators", out var evaluators) && evaluators.ValueKind == JsonValueKind.Object)
                foreach (var ep in evaluators.EnumerateObject())
                    bs.Evaluators[ep.Name] = Number(ep.Value) ?? throw bad($"metrics.{sp.Name}.evaluators.{ep.Name} is not a number");
        }
        return result;
    }

    private static string? Text(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary><c>cosine.min</c> → (cosine, min); null when it is not one.</summary>
    public static (CheckMetric Metric, CheckAggregate Over)? ParseKey(string key)
    {
        int dot = key.LastIndexOf('.');
        if (dot < 0) return null;
        var m = CheckNames.Metrics.Where(x => x.Name == key[..dot]).Select(x => (CheckMetric?)x.Value).FirstOrDefault();
        var a = CheckNames.Aggregates.Where(x => x.Name == key[(dot + 1)..]).Select(x => (CheckAggregate?)x.Value).FirstOrDefault();
        return m is null || a is null ? null : (m.Value, a.Value);
    }

    private static double? Number(JsonElement e) => Json.Read(e);

    /// <summary>Deterministic text: keys sorted, shortest round-trip numbers, two-space indent, trailing newline.</summary>
    public string Render()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("format", FormatName);
            w.WriteStartObject("stages");
            foreach (var (name, stage) in Stages)
            {
                w.WriteStartObject(name);
                w.WriteStartObject("outputs");
                foreach (var (output, metrics) in stage.Outputs)
                {
                    w.WriteStartObject(output);
                    foreach (var (k, v) in metrics) Json.Number(w, k, v);
                    w.WriteEndObject();
                }
                w.WriteEndObject();
                w.WriteStartObject("evaluators");
                foreach (var (k, v) in stage.Evaluators) Json.Number(w, k, v);
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }
}

public sealed class BaselineStage
{
    public SortedDictionary<string, SortedDictionary<string, double>> Outputs { get; } = new(StringComparer.Ordinal);
    public SortedDictionary<string, double> Evaluators { get; } = new(StringComparer.Ordinal);
}

/// <summary>JSON numbers that survive non-finite values.</summary>
internal static class Json
{
    public static void Number(Utf8JsonWriter w, string name, double v)
    {
        w.WritePropertyName(name);
        Number(w, v);
    }

    public static void Number(Utf8JsonWriter w, double v)
    {
        if (double.IsFinite(v)) w.WriteNumberValue(v);
        else w.WriteStringValue(double.IsNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
    }

    public static string Text(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>A number as <see cref="Number(Utf8JsonWriter, double)"/> writes it; null when it is not one.</summary>
    public static double? Read(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Number => e.GetDouble(),
        JsonValueKind.String => e.GetString() switch
        {
            "Infinity" => double.PositiveInfinity,
            "-Infinity" => double.NegativeInfinity,
            "NaN" => double.NaN,
            _ => null,
        },
        _ => null,
    };
}
