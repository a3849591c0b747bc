using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Quant.Core.Conversion;

/// <summary>
/// NAME.convert.json (docs/quantized-model.md "What convert reports"): per computing node of the qat model what it
/// became — its <c>quant.build</c> op(s), or a float island with the reason — and totals per op type. File names
/// only, no paths or times, so the same qat model gives the same bytes. Names and reasons are written as they are
/// (quotes and control characters escaped), so the file reads like the model check.
/// </summary>
internal static class ConvertReport
{
    public static string Json(string qatFile, string quantizedFile, IReadOnlyList<ConvertedNode> nodes)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("qat_model", qatFile);
            w.WriteString("quantized_model", quantizedFile);
            w.WriteNumber("integer_nodes", nodes.Count(n => n.FloatIsland is null));
            w.WriteNumber("float_islands", nodes.Count(n => n.FloatIsland is not null));
            w.WriteStartObject("totals");
            foreach (var group in nodes.GroupBy(n => n.OpType).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                w.WriteStartObject(group.Key);
                w.WriteNumber("integer", group.Count(n => n.FloatIsland is null));
                w.WriteNumber("float_island", group.Count(n => n.FloatIsland is not null));
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteStartArray("nodes");
            foreach (var n in nodes)
            {
                w.WriteStartObject();
                w.WriteString("node", n.Node);
                w.WriteString("op", n.OpType);
                if (n.FloatIsland is not null) w.WriteString("float_island", n.FloatIsland);
                else
                {
                    w.WriteStartArray("became");
                    foreach (var b in n.Became) w.WriteStringValue(b);
                    w.WriteEndArray();
                    if (n.FloatCopyKept) w.WriteBoolean("float_copy_kept", true);
                    if (n.FoldedInto is not null) w.WriteString("folded_into", n.FoldedInto);
                }
                if (n.Fused is not null) w.WriteString("fused", n.Fused);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }
}
