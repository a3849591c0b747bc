using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Quant.Core.Analysis;
using Quant.Core.Diagnostics;

namespace Quant.Core.Checks;

/// <summary>
/// What the export measured on the samples, kept beside the qat model (<c>NAME.qat.vs_float.json</c>) so that a
/// check that follows does not run the float and the qat model over the samples a second time: per float output
/// the per-sample similarity of qat against float, and the qat model's last-bit stability (the floor of the
/// runtime_vs_qat default bound). It is trusted only under its key — the SHA-256 of the float and the qat model
/// file, the data fingerprint (preprocessing, sample list, file contents) and the build of the engine and of this
/// library — and only when it is complete for the check's samples and outputs; anything else is ignored and the
/// check measures afresh. It is a cache, never an input: a missing, stale or damaged one costs time, not results.
/// </summary>
public sealed class FloatVsQatCache
{
    public const string FormatName = "quant-build-float-vs-qat/1";

    public required string Key { get; init; }
    public required IReadOnlyList<string> Samples { get; init; }
    public required SimilarityTable Similarity { get; init; }
    public required IReadOnlyList<LastBitStability.OutputStability> Stability { get; init; }

    /// <summary><c>DIR/NAME.qat.onnx</c> → <c>DIR/NAME.qat.vs_float.json</c>.</summary>
    public static string PathFor(string qatModelPath) => Path.ChangeExtension(qatModelPath, ".vs_float.json");

    /// <summary>
    /// The key of a float model (by its <see cref="FileSha256"/>, which the export has already computed for its
    /// calibration cache), a qat model (read here) and a data set.
    /// </summary>
    public static string KeyOf(string floatModelSha256, string qatModelPath, string dataFingerprint) =>
        $"float={floatModelSha256};qat={FileSha256(qatModelPath)};data={dataFingerprint};build={Build}";

    /// <summary>
    /// The engine's and this library's module ids: deterministic builds derive them from the code, so any change to
    /// how models run or are measured invalidates caches an earlier build wrote.
    /// </summary>
    private static string Build => $"{typeof(Quant.Engine.InferenceSession).Assembly.ManifestModule.ModuleVersionId:N}," +
                                    $"{typeof(FloatVsQatCache).Assembly.ManifestModule.ModuleVersionId:N}";

    /// <summary>
    /// A float model's identity for the caches keyed on it: its file's SHA-256, and when its weights live in external-data
    /// files (<paramref name="loaded"/> says which), a SHA-256 over that and each data file's name and SHA-256, so that
    /// new weights in <c>model.onnx.data</c> are a new model. A model without external data keeps its file's hash.
    /// </summary>
    public static string ModelSha256(string path, Quant.Onnx.OnnxModel loaded)
    {
        var own = FileSha256(path);
        if (loaded.ExternalDataFiles.Count == 0) return own;
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var text = new System.Text.StringBuilder(own);
        foreach (var file in loaded.ExternalDataFiles)
            text.Append('\n').Append(Path.GetRelativePath(dir, file).Replace('\\', '/')).Append(' ').Append(FileSha256(file));
        return Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text.ToString())));
    }

    /// <summary>A file's SHA-256 as lower-case hex, read as a stream (models can be large).</summary>
    internal static string FileSha256(string path)
    {
        using var fs = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(fs));
    }

    /// <summary>Writes the cache atomically beside <paramref name="qatModelPath"/>.</summary>
    public static void Write(string qatModelPath, string key, IReadOnlyList<string> samples, SimilarityTable similarity,
        IReadOnlyList<LastBitStability.OutputStability> stability)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("format", FormatName);
            w.WriteString("key", key);
            w.WriteStartArray("samples");
            foreach (var s in samples) w.WriteStringValue(s);
            w.WriteEndArray();
            w.WriteStartArray("outputs");
            foreach (var output in similarity.Outputs)
            {
                w.WriteStartObject();
                w.WriteString("name", output);
                // Per sample: cosine, l1, l2, chebyshev, mse, mre, sqnr (the order of Similarity's fields).
                w.WriteStartArray("samples");
                foreach (var s in similarity.Samples(output))
                {
                    w.WriteStartArray();
                    foreach (var v in new[] { s.Cosine, s.L1, s.L2, s.Chebyshev, s.Mse, s.Mre, s.Sqnr }) Json.Number(w, v);
                    w.WriteEndArray();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("last_bit_stability");
            foreach (var s in stability)
            {
                w.WriteStartObject();
                w.WriteString("output", s.Output);
                Json.Number(w, "min_cosine", s.MinCosine);
                Json.Number(w, "avg_cosine", s.AvgCosine);
                w.WriteNumber("runs", s.Runs);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        AtomicText.Write(PathFor(qatModelPath), Encoding.UTF8.GetString(ms.ToArray()) + "\n");
    }

    /// <summary>
    /// The cache beside <paramref name="qatModelPath"/> when it exists, is well formed, has <paramref name="key"/>, and
    /// holds every one of <paramref name="samples"/> (in order) for exactly <paramref name="outputs"/>; otherwise null.
    /// </summary>
    public static FloatVsQatCache? TryRead(string qatModelPath, string key, IReadOnlyList<string> samples, IReadOnlyList<string> outputs)
    {
        var path = PathFor(qatModelPath);
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || Text(root, "format") != FormatName || Text(root, "key") != key) return null;
            var cachedSamples = root.GetProperty("samples").EnumerateArray().Select(e => e.GetString() ?? "").ToList();
            if (!cachedSamples.SequenceEqual(samples, StringComparer.Ordinal)) return null;
            var table = new SimilarityTable();
            var names = new List<string>();
            foreach (var o in root.GetProperty("outputs").EnumerateArray())
            {
                var name = Text(o, "name") ?? "";
                names.Add(name);
                int n = 0;
                foreach (var s in o.GetProperty("samples").EnumerateArray())
                {
                    var v = s.EnumerateArray().Select(Number).ToList();
                    if (v.Count != 7 || v.Any(x => x is null)) return null;
                    table.Add(name, new Similarity(v[0]!.Value, v[1]!.Value, v[2]!.Value, v[3]!.Value, v[4]!.Value, v[5]!.Value, v[6]!.Value));
                    n++;
                }
                if (n != samples.Count) return null;
            }
            if (!names.SequenceEqual(outputs, StringComparer.Ordinal)) return null;
            var stability = new List<LastBitStability.OutputStability>();
            foreach (var s in root.GetProperty("last_bit_stability").EnumerateArray())
            {
                if (Text(s, "output") is not { } output || Number(s.GetProperty("min_cosine")) is not { } min
                    || Number(s.GetProperty("avg_cosine")) is not { } avg || !s.GetProperty("runs").TryGetInt32(out int runs)) return null;
                stability.Add(new LastBitStability.OutputStability(output, min, avg, runs));
            }
            return new FloatVsQatCache { Key = key, Samples = cachedSamples, Similarity = table, Stability = stability };
        }
        // A damaged or foreign file is not an error: the check measures afresh.
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or IOException or FormatException)
        {
            return null;
        }
    }

    private static string? Text(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static double? Number(JsonElement e) => Json.Read(e);
}
