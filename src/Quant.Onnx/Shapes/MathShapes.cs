namespace Quant.Onnx.Shapes;

/// <summary>MatMul, Gemm, reductions and Resize.</summary>
internal static class MathShapes
{
    public static void Register(Dictionary<string, ShapeInference.Rule> r)
    {
        r["MatMul"] = MatMul;
        r["MatMulInteger"] = MatMul;
        r["Gemm"] = Gemm;
        foreach (var op in new[] { "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSumExp", "ReduceSumSquare" })
            r[op] = Reduce;
        r["ArgMax"] = ArgReduce;
        r["ArgMin"] = ArgReduce;
        r["Resize"] = Resize;
        r["Upsample"] = Resize;
    }

    /// <summary>numpy.matmul: 1-D operands are promoted and the added dim dropped; batch dims broadcast.</summary>
    private static void MatMul(NodeContext c)
    {
        var a = c.Required(0);
        var b = c.Required(1);
        var type = c.Node.OpType == "MatMulInteger" ? ElementType.Int32 : a.Type;
        if (a.Shape is not { Length: > 0 } sa || b.Shape is not { Length: > 0 } sb) { c.Set(0, type, null); return; }
        bool aVec = sa.Length == 1, bVec = sb.Length == 1;
        Dim[] pa = aVec ? [Dim.Known(1), sa[0]] : sa;
        Dim[] pb = bVec ? [sb[0], Dim.Known(1)] : sb;
        var k1 = pa[^1];
        var k2 = pb[^2];
        if (k1.IsKnown && k2.IsKnown && k1.Value != k2.Value)
            throw c.Error($"inner dims differ: [{string.Join(",", sa)}] x [{string.Join(",", sb)}]");
        if (!k1.IsKnown || !k2.IsKnown) c.Ctx.Unify(k1, k2);
        var batch = c.Ctx.Broadcast(pa[..^2], pb[..^2], c.Node);
        var o = new List<Dim>(batch);
        if (!aVec) o.Add(pa[^2]);
        if (!bVec) o.Add(pb[^1]);
        c.Set(0, type, [.. o]);
    }

    private static void Gemm(NodeContext c)
    {
        var a = c.Required(0);
        var b = c.Required(1);
        if (a.Shape is not { Length: 2 } sa || b.Shape is not { Length: 2 } sb) { c.Set(0, a.Type, a.Shape is null || b.Shape is null ? null : [Dim.Unknown, Dim.Unknown]); return; }
        bool ta = c.Node.GetInt("transA", 0) != 0, tb = c.Node.GetInt("transB", 0) != 0;
        var (m, ka) = ta ? (sa[1], sa[0]) : (sa[0], sa[1]);
        var (kb, n) = tb ? (sb[1], sb[0]) : (sb[0], sb[1]);
        if (ka.IsKnown && kb.IsKnown && ka.Value != kb.Value) throw c.Error($"inner dims differ: {ka} vs {kb}");
        c.Set(0, a.Type, [m, n]);
    }

    /// <summary>
    /// Reduction axes: the <c>axes</c> attribute, or from ReduceSum-13 / all others at opset 18 the optional
    /// axes input. No axes: reduce everything, unless noop_with_empty_axes.
    /// </summary>
    private static void Reduce(NodeContext c)
    {
        var x = c.Required(0);
        bool axesAsInput = c.Node.OpType == "ReduceSum" ? c.Opset >= 13 : c.Opset >= 18;
        bool keep = c.Node.GetInt("keepdims", 1) != 0;
        long[]? axes;
        if (axesAsInput)
        {
            var ai = c.In(1);
            if (ai is not null && ai.KnownInts() is null)
            {
                // Axes only known at run time: the rank is still known when dims are kept.
                c.Set(0, x.Type, keep && x.Shape is { } s0 ? s0.Select(_ => Dim.Unknown).ToArray() : null);
                return;
            }
            axes = ai?.KnownInts();
        }
        else axes = c.Node.GetInts("axes");
        if (x.Shape is not { } s) { c.Set(0, x.Type, null); return; }
        if (axes is null || axes.Length == 0)
        {
            if (c.Node.GetInt("noop_with_empty_axes", 0) != 0) { c.Set(0, x.Type, s); return; }
            axes = Enumerable.Range(0, s.Length).Select(i => (long)i).ToArray();
        }
        var set = axes.Select(a => c.Axis(a, s.Length)).ToHashSet();
        var o = new List<Dim>();
        for (int i = 0; i < s.Length; i++)
        {
            if (!set.Contains(i)) o.Add(s[i]);
            else if (keep) o.Add(Dim.Known(1));
        }
        c.Set(0, x.Type, [.. o]);
    }

    private static void ArgReduce(NodeContext c)
    {
        var x = c.Required(0);
        if (x.Shape is not { } s) { c.Set(0, ElementType.Int64, null); return; }
        int axis = c.Axis(c.Node.GetInt("axis", 0), s.Length);
        bool keep = c.Node.GetInt("keepdims", 1) != 0;
        c.Set(0, ElementType.Int64, keep ? s.Select((d, i) => i == axis ? Dim.Known(1) : d).ToArray() : s.Where((_, i) => i != axis).ToArray());
    }

    /// <summary>
    /// Output size = sizes input if given, else floor(in * scale). Input layout: opset 10 (X, scales);
    /// 11+ (X, roi, scales, sizes), where from 13 roi/scales may be omitted; opset 18 adds axes.
    /// Upsample (opset 7-9): scales attribute (7-8) or input (9).
    /// </summary>
    private static void Resize(NodeContext c)
    {
        var x = c.Required(0);
        if (x.Shape is not { } s) { c.Set(0, x.Type, null); return; }
        Val? scalesIn, sizesIn;
        double[]? scales = null;
        if (c.Node.OpType == "Upsample")
        {
            scales = c.Opset >= 9 ? c.In(1)?.KnownReals() : c.Node.GetFloats("scales")?.Select(f => (double)f).ToArray();
            sizesIn = null;
            scalesIn = null;
        }
        else if (c.Opset < 11)
        {
            scalesIn = c.In(1);
            sizesIn = null;
        }
        else
        {
            scalesIn = c.In(2);
            sizesIn = c.In(3);
        }
        scales ??= scalesIn is { Shape: [{ IsKnown: true, Value: > 0 }] } ? scalesIn.KnownReals() : null;
        var axes = c.Node.GetInts("axes")?.Select(a => c.Axis(a, s.Length)).ToArray() ?? Enumerable.Range(0, s.Length).ToArray();
        var o = (Dim[])s.Clone();
        if (sizesIn is not null && sizesIn.Shape is not [{ Value: 0 }])
        {
            var sizes = sizesIn.Ints;
            if (c.Node.GetString("keep_aspect_ratio_policy", "stretch") != "stretch") sizes = null;
            for (int i = 0; i < axes.Length; i++) o[axes[i]] = sizes is { } sz && sz.Length == axes.Length ? sz[i] : Dim.Unknown;
        }
        else if (scales is { } sc && sc.Length == axes.Length)
        {
            for (int i = 0; i < axes.Length; i++) o[axes[i]] = Scale(c.Ctx, s[axes[i]], sc[i]);
        }
        else
        {
            for (int i = 0; i < axes.Length; i++) o[axes[i]] = Dim.Unknown;
        }
        if (c.Node.GetString("coordinate_transformation_mode", "") == "tf_crop_and_resize" && sizesIn is null)
            o = o.Select(_ => Dim.Unknown).ToArray(); // depends on roi values
        c.Set(0, x.Type, o);
    }

    /// <summary>floor(d * scale), exact for symbols when the scale or its inverse is a whole number.</summary>
    private static Dim Scale(InferenceContext ctx, Dim d, double scale)
    {
        if (d.IsKnown)
        {
            // ONNX Runtime computes in float: floor(float(d) * scale).
            return Dim.Known((long)Math.Floor((float)d.Value * (float)scale));
        }
        if (scale >= 1 && scale == Math.Floor(scale)) return ctx.Mul(d, (long)scale);
        if (scale > 0 && scale < 1 && 1 / scale == Math.Floor(1 / scale)) return ctx.FloorDiv(d, (long)(1 / scale));
        return Dim.Unknown;
    }
}
