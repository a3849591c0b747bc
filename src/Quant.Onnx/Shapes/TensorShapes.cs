namespace Quant.Onnx.Shapes;

/// <summary>
/// Data movement and shape computation: Concat, Split, Slice, Gather, Reshape, Flatten, Squeeze, Unsqueeze,
/// Transpose, Expand, Pad, Shape, Size, ConstantOfShape, Range, Constant. These also carry the element values
/// of small integer tensors, so shape vectors computed in the graph stay exact (symbols included).
/// </summary>
internal static class TensorShapes
{
    public static void Register(Dictionary<string, ShapeInference.Rule> r)
    {
        r["Concat"] = Concat;
        r["Split"] = Split;
        r["Slice"] = Slice;
        r["Gather"] = Gather;
        r["Reshape"] = Reshape;
        r["Flatten"] = Flatten;
        r["Squeeze"] = Squeeze;
        r["Unsqueeze"] = Unsqueeze;
        r["Transpose"] = Transpose;
        r["Expand"] = Expand;
        r["Pad"] = Pad;
        r["Shape"] = Shape;
        r["Size"] = c => c.Set(0, new Val(ElementType.Int64, []) { Ints = c.Required(0).Shape is { } s ? [c.Ctx.Product(s)] : null });
        r["ConstantOfShape"] = ConstantOfShape;
        r["Range"] = Range;
        r["Constant"] = Constant;
    }

    private static void Concat(NodeContext c)
    {
        var inputs = Enumerable.Range(0, c.InputCount).Select(c.In).Where(v => v is not null).Select(v => v!).ToList();
        if (inputs.Count == 0) throw c.Error("needs at least one input");
        var type = inputs.Select(v => v.Type).FirstOrDefault(t => t != ElementType.Undefined);
        var known = inputs.FirstOrDefault(v => v.Shape is not null)?.Shape;
        if (known is null || inputs.Any(v => v.Shape is null))
        {
            c.Set(0, type, known is null ? null : known.Select(_ => Dim.Unknown).ToArray());
            return;
        }
        int rank = known.Length;
        if (inputs.Any(v => v.Shape!.Length != rank)) throw c.Error($"inputs have different ranks: {string.Join(", ", inputs.Select(v => v.Shape!.Length))}");
        if (rank == 0) throw c.Error("cannot concatenate scalars");
        long axisAttr = c.Node.Has("axis") ? c.Node.GetInt("axis", 0) : c.Opset < 4 ? 1 : throw c.Error("axis is required");
        int axis = c.Axis(axisAttr, rank);
        var o = (Dim[])known.Clone();
        Dim sum = Dim.Known(0);
        foreach (var v in inputs)
        {
            sum = c.Ctx.Add(sum, v.Shape![axis]);
            for (int i = 0; i < rank; i++)
            {
                if (i == axis) continue;
                var (a, b) = (o[i], v.Shape[i]);
                if (a.IsKnown && b.IsKnown && a.Value != b.Value) throw c.Error($"inputs differ in dim {i} ({a.Value} vs {b.Value}) outside the concat axis {axis}");
                o[i] = c.Ctx.Unify(a, b);
            }
        }
        o[axis] = sum;
        Dim[]? ints = null;
        if (rank == 1 && inputs.All(v => v.Ints is not null)) ints = inputs.SelectMany(v => v.Ints!).ToArray();
        c.Set(0, new Val(type, o) { Ints = ints });
    }

    /// <summary>Split sizes: attribute (&lt; 13), input (13+), or equal parts (the last smaller from 18, num_outputs).</summary>
    private static void Split(NodeContext c)
    {
        var x = c.Required(0);
        int outputs = c.Node.Outputs.Count;
        if (x.Shape is not { } s) { for (int i = 0; i < outputs; i++) c.Set(i, x.Type, null); return; }
        int axis = c.Axis(c.Node.GetInt("axis", 0), s.Length);
        long[]? split = c.Opset < 13 ? c.Node.GetInts("split") : c.In(1)?.KnownInts();
        bool splitUnknown = c.Opset >= 13 && c.In(1) is not null && split is null;
        for (int i = 0; i < outputs; i++)
        {
            var o = (Dim[])s.Clone();
            if (split is { Length: > 0 })
            {
                if (split.Length != outputs) throw c.Error($"split has {split.Length} entries for {outputs} outputs");
                if (s[axis].IsKnown && split.Sum() != s[axis].Value) throw c.Error($"split sizes sum to {split.Sum()} but the axis has {s[axis].Value}");
                o[axis] = Dim.Known(split[i]);
            }
            else if (splitUnknown) o[axis] = Dim.Unknown;
            else if (c.Opset >= 18 && s[axis].IsKnown)
            {
                long chunk = (s[axis].Value + outputs - 1) / outputs;
                o[axis] = Dim.Known(Math.Max(0, Math.Min(chunk, s[axis].Value - chunk * i)));
            }
            else
            {
                if (s[axis].IsKnown && s[axis].Value % outputs != 0) throw c.Error($"axis of size {s[axis].Value} does not split into {outputs} equal parts");
                o[axis] = c.Ctx.ExactDiv(s[axis], Dim.Known(outputs));
            }
            c.Set(i, x.Type, o);
        }
    }

    /// <summary>Slice: attributes before opset 10, then inputs (starts, ends, axes?, steps?). Clamping per spec.</summary>
    private static void Slice(NodeContext c)
    {
        var x = c.Required(0);
        long[]? starts, ends, axes, steps;
        bool unknownParams = false;
        if (c.Opset < 10)
        {
            starts = c.Node.GetInts("starts");
            ends = c.Node.GetInts("ends");
            axes = c.Node.GetInts("axes");
            steps = null;
        }
        else
        {
            starts = c.In(1)?.KnownInts();
            ends = c.In(2)?.KnownInts();
            axes = c.In(3) is { } ai ? ai.KnownInts() : null;
            steps = c.In(4) is { } si ? si.KnownInts() : null;
            unknownParams = starts is null || ends is null || (c.In(3) is not null && axes is null) || (c.In(4) is not null && steps is null);
        }
        if (x.Shape is not { } s) { c.Set(0, x.Type, null); return; }
        if (unknownParams || starts is null || ends is null)
        {
            // Which axes are sliced may be unknown; the rank is not.
            var ax = axes?.Select(a => c.Axis(a, s.Length)).ToHashSet();
            c.Set(0, x.Type, s.Select((d, i) => ax is null || ax.Contains(i) ? Dim.Unknown : d).ToArray());
            return;
        }
        if (starts.Length != ends.Length) throw c.Error($"{starts.Length} starts but {ends.Length} ends");
        axes ??= Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
        steps ??= Enumerable.Repeat(1L, starts.Length).ToArray();
        if (axes.Length != starts.Length || steps.Length != starts.Length) throw c.Error("starts, ends, axes and steps differ in length");
        var o = (Dim[])s.Clone();
        var ranges = new (long Start, long End, long Step)?[s.Length];
        for (int k = 0; k < starts.Length; k++)
        {
            int a = c.Axis(axes[k], s.Length);
            long step = steps[k];
            if (step == 0) throw c.Error("step 0 is not allowed");
            var d = s[a];
            if (d.IsKnown)
            {
                var (b, e) = Clamp(starts[k], ends[k], step, d.Value);
                long n = step > 0 ? Math.Max(0, (e - b + step - 1) / step) : Math.Max(0, (b - e + (-step) - 1) / -step);
                o[a] = Dim.Known(n);
                ranges[a] = (b, e, step);
            }
            else o[a] = SymbolicSlice(c.Ctx, d, starts[k], ends[k], step);
        }
        Dim[]? ints = null;
        if (s.Length == 1 && x.Ints is { } xi && ranges[0] is var (rb, re, rs))
        {
            var list = new List<Dim>();
            for (long i = rb; rs > 0 ? i < re : i > re; i += rs) list.Add(xi[i]);
            ints = [.. list];
        }
        else if (s.Length == 1 && x.Ints is { } xi2 && starts.Length == 0) ints = xi2;
        c.Set(0, new Val(x.Type, o) { Ints = ints });
    }

    private static (long Begin, long End) Clamp(long start, long end, long step, long dim)
    {
        if (start < 0) start += dim;
        if (end < 0) end += dim;
        if (step > 0)
            return (Math.Clamp(start, 0, dim), Math.Clamp(end, 0, dim));
        return (Math.Clamp(start, 0, dim - 1), Math.Clamp(end, -1, dim - 1));
    }

    /// <summary>
    /// Slice of a symbolic dim for the forms exports use: whole-axis bounds (INT_MAX-like ends), and
    /// offsets from either end. Assumes the dim is at least as large as the constant offsets.
    /// </summary>
    private static Dim SymbolicSlice(InferenceContext ctx, Dim d, long start, long end, long step)
    {
        const long Huge = int.MaxValue;
        if (step != 1) return Dim.Unknown;
        Dim? b = start >= 0 && start < Huge ? Dim.Known(start) : start < 0 && start > -Huge ? ctx.Add(d, start) : start <= -Huge ? Dim.Known(0) : null;
        Dim? e = end >= Huge ? d : end < 0 && end > -Huge ? ctx.Add(d, end) : null;
        // A fixed non-negative end may or may not exceed the dim, so the length is unknown then.
        if (b is null || e is null) return Dim.Unknown;
        return ctx.Sub(e.Value, b.Value);
    }

    private static void Gather(NodeContext c)
    {
        var data = c.Required(0);
        var idx = c.Required(1);
        if (data.Shape is not { } ds || idx.Shape is not { } isx) { c.Set(0, data.Type, null); return; }
        int axis = c.Axis(c.Node.GetInt("axis", 0), ds.Length);
        var o = ds[..axis].Concat(isx).Concat(ds[(axis + 1)..]).ToArray();
        Dim[]? ints = null;
        if (ds.Length == 1 && data.Ints is { } di && idx.KnownInts() is { } ii)
        {
            ints = new Dim[ii.Length];
            for (int k = 0; k < ii.Length; k++)
            {
                long j = ii[k] < 0 ? ii[k] + di.Length : ii[k];
                if (j < 0 || j >= di.Length) throw c.Error($"index {ii[k]} is out of range for {di.Length} elements");
                ints[k] = di[j];
            }
        }
        c.Set(0, new Val(data.Type, o) { Ints = ints });
    }

    /// <summary>Target from the shape input (attribute before opset 5): 0 copies the input dim unless allowzero, -1 is inferred.</summary>
    private static void Reshape(NodeContext c)
    {
        var x = c.Required(0);
        Dim[]? target;
        if (c.Opset < 5) target = c.Node.GetInts("shape")?.Select(Val.KnownOrUnknown).ToArray();
        else
        {
            var sv = c.Required(1);
            target = sv.Ints;
            if (target is null)
            {
                c.Set(0, x.Type, sv.Shape is [{ IsKnown: true } n] ? Enumerable.Repeat(Dim.Unknown, (int)n.Value).ToArray() : null);
                return;
            }
        }
        if (target is null) throw c.Error("has no target shape");
        bool allowZero = c.Node.GetInt("allowzero", 0) != 0;
        var o = new Dim[target.Length];
        int inferAt = -1;
        for (int i = 0; i < target.Length; i++)
        {
            long? v = Val.AsLong(target[i]);
            if (v == -1)
            {
                if (inferAt >= 0) throw c.Error("more than one -1 in the target shape");
                inferAt = i;
                o[i] = Dim.Unknown;
            }
            else if (v == 0 && !allowZero)
            {
                if (x.Shape is { } xs0 && i < xs0.Length) o[i] = xs0[i];
                else if (x.Shape is not null) throw c.Error($"target dim {i} is 0 (copy) but the input has rank {x.Shape.Length}");
                else o[i] = Dim.Unknown;
            }
            else if (v < -1) throw c.Error($"target dim {v} is invalid");
            else o[i] = target[i];
        }
        if (inferAt >= 0 && x.Shape is { } xs)
        {
            var total = c.Ctx.Product(xs);
            var rest = c.Ctx.Product(o.Where((_, i) => i != inferAt));
            o[inferAt] = c.Ctx.ExactDiv(total, rest);
            if (total.IsKnown && rest.IsKnown && (rest.Value == 0 || total.Value % rest.Value != 0))
                throw c.Error($"cannot reshape {total.Value} elements [{string.Join(",", xs)}] into [{string.Join(",", target.Select(t => Val.AsLong(t)?.ToString() ?? t.ToString()))}]");
        }
        else if (x.Shape is { } xs2 && o.All(d => d.IsKnown) && xs2.All(d => d.IsKnown) && c.Ctx.Product(o).Value != c.Ctx.Product(xs2).Value)
            throw c.Error($"cannot reshape [{string.Join(",", xs2)}] into [{string.Join(",", o)}]");
        c.Set(0, new Val(x.Type, o) { Ints = x.Ints });
    }

    private static void Flatten(NodeContext c)
    {
        var x = c.Required(0);
        if (x.Shape is not { } s) { c.Set(0, x.Type, [Dim.Unknown, Dim.Unknown]); return; }
        long axis = c.Node.GetInt("axis", 1);
        if (axis < 0) axis += s.Length;
        if (axis < 0 || axis > s.Length) throw c.Error($"axis {c.Node.GetInt("axis", 1)} is out of range for rank {s.Length}");
        c.Set(0, x.Type, [c.Ctx.Product(s[..(int)axis]), c.Ctx.Product(s[(int)axis..])]);
    }

    private static long[]? AxesOf(NodeContext c, out bool unknown)
    {
        unknown = false;
        if (c.Opset < 13) return c.Node.GetInts("axes");
        var ai = c.In(1);
        if (ai is null) return null;
        var v = ai.KnownInts();
        unknown = v is null;
        return v;
    }

    private static void Squeeze(NodeContext c)
    {
        var x = c.Required(0);
        var axes = AxesOf(c, out bool unknown);
        if (x.Shape is not { } s || unknown) { c.Set(0, x.Type, null); return; }
        HashSet<int> drop;
        if (axes is null || axes.Length == 0)
        {
            // Without axes every dim of size 1 goes; a dim we cannot see might be 1, so the rank is unknown then.
            if (s.Any(d => !d.IsKnown)) { c.Set(0, x.Type, null); return; }
            drop = Enumerable.Range(0, s.Length).Where(i => s[i].Value == 1).ToHashSet();
        }
        else
        {
            drop = axes.Select(a => c.Axis(a, s.Length)).ToHashSet();
            foreach (var i in drop)
                if (s[i].IsKnown && s[i].Value != 1) throw c.Error($"cannot squeeze axis {i} of size {s[i].Value}");
        }
        c.Set(0, new Val(x.Type, s.Where((_, i) => !drop.Contains(i)).ToArray()) { Ints = x.Ints });
    }

    private static void Unsqueeze(NodeContext c)
    {
        var x = c.Required(0);
        var axes = AxesOf(c, out bool unknown);
        if (axes is null && !unknown) throw c.Error("axes are required");
        if (x.Shape is not { } s || axes is null) { c.Set(0, x.Type, null); return; }
        int rank = s.Length + axes.Length;
        var insert = axes.Select(a => c.Axis(a, rank)).ToHashSet();
        if (insert.Count != axes.Length) throw c.Error("axes repeat");
        var o = new Dim[rank];
        for (int i = 0, j = 0; i < rank; i++) o[i] = insert.Contains(i) ? Dim.Known(1) : s[j++];
        c.Set(0, new Val(x.Type, o) { Ints = x.Ints });
    }

    private static void Transpose(NodeContext c)
    {
        var x = c.Required(0);
        if (x.Shape is not { } s) { c.Set(0, x.Type, null); return; }
        var perm = c.Node.GetInts("perm") ?? Enumerable.Range(0, s.Length).Reverse().Select(i => (long)i).ToArray();
        if (perm.Length != s.Length || perm.Distinct().Count() != perm.Length || perm.Any(p => p < 0 || p >= s.Length))
            throw c.Error($"perm [{string.Join(",", perm)}] is not a permutation of rank {s.Length}");
        c.Set(0, x.Type, perm.Select(p => s[p]).ToArray());
    }

    private static void Expand(NodeContext c)
    {
        var x = c.Required(0);
        var sv = c.Required(1);
        if (sv.Ints is not { } target)
        {
            c.Set(0, x.Type, sv.Shape is [{ IsKnown: true } n] && x.Shape is { } xs0 ? Enumerable.Repeat(Dim.Unknown, (int)Math.Max(n.Value, xs0.Length)).ToArray() : null);
            return;
        }
        if (x.Shape is not { } xs) { c.Set(0, x.Type, null); return; }
        c.Set(0, x.Type, c.Ctx.Broadcast(xs, target, c.Node));
    }

    /// <summary>Pads: attribute (&lt; 11) or input, [begin..., end...] over all axes or the given axes (18+).</summary>
    private static void Pad(NodeContext c)
    {
        var x = c.Required(0);
        if (x.Shape is not { } s) { c.Set(0, x.Type, null); return; }
        long[]? pads = c.Opset < 11 ? (c.Node.GetInts("pads") ?? c.Node.GetInts("paddings")) : c.In(1)?.KnownInts();
        if (pads is null) { c.Set(0, x.Type, s.Select(_ => Dim.Unknown).ToArray()); return; }
        int[] axes = c.Opset >= 18 && c.In(3)?.KnownInts() is { } ax ? ax.Select(a => c.Axis(a, s.Length)).ToArray() : Enumerable.Range(0, s.Length).ToArray();
        if (pads.Length != axes.Length * 2) throw c.Error($"pads has {pads.Length} entries for {axes.Length} axes");
        var o = (Dim[])s.Clone();
        for (int k = 0; k < axes.Length; k++) o[axes[k]] = c.Ctx.Add(s[axes[k]], pads[k] + pads[k + axes.Length]);
        c.Set(0, x.Type, o);
    }

    private static void Shape(NodeContext c)
    {
        var x = c.Required(0);
        if (x.Shape is not { } s) { c.Set(0, ElementType.Int64, [Dim.Unknown]); return; }
        long start = c.Opset >= 15 ? c.Node.GetInt("start", 0) : 0;
        long end = c.Opset >= 15 ? c.Node.GetInt("end", s.Length) : s.Length;
        if (start < 0) start += s.Length;
        if (end < 0) end += s.Length;
        start = Math.Clamp(start, 0, s.Length);
        end = Math.Clamp(end, start, s.Length);
        var dims = s[(int)start..(int)end];
        c.Set(0, new Val(ElementType.Int64, [Dim.Known(dims.Length)]) { Ints = dims });
    }

    private static void ConstantOfShape(NodeContext c)
    {
        var sv = c.Required(0);
        var value = c.Node.GetTensor("value");
        var type = value?.Type ?? ElementType.Float;
        Dim[]? shape = sv.Ints is { } t ? t.Select(d => Val.AsLong(d) is < 0 ? throw c.Error("negative dim in the shape") : d).ToArray()
            : sv.Shape is [{ IsKnown: true } n] ? Enumerable.Repeat(Dim.Unknown, (int)n.Value).ToArray() : null;
        Dim[]? ints = null;
        if (shape is not null && shape.All(d => d.IsKnown) && shape.Aggregate(1L, (p, d) => p * d.Value) is var count && count <= ShapeInference.MaxTrackedElements
            && Val.IsIntegral(type))
        {
            var v = value is null ? Dim.Known(0) : Val.FromTensor(value).Ints is [var only] ? only : Dim.Unknown;
            ints = Enumerable.Repeat(v, (int)count).ToArray();
        }
        c.Set(0, new Val(type, shape) { Ints = ints });
    }

    /// <summary>Range: max(ceil((limit - start) / delta), 0) elements of start's type.</summary>
    private static void Range(NodeContext c)
    {
        var start = c.Required(0);
        var limit = c.Required(1);
        var delta = c.Required(2);
        var type = start.Type;
        if (start.KnownReals() is [var s] && limit.KnownReals() is [var l] && delta.KnownReals() is [var d] && d != 0)
        {
            long n = (long)Math.Max(Math.Ceiling((l - s) / d), 0);
            Dim[]? ints = null;
            if (Val.IsIntegral(type) && n <= ShapeInference.MaxTrackedElements)
                ints = Enumerable.Range(0, (int)n).Select(i => Val.KnownOrUnknown((long)(s + i * d))).ToArray();
            c.Set(0, new Val(type, [Dim.Known(n)]) { Ints = ints });
            return;
        }
        // Common symbolic form: Range(0, n, 1) over a dim taken from a shape.
        if (start.KnownInts() is [0] && delta.KnownInts() is [1] && limit.Ints is [var lim])
        {
            c.Set(0, type, [lim]);
            return;
        }
        c.Set(0, type, [Dim.Unknown]);
    }

    /// <summary>Constant: value (tensor), or from opset 12 value_float(s)/value_int(s)/value_string(s).</summary>
    private static void Constant(NodeContext c)
    {
        var n = c.Node;
        if (n.GetTensor("value") is { } t) { c.Set(0, Val.FromTensor(t)); return; }
        if (n.Attributes.TryGetValue("value_float", out var f)) { c.Set(0, new Val(ElementType.Float, []) { Reals = [f.Float] }); return; }
        if (n.Attributes.TryGetValue("value_floats", out var fs)) { c.Set(0, new Val(ElementType.Float, [Dim.Known(fs.Floats.Length)]) { Reals = fs.Floats.Length <= ShapeInference.MaxTrackedElements ? fs.Floats.Select(v => (double)v).ToArray() : null }); return; }
        if (n.Attributes.TryGetValue("value_int", out var i)) { c.Set(0, new Val(ElementType.Int64, []) { Ints = [Val.KnownOrUnknown(i.Int)] }); return; }
        if (n.Attributes.TryGetValue("value_ints", out var iv)) { c.Set(0, new Val(ElementType.Int64, [Dim.Known(iv.Ints.Length)]) { Ints = iv.Ints.Length <= ShapeInference.MaxTrackedElements ? iv.Ints.Select(Val.KnownOrUnknown).ToArray() : null }); return; }
        if (n.Attributes.ContainsKey("value_string")) { c.Set(0, ElementType.String, []); return; }
        if (n.Attributes.TryGetValue("value_strings", out var ss)) { c.Set(0, ElementType.String, [Dim.Known(ss.StringList.Length)]); return; }
        // sparse_value: type and dims live in the undecoded attribute.
    }
}
