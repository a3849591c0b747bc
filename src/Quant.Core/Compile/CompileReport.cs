using System.Text.Json;
using Quant.Onnx;
using Quant.Runtime;

namespace Quant.Core.Compilation;

/// <summary>NAME.compile.json: planned input shapes, the memory plan summary, the cost model and the per-op estimate.</summary>
internal static class CompileReport
{
    public static string Json(QbmCompiler.Result r, string source, string qbmName, long qbmBytes)
    {
        var f = r.File;
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("model", source);
            w.WriteString("qbm", qbmName);
            w.WriteNumber("qbm_bytes", qbmBytes);
            w.WriteNumber("format_version", QbmLayout.FormatVersion);
            w.WriteStartObject("planned_input_shapes");
            foreach (var (name, shape) in r.PlannedInputShapes)
            {
                w.WriteStartArray(name);
                foreach (var d in shape) w.WriteNumberValue(d);
                w.WriteEndArray();
            }
            w.WriteEndObject();

            var intermediates = f.Values.Where(v => v.Kind == QbmValueKind.Intermediate).ToList();
            w.WriteStartObject("memory_plan");
            w.WriteNumber("peak_arena_bytes", f.MemoryPlan.ArenaBytes);
            w.WriteNumber("alignment", f.MemoryPlan.Alignment);
            w.WriteNumber("values", intermediates.Count);
            w.WriteNumber("bytes_without_reuse", f.MemoryPlan.Placements.Sum(p => p.Bytes));
            w.WriteNumber("largest_value_bytes", f.MemoryPlan.Placements.Select(p => p.Bytes).DefaultIfEmpty(0).Max());
            w.WriteNumber("constant_bytes", f.Constants.Sum(c => (long)c.Data.Length));
            w.WriteNumber("constants", f.Constants.Count);
            w.WriteEndObject();

            w.WriteStartObject("cost_model");
            w.WriteString("formula", "us = a + b * macs + c * (bytes_read + bytes_written), a b c per op family, fitted at 1 thread");
            w.WriteStartArray("families");
            foreach (var family in f.Cost.Model.Families)
            {
                w.WriteStartObject();
                w.WriteString("name", family.Name);
                w.WriteNumber("a_us", family.Microseconds);
                w.WriteNumber("b_us_per_mac", family.MicrosecondsPerMac);
                w.WriteNumber("c_us_per_byte", family.MicrosecondsPerByte);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();

            w.WriteStartObject("estimate");
            w.WriteNumber("total_ms", Math.Round(f.Cost.TotalMicroseconds / 1000, 3));
            w.WriteNumber("macs", f.Cost.Ops.Sum(c => c.Macs));
            w.WriteNumber("bytes_moved", f.Cost.Ops.Sum(c => c.BytesRead + c.BytesWritten));
            w.WriteStartArray("by_op_type");
            foreach (var g in f.Ops.Select((op, i) => (op.OpType, Cost: f.Cost.Ops[i])).GroupBy(x => x.OpType)
                         .OrderByDescending(g => g.Sum(x => x.Cost.Microseconds)).ThenBy(g => g.Key, StringComparer.Ordinal))
            {
                w.WriteStartObject();
                w.WriteString("op_type", g.Key);
                w.WriteNumber("ops", g.Count());
                w.WriteNumber("macs", g.Sum(x => x.Cost.Macs));
                w.WriteNumber("us", Math.Round(g.Sum(x => x.Cost.Microseconds), 1));
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();

            w.WriteStartArray("ops");
            for (int i = 0; i < f.Ops.Count; i++)
            {
                var op = f.Ops[i];
                var c = f.Cost.Ops[i];
                w.WriteStartObject();
                w.WriteNumber("step", i);
                w.WriteString("name", op.Name);
                w.WriteString("op_type", op.OpType);
                if (op.Domain.Length > 0) w.WriteString("domain", op.Domain);
                w.WriteString("cost_family", f.Cost.Model.Families[c.Family].Name);
                w.WriteNumber("macs", c.Macs);
                if (c.Macs > 0) w.WriteString("mac_type", c.MacType.OnnxName());
                w.WriteNumber("bytes_read", c.BytesRead);
                w.WriteNumber("bytes_written", c.BytesWritten);
                w.WriteNumber("us", Math.Round(c.Microseconds, 2));
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }
}
