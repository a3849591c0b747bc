using System.Globalization;
using System.Text.Json;
using Quant.Core.Diagnostics;

namespace Quant.Core.Reports.Html;

/// <summary>
/// A value inside one of the report's input JSON files, with the key path that led to it, so that a missing or
/// mistyped key is reported as one error naming the file and the key (QB8062) instead of a crash.
/// </summary>
public readonly struct ReportJson
{
    private readonly string _file;
    private readonly string _path;

    private ReportJson(string file, JsonElement element, string path)
    {
        _file = file;
        Element = element;
        _path = path;
    }

    public JsonElement Element { get; }

    /// <summary>
    /// Parses <paramref name="file"/>; when <paramref name="format"/> is given, its <c>format</c> key must be exactly
    /// that (another kind or version is QB8063). <paramref name="writtenBy"/> names the command to re-run.
    /// </summary>
    public static ReportJson Load(string file, string? format, string writtenBy)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(file), new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw new QuantException(ErrorCode.ReportInputMalformed,
                new SourcePosition(file, (int)(e.LineNumber ?? -1) + 1, (int)(e.BytePositionInLine ?? -1) + 1),
                $"not valid JSON ({FirstSentence(e.Message)}); re-run {writtenBy} to write it again");
        }
        var root = new ReportJson(file, doc.RootElement, "");
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
            throw root.Error("the file holds a " + doc.RootElement.ValueKind.ToString().ToLowerInvariant() + ", not a JSON object", writtenBy);
        if (format is not null)
        {
            var found = root.Str("format");
            if (found != format)
                throw new QuantException(ErrorCode.ReportInputFormat, SourcePosition.InFile(file),
                    $"key 'format' is '{found}', this report reads '{format}'; re-run {writtenBy} with this Quant.Build");
        }
        return root;
    }

    public bool Has(string key) => Element.ValueKind == JsonValueKind.Object && Element.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null;

    public ReportJson Get(string key)
    {
        if (Element.ValueKind != JsonValueKind.Object || !Element.TryGetProperty(key, out var v))
            throw Error($"key '{Join(key)}' is missing");
        return new ReportJson(_file, v, Join(key));
    }

    public string Str(string key)
    {
        var v = Get(key);
        return v.Element.ValueKind == JsonValueKind.String ? v.Element.GetString()! : throw v.Error($"key '{v._path}' is not a string");
    }

    public string? StrOrNull(string key) => Has(key) ? Str(key) : null;

    public double Num(string key) => Get(key).AsNumber();

    public double? NumOrNull(string key) => Has(key) ? Num(key) : null;

    public bool Bool(string key)
    {
        var v = Get(key);
        return v.Element.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw v.Error($"key '{v._path}' is not true or false"),
        };
    }

    public IReadOnlyList<ReportJson> Arr(string key)
    {
        var v = Get(key);
        if (v.Element.ValueKind != JsonValueKind.Array) throw v.Error($"key '{v._path}' is not an array");
        var file = _file;
        var path = v._path;
        return v.Element.EnumerateArray().Select((e, i) => new ReportJson(file, e, $"{path}[{i.ToString(CultureInfo.InvariantCulture)}]")).ToList();
    }

    /// <summary>An optional array: empty when the key is missing or null.</summary>
    public IReadOnlyList<ReportJson> ArrOrEmpty(string key) => Has(key) ? Arr(key) : [];

    public IReadOnlyList<string> Strings(string key) => Arr(key).Select(e =>
        e.Element.ValueKind == JsonValueKind.String ? e.Element.GetString()! : throw e.Error($"key '{e._path}' is not a string")).ToList();

    /// <summary>An object's members in file order (the writers' order, which is deterministic).</summary>
    public IReadOnlyList<(string Key, ReportJson Value)> Members(string key)
    {
        var v = Get(key);
        if (v.Element.ValueKind != JsonValueKind.Object) throw v.Error($"key '{v._path}' is not an object");
        var file = _file;
        var path = v._path;
        return v.Element.EnumerateObject().Select(p => (p.Name, new ReportJson(file, p.Value, $"{path}.{p.Name}"))).ToList();
    }

    /// <summary>This value as a number: a JSON number, or the strings "NaN", "Infinity", "-Infinity" our writers use for non-finite values.</summary>
    public double AsNumber() => Element.ValueKind switch
    {
        JsonValueKind.Number => Element.GetDouble(),
        JsonValueKind.String when Element.GetString() is "NaN" => double.NaN,
        JsonValueKind.String when Element.GetString() is "Infinity" => double.PositiveInfinity,
        JsonValueKind.String when Element.GetString() is "-Infinity" => double.NegativeInfinity,
        _ => throw Error($"key '{_path}' is not a number"),
    };

    public QuantException Error(string what, string? writtenBy = null) =>
        new(ErrorCode.ReportInputMalformed, SourcePosition.InFile(_file),
            what + (writtenBy is null ? "; re-run the command that writes " + Path.GetFileName(_file) : "; re-run " + writtenBy));

    private string Join(string key) => _path.Length == 0 ? key : _path + "." + key;

    private static string FirstSentence(string message)
    {
        int i = message.IndexOf(". ", StringComparison.Ordinal);
        return (i > 0 ? message[..i] : message).TrimEnd('.');
    }
}
