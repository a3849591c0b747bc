namespace Quant.Onnx.Shapes;

/// <summary>
/// Conv, ConvTranspose and pooling. Output spatial size (per ONNX spec), for kernel k, dilation d, stride s:
/// explicit pads: floor((in + pb + pe - ((k-1)*d+1)) / s) + 1 (ceil instead of floor with ceil_mode);
/// SAME_UPPER/SAME_LOWER: ceil(in / s); VALID: ceil((in - (k-1)*d) / s).
/// ConvTranspose: s*(in-1) + output_padding + (k-1)*d + 1 - pb - pe, or in*s for SAME, or output_shape.
/// </summary>
internal static class ConvPoolShapes
{
    public static void Register(Dictionary<string, ShapeInference.Rule> r)
    {
        r["Conv"] = Conv;
        r["ConvInteger"] = Conv;
        r["ConvTranspose"] = ConvTranspose;
        r["AveragePool"] = Pool;
        r["MaxPool"] = Pool;
        r["LpPool"] = Pool;
        r["GlobalAveragePool"] = GlobalPool;
        r["GlobalMaxPool"] = GlobalPool;
        r["GlobalLpPool"] = GlobalPool;
    }

    private static void Conv(NodeContext c)
    {
        var x = c.Required(0);
        var w = c.Required(1);
        var type = c.Node.OpType == "ConvInteger" ? ElementType.Int32 : x.Type;
        if (x.Shape is not { Length: >= 3 } xs)
        {
            // Unknown input rank: the weights still tell the rank and the output channels.
            c.Set(0, type, x.Shape is null && w.Shape is { Length: >= 3 } wsr ? [Dim.Unknown, wsr[0], .. Enumerable.Repeat(Dim.Unknown, wsr.Length - 2)] : null);
            return;
        }
        int spatial = xs.Length - 2;
        var kernel = Kernel(c, w.Shape, spatial);
        var outShape = new Dim[xs.Length];
        outShape[0] = xs[0];
        outShape[1] = w.Shape is { Length: >= 1 } ws ? ws[0] : Dim.Unknown;
        if (w.Shape is { } wsh && wsh.Length != xs.Length)
            throw c.Error($"weights have rank {wsh.Length} but the input has rank {xs.Length}");
        if (w.Shape is { Length: >= 2 } wc && xs[1].IsKnown && wc[1].IsKnown && c.Node.GetInt("group", 1) is var g and > 0 && xs[1].Value != wc[1].Value * g)
            throw c.Error($"input has {xs[1].Value} channels but the weights expect {wc[1].Value * g} ({wc[1].Value} per group x {g} groups)");
        Spatial(c, xs, kernel, outShape, ceilMode: false);
        c.Set(0, type, outShape);
    }

    /// <summary>Kernel sizes: the kernel_shape attribute, or the weights' trailing dims.</summary>
    private static Dim[] Kernel(NodeContext c, Dim[]? wshape, int spatial)
    {
        if (c.Node.GetInts("kernel_shape") is { } ks)
        {
            if (ks.Length != spatial) throw c.Error($"kernel_shape has {ks.Length} entries for {spatial} spatial dims");
            return ks.Select(Dim.Known).ToArray();
        }
        if (wshape is { } w && w.Length == spatial + 2) return w[2..];
        return Enumerable.Repeat(Dim.Unknown, spatial).ToArray();
    }

    private static long[] Ints(NodeContext c, string name, int count, long fallback)
    {
        var v = c.Node.GetInts(name);
        if (v is null || v.Length == 0) return Enumerable.Repeat(fallback, count).ToArray();
        if (v.Length != count) throw c.Error($"{name} has {v.Length} entries but {count} are needed");
        return v;
    }

    private static void Spatial(NodeContext c, Dim[] xs, Dim[] kernel, Dim[] outShape, bool ceilMode)
    {
        int spatial = xs.Length - 2;
        var strides = Ints(c, "strides", spatial, 1);
        var dilations = Ints(c, "dilations", spatial, 1);
        var pads = Ints(c, "pads", spatial * 2, 0);
        var autoPad = c.Node.GetString("auto_pad", "NOTSET");
        var ctx = c.Ctx;
        for (int i = 0; i < spatial; i++)
        {
            var input = xs[i + 2];
            long s = strides[i];
            if (s <= 0) throw c.Error($"stride {s} must be positive");
            Dim o;
            switch (autoPad)
            {
                case "SAME_UPPER":
                case "SAME_LOWER":
                    o = ctx.CeilDiv(input, s);
                    break;
                case "VALID":
                    o = kernel[i].IsKnown ? ctx.CeilDiv(ctx.Add(input, -(kernel[i].Value - 1) * dilations[i]), s) : Dim.Unknown;
                    break;
                default:
                    if (!kernel[i].IsKnown) { o = Dim.Unknown; break; }
                    long effective = (kernel[i].Value - 1) * dilations[i] + 1;
                    var span = ctx.Add(input, pads[i] + pads[i + spatial] - effective);
                    o = ctx.Add(ceilMode ? ctx.CeilDiv(span, s) : ctx.FloorDiv(span, s), 1);
                    if (o.IsKnown && ceilMode && input.IsKnown && (o.Value - 1) * s >= input.Value + pads[i])
                        o = Dim.Known(o.Value - 1); // the last window would start inside the end padding
                    break;
            }
            if (Val.AsLong(o) is < 0 || (o.IsKnown && o.Value == 0 && input.IsKnown && input.Value > 0))
                throw c.Error($"spatial dim {i} of size {input} is smaller than the kernel ({kernel[i]}, dilation {dilations[i]}) with its padding");
            outShape[i + 2] = o;
        }
    }

    private static void ConvTranspose(NodeContext c)
    {
        var x = c.Required(0);
        var w = c.Required(1);
        if (x.Shape is not { Length: >= 3 } xs) { c.Set(0, x.Type, null); return; }
        int spatial = xs.Length - 2;
        long group = c.Node.GetInt("group", 1);
        var kernel = Kernel(c, w.Shape, spatial);
        var outShape = new Dim[xs.Length];
        outShape[0] = xs[0];
        outShape[1] = w.Shape is { Length: >= 2 } ws ? c.Ctx.Mul(ws[1], group) : Dim.Unknown;
        var strides = Ints(c, "strides", spatial, 1);
        var dilations = Ints(c, "dilations", spatial, 1);
        var pads = Ints(c, "pads", spatial * 2, 0);
        var outPad = Ints(c, "output_padding", spatial, 0);
        var autoPad = c.Node.GetString("auto_pad", "NOTSET");
        var explicitShape = c.Node.GetInts("output_shape");
        var ctx = c.Ctx;
        for (int i = 0; i < spatial; i++)
        {
            if (explicitShape is { Length: > 0 } os)
            {
                // output_shape may list all dims or only the spatial ones.
                outShape[i + 2] = Dim.Known(os.Length == spatial ? os[i] : os[i + 2]);
                continue;
            }
            if (autoPad is "SAME_UPPER" or "SAME_LOWER") { outShape[i + 2] = ctx.Mul(xs[i + 2], strides[i]); continue; }
            if (!kernel[i].IsKnown) { outShape[i + 2] = Dim.Unknown; continue; }
            long fixedPart = outPad[i] + (kernel[i].Value - 1) * dilations[i] + 1 - (autoPad == "VALID" ? 0 : pads[i] + pads[i + spatial]);
            outShape[i + 2] = ctx.Add(ctx.Mul(ctx.Add(xs[i + 2], -1), strides[i]), fixedPart);
        }
        c.Set(0, x.Type, outShape);
    }

    private static void Pool(NodeContext c)
    {
        var x = c.Required(0);
        if (x.Shape is not { Length: >= 3 } xs) { c.Set(0, x.Type, null); c.Set(1, ElementType.Int64, null); return; }
        int spatial = xs.Length - 2;
        var ks = c.Node.GetInts("kernel_shape") ?? throw c.Error("kernel_shape is required");
        if (ks.Length != spatial) throw c.Error($"kernel_shape has {ks.Length} entries for {spatial} spatial dims");
        var outShape = new Dim[xs.Length];
        outShape[0] = xs[0];
        outShape[1] = xs[1];
        bool ceil = c.Node.GetInt("ceil_mode", 0) != 0;
        Spatial(c, xs, ks.Select(Dim.Known).ToArray(), outShape, ceil);
        c.Set(0, x.Type, outShape);
        if (c.Node.Outputs.Count > 1) c.Set(1, ElementType.Int64, outShape);
    }

    private static void GlobalPool(NodeContext c)
    {
        var x = c.Required(0);
        c.Set(0, x.Type, x.Shape is { Length: >= 2 } s ? s.Select((d, i) => i < 2 ? d : Dim.Known(1)).ToArray() : null);
    }
}
