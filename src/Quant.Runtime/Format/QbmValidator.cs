using Quant.Onnx;
using static Quant.Runtime.QbmLayout;

namespace Quant.Runtime;

/// <summary>
/// Consistency of a decoded .qbm across sections: names, value ids and kinds, single assignment in schedule order,
/// constants sized by their dims, IO, the memory plan (one placement per intermediate, sized by its planned shape,
/// lifetimes equal to the program's, no two values live at once overlapping in the arena) and one cost per op.
/// </summary>
public static class QbmValidator
{
    public static void Validate(QbmFile f, string source)
    {
        QbmFormatException Fail(QbmError e, string section, string what) => new(e, source, $"section {section}: {what}");
        int n = f.Values.Count;
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int v = 0; v < n; v++)
            if (f.Values[v].Name.Length == 0 || !names.Add(f.Values[v].Name))
                throw Fail(QbmError.BadValue, "Values", $"value {v} has an empty or repeated name '{f.Values[v].Name}'");

        string Describe(int v) => $"value {v} '{f.Values[v].Name}'";
        void InRange(int v, string section, string what)
        {
            if (v < 0 || v >= n) throw Fail(QbmError.BadValueReference, section, $"{what} refers to value {v}, but there are {n} values");
        }

        // Constants: exactly the Constant-kind values, each sized by its dims.
        var hasData = new bool[n];
        for (int c = 0; c < f.Constants.Count; c++)
        {
            var k = f.Constants[c];
            InRange(k.Value, "ConstantTable", $"constant {c}");
            var v = f.Values[k.Value];
            if (v.Kind != QbmValueKind.Constant || hasData[k.Value])
                throw Fail(QbmError.BadConstant, "ConstantTable", $"constant {c} is for {Describe(k.Value)}, which is not a constant or already has data");
            hasData[k.Value] = true;
            long need = Elements(v.Dims) * v.Type.SizeOf();
            if (k.Data.LongLength != need)
                throw Fail(QbmError.BadConstant, "ConstantTable", $"constant {c} ({Describe(k.Value)}, {v.Type.OnnxName()}[{string.Join(",", v.Dims)}]) needs {need} bytes but has {k.Data.Length}");
        }
        for (int v = 0; v < n; v++)
            if (f.Values[v].Kind == QbmValueKind.Constant && !hasData[v])
                throw Fail(QbmError.BadConstant, "ConstantTable", $"{Describe(v)} is a constant without data");

        // IO: every input-kind value is a graph input exactly once; outputs name existing values.
        var isInput = new bool[n];
        for (int i = 0; i < f.Inputs.Count; i++)
        {
            int v = f.Inputs[i].Value;
            InRange(v, "Io", $"input {i}");
            if (f.Values[v].Kind != QbmValueKind.Input || isInput[v])
                throw Fail(QbmError.BadIo, "Io", $"input {i} is {Describe(v)}, which is not an input value or is listed twice");
            isInput[v] = true;
        }
        for (int v = 0; v < n; v++)
            if (f.Values[v].Kind == QbmValueKind.Input && !isInput[v])
                throw Fail(QbmError.BadIo, "Io", $"{Describe(v)} is an input value that no graph input lists");
        var outputNames = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < f.Outputs.Count; i++)
        {
            int v = f.Outputs[i].Value;
            InRange(v, "Io", $"output {i}");
            if (!outputNames.Add(f.Values[v].Name)) throw Fail(QbmError.BadIo, "Io", $"output {i} ({Describe(v)}) is listed twice");
        }
        if (f.Outputs.Count == 0) throw Fail(QbmError.BadIo, "Io", "the program has no outputs");

        // Program: reads see values that exist by then; each intermediate is produced exactly once.
        var produced = new bool[n];
        var opsetDomains = new HashSet<string>(f.Opsets.Select(o => o.Domain), StringComparer.Ordinal);
        for (int s = 0; s < f.Ops.Count; s++)
        {
            var op = f.Ops[s];
            string at = $"op {s} '{op.Name}' ({op.OpType})";
            if (!opsetDomains.Contains(op.Domain == "ai.onnx" ? "" : op.Domain))
                throw Fail(QbmError.BadValueReference, "Program", $"{at} is in domain '{op.Domain}', which the program imports no opset for");
            for (int k = 0; k < op.Inputs.Length; k++)
            {
                int v = op.Inputs[k];
                if (v == QbmFile.Omitted) continue;
                InRange(v, "Program", $"{at} input {k}");
                if (f.Values[v].Kind == QbmValueKind.Intermediate && !produced[v])
                    throw Fail(QbmError.BadValueReference, "Program", $"{at} input {k} reads {Describe(v)} before any op produces it");
            }
            for (int k = 0; k < op.Outputs.Length; k++)
            {
                int v = op.Outputs[k];
                if (v == QbmFile.Omitted) continue;
                InRange(v, "Program", $"{at} output {k}");
                if (f.Values[v].Kind != QbmValueKind.Intermediate || produced[v])
                    throw Fail(QbmError.BadValueReference, "Program", $"{at} output {k} writes {Describe(v)}, which is not an intermediate or is written twice");
                produced[v] = true;
            }
            var attrNames = new HashSet<string>(StringComparer.Ordinal);
            foreach (var a in op.Attributes)
                if (!attrNames.Add(a.Name)) throw Fail(QbmError.BadAttribute, "Program", $"{at} has attribute '{a.Name}' twice");
        }
        for (int v = 0; v < n; v++)
            if (f.Values[v].Kind == QbmValueKind.Intermediate && !produced[v])
                throw Fail(QbmError.BadValueReference, "Program", $"{Describe(v)} is an intermediate that no op produces");

        ValidatePlan(f, Fail);
        ValidatePackedWeights(f, Fail);

        if (f.Cost.Ops.Count != f.Ops.Count)
            throw Fail(QbmError.BadCost, "Cost", $"{f.Cost.Ops.Count} op estimates for {f.Ops.Count} ops");
    }

    /// <summary>Each (op, slot) has groups 0..G−1 exactly once, in order; whether they fit the op is the kernel's check at load.</summary>
    private static void ValidatePackedWeights(QbmFile f, Func<QbmError, string, string, QbmFormatException> fail)
    {
        var next = new Dictionary<(int Step, string Slot), int>();
        for (int i = 0; i < f.PackedWeights.Count; i++)
        {
            var p = f.PackedWeights[i];
            if (p.Step >= f.Ops.Count)
                throw fail(QbmError.BadPackedWeights, "PackedWeights", $"packed weights {i} are for step {p.Step}, but the program has {f.Ops.Count} ops");
            next.TryGetValue((p.Step, p.Slot), out int expected);
            if (p.Group != expected)
                throw fail(QbmError.BadPackedWeights, "PackedWeights", $"packed weights {i} (op {p.Step} '{f.Ops[p.Step].Name}', slot '{p.Slot}') are group {p.Group}, expected group {expected}");
            next[(p.Step, p.Slot)] = expected + 1;
        }
    }

    private static void ValidatePlan(QbmFile f, Func<QbmError, string, string, QbmFormatException> fail)
    {
        var plan = f.MemoryPlan;
        int n = f.Values.Count;
        var life = Liveness.Of(n, f.Ops, f.Outputs.Select(o => o.Value));
        var placed = new QbmPlacement?[n];
        for (int p = 0; p < plan.Placements.Count; p++)
        {
            var e = plan.Placements[p];
            if (e.Value < 0 || e.Value >= n || f.Values[e.Value].Kind != QbmValueKind.Intermediate || placed[e.Value] is not null)
                throw fail(QbmError.BadMemoryPlan, "MemoryPlan", $"placement {p} is for value {e.Value}, which is not an intermediate of the program or is placed twice");
            var v = f.Values[e.Value];
            long need = Align(Elements(v.Dims) * v.Type.SizeOf(), plan.Alignment);
            if (e.Bytes != need)
                throw fail(QbmError.BadMemoryPlan, "MemoryPlan", $"placement {p} gives value {e.Value} '{v.Name}' ({v.Type.OnnxName()}[{string.Join(",", v.Dims)}]) {e.Bytes} bytes; its planned shape needs {need}");
            if ((e.FirstStep, e.LastStep) != life[e.Value])
                throw fail(QbmError.BadMemoryPlan, "MemoryPlan", $"placement {p} says value {e.Value} '{v.Name}' is live in steps {e.FirstStep}..{e.LastStep}; the program makes it live in {life[e.Value].First}..{life[e.Value].Last}");
            placed[e.Value] = e;
        }
        for (int v = 0; v < n; v++)
            if (f.Values[v].Kind == QbmValueKind.Intermediate && placed[v] is null)
                throw fail(QbmError.BadMemoryPlan, "MemoryPlan", $"value {v} '{f.Values[v].Name}' has no place in the arena");

        // Sweep over steps: the live set is kept sorted by offset and pairwise disjoint, so a new value only
        // needs checking against its neighbours there (O(n log n) for any file).
        var byStart = plan.Placements.OrderBy(e => e.FirstStep).ThenBy(e => e.Offset).ToList();
        var byEnd = new PriorityQueue<QbmPlacement, int>();
        var live = new SortedSet<(long Offset, long End, int Value)>();
        foreach (var e in byStart)
        {
            while (byEnd.TryPeek(out var old, out int last) && last < e.FirstStep)
            {
                byEnd.Dequeue();
                live.Remove((old.Offset, old.Offset + old.Bytes, old.Value));
            }
            var item = (e.Offset, e.Offset + e.Bytes, e.Value);
            if (e.Bytes > 0)
            {
                var below = live.GetViewBetween((long.MinValue, long.MinValue, int.MinValue), (e.Offset, long.MaxValue, int.MaxValue));
                var above = live.GetViewBetween((e.Offset, long.MinValue, int.MinValue), (long.MaxValue, long.MaxValue, int.MaxValue));
                foreach (var other in new[] { below.Count > 0 ? below.Max : default, above.Count > 0 ? above.Min : default })
                    if (other.End > other.Offset && other.Offset < item.Item2 && e.Offset < other.End)
                        throw fail(QbmError.MemoryPlanOverlap, "MemoryPlan",
                            $"value {e.Value} '{f.Values[e.Value].Name}' (arena bytes {e.Offset}..{e.Offset + e.Bytes}, steps {e.FirstStep}..{e.LastStep}) overlaps value {other.Value} '{f.Values[other.Value].Name}' (bytes {other.Offset}..{other.End}) while both are live");
                live.Add(item);
            }
            byEnd.Enqueue(e, e.LastStep);
        }
    }

    private static long Elements(long[] dims)
    {
        long e = 1;
        foreach (var d in dims) e *= d;
        return e;
    }
}
