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
/// </summary>
public sealed class Baseline
{
    public const string FormatName = "quant-build-baseline/1";

    public SortedDictionary<string, BaselineStage> Stages { get; } = new(StringComparer.Ordinal);

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
            if (!root.TryGetProperty("format", out var f) || f.ValueKind != JsonValueKind.String || f.GetString() != FormatName)
                throw Bad($"'format' must be \"{FormatName}\"");
            var result = new Baseline();
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
