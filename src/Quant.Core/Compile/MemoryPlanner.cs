using Quant.Runtime;

namespace Quant.Core.Compilation;

/// <summary>
/// The static memory plan: every intermediate value gets an offset into one arena. Greedy by size: values are
/// placed largest first (ties: lower value id first) at the lowest 64-byte-aligned offset where no value placed so
/// far that is live at the same time overlaps it. Deterministic; the loader re-checks the result (QbmValidator).
/// </summary>
internal static class MemoryPlanner
{
    public static QbmMemoryPlan Plan(IReadOnlyList<QbmValue> values, IReadOnlyList<QbmOp> ops, IEnumerable<int> outputs)
    {
        var life = Liveness.Of(values.Count, ops, outputs);
        var items = Enumerable.Range(0, values.Count)
            .Where(v => values[v].Kind == QbmValueKind.Intermediate)
            .Select(v => (Value: v, Bytes: QbmLayout.Align(Bytes(values[v]), QbmLayout.ArenaAlignment)))
            .OrderByDescending(x => x.Bytes).ThenBy(x => x.Value).ToList();
        var placed = new List<QbmPlacement>(items.Count);
        long arena = 0;
        foreach (var (v, bytes) in items)
        {
            // Blocks of already placed values live at the same time, by offset; take the first gap that fits.
            var busy = placed.Where(p => p.Bytes > 0 && Liveness.Overlap((p.FirstStep, p.LastStep), life[v]))
                .OrderBy(p => p.Offset).ToList();
            long offset = 0;
            foreach (var p in busy)
            {
                if (p.Offset >= offset + bytes) break;
                offset = Math.Max(offset, p.Offset + p.Bytes);
            }
            placed.Add(new QbmPlacement(v, life[v].First, life[v].Last, offset, bytes));
            arena = Math.Max(arena, offset + bytes);
        }
        return new QbmMemoryPlan(arena, QbmLayout.ArenaAlignment, placed.OrderBy(p => p.Value).ToList());
    }

    public static long Bytes(QbmValue v) => v.Dims.Aggregate(1L, (a, d) => a * d) * Quant.Onnx.ElementTypes.SizeOf(v.Type);
}
