namespace Quant.Onnx.Shapes;

/// <summary>Unary and broadcasting binary ops, casts, normalizations and Q/DQ: shape follows the inputs.</summary>
internal static class ElementwiseShapes
{
    public static void Register(Dictionary<string, ShapeInference.Rule> r)
    {
        foreach (var op in new[] { "Relu", "LeakyRelu", "Clip", "HardSigmoid", "HardSwish", "Sigmoid", "Tanh", "Erf", "Gelu",
                     "Exp", "Log", "Sqrt", "Reciprocal", "Softmax", "LogSoftmax", "Elu", "Selu", "Softplus", "Floor", "Ceil", "Round", "Sign", "Not" })
            r[op] = SameAsInput;
        r["Identity"] = c => c.Set(0, c.Required(0));
        r["Neg"] = c => Unary(c, (ctx, d) => ctx.Sub(Dim.Known(0), d), x => -x);
        r["Abs"] = c => Unary(c, (_, d) => Val.AsLong(d) is long v ? Val.KnownOrUnknown(Math.Abs(v)) : d, Math.Abs);
        foreach (var op in new[] { "Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Mod" })
            r[op] = c => Binary(c, c.Node.OpType);
        foreach (var op in new[] { "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor" })
            r[op] = Compare;
        r["Where"] = Where;
        r["Cast"] = Cast;
        r["Dropout"] = Dropout;
        r["BatchNormalization"] = BatchNorm;
        r["LayerNormalization"] = LayerNorm;
        r["QuantizeLinear"] = Quantize;
        r["DequantizeLinear"] = Dequantize;
    }

    private static void SameAsInput(NodeContext c)
    {
        var x = c.Required(0);
        c.Set(0, x.Type, x.Shape);
    }

    private static void Unary(NodeContext c, Func<InferenceContext, Dim, Dim> onInts, Func<double, double> onReals)
    {
        var x = c.Required(0);
        c.Set(0, new Val(x.Type, x.Shape)
        {
            Ints = x.Ints?.Select(d => onInts(c.Ctx, d)).ToArray(),
            Reals = x.Reals?.Select(onReals).ToArray(),
        });
    }

    /// <summary>Before opset 7 these ops broadcast only B into A (the legacy <c>broadcast</c> attribute); A's shape wins.</summary>
    private static Dim[]? BroadcastShapes(NodeContext c, Val a, Val b)
    {
        if (c.Opset < 7 && c.Node.OpType is "Add" or "Sub" or "Mul" or "Div" or "Pow" or "Equal" or "Less" or "Greater" or "And" or "Or" or "Xor")
            return a.Shape;
        if (a.Shape is null || b.Shape is null) return null;
        return c.Ctx.Broadcast(a.Shape, b.Shape, c.Node);
    }

    private static void Binary(NodeContext c, string op)
    {
        var a = c.Required(0);
        var b = c.In(1) ?? a;
        Dim[]? shape;
        if (op is "Max" or "Min" or "Sum" or "Mean")
        {
            // Variadic in ONNX: broadcast all inputs.
            shape = a.Shape;
            for (int i = 1; i < c.InputCount && shape is not null; i++)
                shape = c.In(i)?.Shape is { } s ? c.Ctx.Broadcast(shape, s, c.Node) : null;
        }
        else shape = BroadcastShapes(c, a, b);
        var type = a.Type != ElementType.Undefined ? a.Type : b.Type;
        c.Set(0, new Val(type, shape) { Ints = Val.IsIntegral(type) ? FoldInts(c, op, a, b, shape) : null, Reals = Val.IsReal(type) ? FoldReals(op, a, b, shape) : null });
    }

    /// <summary>
    /// Elementwise on tracked values when one side is a single element or both have the same count
    /// (all shape arithmetic in real exports). Integer division truncates toward zero, as ONNX Runtime does.
    /// </summary>
    private static Dim[]? FoldInts(NodeContext c, string op, Val a, Val b, Dim[]? shape)
    {
        if (a.Ints is not { } x || b.Ints is not { } y || shape is null) return null;
        int n = Math.Max(x.Length, y.Length);
        if (!(x.Length == y.Length || x.Length == 1 || y.Length == 1) || n == 0 && x.Length != y.Length) return null;
        var ctx = c.Ctx;
        var o = new Dim[n];
        for (int i = 0; i < n; i++)
        {
            var (p, q) = (x[x.Length == 1 ? 0 : i], y[y.Length == 1 ? 0 : i]);
            long? lp = Val.AsLong(p), lq = Val.AsLong(q);
            o[i] = op switch
            {
                "Add" => ctx.Add(p, q),
                "Sub" => ctx.Sub(p, q),
                "Mul" => ctx.Mul(p, q),
                "Div" when lp is { } u && lq is { } v && v != 0 => Val.KnownOrUnknown(u / v),
                "Div" when lq is > 0 => ctx.ExactDiv(p, q),
                "Max" when lp is { } u && lq is { } v => Val.KnownOrUnknown(Math.Max(u, v)),
                "Min" when lp is { } u && lq is { } v => Val.KnownOrUnknown(Math.Min(u, v)),
                "Mod" when lp is { } u && lq is { } v && v != 0 => Val.KnownOrUnknown(((u % v) + v) % v),
                _ => Dim.Unknown,
            };
        }
        return o;
    }

    private static double[]? FoldReals(string op, Val a, Val b, Dim[]? shape)
    {
        if (a.KnownReals() is not { } x || b.KnownReals() is not { } y || shape is null) return null;
        if (!(x.Length == y.Length || x.Length == 1 || y.Length == 1)) return null;
        int n = Math.Max(x.Length, y.Length);
        var o = new double[n];
        for (int i = 0; i < n; i++)
        {
            var (p, q) = (x[x.Length == 1 ? 0 : i], y[y.Length == 1 ? 0 : i]);
            o[i] = op switch
            {
                "Add" => p + q,
                "Sub" => p - q,
                "Mul" => p * q,
                "Div" => p / q,
                "Max" => Math.Max(p, q),
                "Min" => Math.Min(p, q),
                "Pow" => Math.Pow(p, q),
                _ => double.NaN,
            };
        }
        return o;
    }

    private static void Compare(NodeContext c)
    {
        var a = c.Required(0);
        var b = c.Required(1);
        var shape = BroadcastShapes(c, a, b);
        Dim[]? ints = null;
        if (c.Node.OpType == "Equal" && a.KnownInts() is { } x && b.KnownInts() is { } y && (x.Length == y.Length || x.Length == 1 || y.Length == 1))
        {
            int n = Math.Max(x.Length, y.Length);
            ints = new Dim[n];
            for (int i = 0; i < n; i++) ints[i] = Dim.Known(x[x.Length == 1 ? 0 : i] == y[y.Length == 1 ? 0 : i] ? 1 : 0);
        }
        c.Set(0, new Val(ElementType.Bool, shape) { Ints = ints });
    }

    private static void Where(NodeContext c)
    {
        var cond = c.Required(0);
        var x = c.Required(1);
        var y = c.Required(2);
        Dim[]? shape = cond.Shape is null || x.Shape is null || y.Shape is null ? null
            : c.Ctx.Broadcast(c.Ctx.Broadcast(cond.Shape, x.Shape, c.Node), y.Shape, c.Node);
        Dim[]? ints = null;
        if (shape is not null && cond.KnownInts() is { } k && x.Ints is { } xi && y.Ints is { } yi)
        {
            int n = Math.Max(k.Length, Math.Max(xi.Length, yi.Length));
            if (new[] { k.Length, xi.Length, yi.Length }.All(len => len == n || len == 1))
            {
                ints = new Dim[n];
                for (int i = 0; i < n; i++)
                    ints[i] = k[k.Length == 1 ? 0 : i] != 0 ? xi[xi.Length == 1 ? 0 : i] : yi[yi.Length == 1 ? 0 : i];
            }
        }
        c.Set(0, new Val(x.Type != ElementType.Undefined ? x.Type : y.Type, shape) { Ints = ints });
    }

    private static void Cast(NodeContext c)
    {
        var x = c.Required(0);
        var to = (ElementType)c.Node.GetInt("to", 0);
        if (c.Opset < 6 && c.Node.Attributes.TryGetValue("to", out var attr) && attr.Kind == AttributeKind.String)
            to = ParseTypeName(attr.String);
        Dim[]? ints = null;
        double[]? reals = null;
        if (Val.IsIntegral(to))
        {
            if (x.Ints is { } xi) ints = to == ElementType.Bool ? xi.Select(d => Val.AsLong(d) is long v ? Dim.Known(v != 0 ? 1 : 0) : Dim.Unknown).ToArray() : xi;
            else if (x.Reals is { } xr && xr.All(v => double.IsFinite(v) && Math.Abs(v) < 9e18))
                ints = xr.Select(v => Val.KnownOrUnknown(to == ElementType.Bool ? (v != 0 ? 1 : 0) : (long)Math.Truncate(v))).ToArray();
        }
        else if (Val.IsReal(to)) reals = x.KnownReals();
        c.Set(0, new Val(to, x.Shape) { Ints = ints, Reals = reals });
    }

    private static ElementType ParseTypeName(string s) => s.ToUpperInvariant() switch
    {
        "FLOAT" => ElementType.Float,
        "FLOAT16" => ElementType.Float16,
        "DOUBLE" => ElementType.Double,
        "INT8" => ElementType.Int8,
        "INT16" => ElementType.Int16,
        "INT32" => ElementType.Int32,
        "INT64" => ElementType.Int64,
        "UINT8" => ElementType.UInt8,
        "UINT16" => ElementType.UInt16,
        "UINT32" => ElementType.UInt32,
        "UINT64" => ElementType.UInt64,
        "BOOL" => ElementType.Bool,
        "STRING" => ElementType.String,
        _ => ElementType.Undefined,
    };

    private static void Dropout(NodeContext c)
    {
        var x = c.Required(0);
        c.Set(0, x.Type, x.Shape);
        // The mask is bool from opset 10; before that it had the input's type.
        c.Set(1, c.Opset >= 10 ? ElementType.Bool : x.Type, x.Shape);
    }

    private static void BatchNorm(NodeContext c)
    {
        var x = c.Required(0);
        c.Set(0, x.Type, x.Shape);
        // Training-mode outputs (running/saved mean and variance) have the per-channel shape of scale.
        var channels = c.In(1)?.Shape ?? (x.Shape is { Length: >= 2 } s ? [s[1]] : null);
        for (int i = 1; i < c.Node.Outputs.Count; i++) c.Set(i, x.Type, channels);
    }

    private static void LayerNorm(NodeContext c)
    {
        var x = c.Required(0);
        c.Set(0, x.Type, x.Shape);
        if (c.Node.Outputs.Count < 2) return;
        Dim[]? reduced = null;
        if (x.Shape is { } s)
        {
            int axis = c.Axis(c.Node.GetInt("axis", -1), s.Length);
            reduced = s.Select((d, i) => i < axis ? d : Dim.Known(1)).ToArray();
        }
        var stash = (ElementType)c.Node.GetInt("stash_type", 1);
        for (int i = 1; i < c.Node.Outputs.Count; i++) c.Set(i, stash, reduced);
    }

    private static void Quantize(NodeContext c)
    {
        var x = c.Required(0);
        var type = c.In(2)?.Type is { } zt and not ElementType.Undefined ? zt : ElementType.UInt8;
        if (c.Node.GetInt("output_dtype", 0) is var od and not 0) type = (ElementType)od;
        c.Set(0, type, x.Shape);
    }

    private static void Dequantize(NodeContext c)
    {
        var x = c.Required(0);
        // From opset 19 the output has the scale's type (float, float16, bfloat16); before, always float.
        var type = c.Opset >= 19 && c.In(1)?.Type is { } st and not ElementType.Undefined ? st : ElementType.Float;
        c.Set(0, type, x.Shape);
    }
}
