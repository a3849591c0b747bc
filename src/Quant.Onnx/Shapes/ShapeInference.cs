using System.Buffers.Binary;

namespace Quant.Onnx.Shapes;

/// <summary>
/// Infers the element type and shape of every value in a model's main graph.
/// Dims are known numbers, symbols, or unknown. Symbols propagate through arithmetic as canonical
/// expressions (e.g. a stride-2 Conv over <c>H</c> gives <c>floor((H+1)/2)</c>; see <see cref="SymbolicDim"/>).
/// Small integer tensors (shape vectors) are propagated element by element, symbols included, so
/// Shape → Gather/Slice → Concat → Reshape chains give exact target shapes. Constant node and initializer
/// values feed that propagation. Unknown ops (or ops in other domains) give outputs of unknown type and
/// rank without error, unless the graph declares their value_info.
/// </summary>
public static class ShapeInference
{
    /// <summary>Small tensors whose values we track (shape vectors, scales, pads).</summary>
    internal const int MaxTrackedElements = 256;

    /// <summary>
    /// Runs inference. <paramref name="inputShapes"/> overrides the declared shapes of graph inputs
    /// (e.g. make them static). With <paramref name="writeToGraph"/> the results for node outputs that are not
    /// graph outputs are stored in <c>graph.ValueInfos</c>.
    /// </summary>
    /// <exception cref="OnnxFormatException">shapes that contradict each other (e.g. Add of [3] and [4]), naming the node</exception>
    public static Dictionary<string, ValueInfo> Run(OnnxModel model, IReadOnlyDictionary<string, Dim[]>? inputShapes = null, bool writeToGraph = false)
    {
        var g = model.Graph;
        var ctx = new InferenceContext(model.OpsetFor(""));
        var result = new Dictionary<string, ValueInfo>(StringComparer.Ordinal);

        foreach (var (name, t) in g.Initializers) ctx.Values[name] = Val.FromTensor(t);
        foreach (var input in g.Inputs)
        {
            if (g.Initializers.ContainsKey(input.Name)) continue;
            var shape = input.Shape;
            if (inputShapes is not null && inputShapes.TryGetValue(input.Name, out var given))
            {
                if (shape is not null && shape.Length != given.Length)
                    throw new ArgumentException($"input '{input.Name}' has rank {shape.Length} but the given shape [{string.Join(",", given)}] has rank {given.Length}");
                for (int i = 0; shape is not null && i < shape.Length; i++)
                    if (shape[i].IsKnown && given[i].IsKnown && shape[i].Value != given[i].Value)
                        throw new ArgumentException($"input '{input.Name}' has dim {i} fixed to {shape[i].Value} but the given shape says {given[i].Value}");
                shape = given;
            }
            ctx.Values[input.Name] = new Val(input.Type, shape is null ? null : [.. shape]);
        }
        if (inputShapes is not null)
            foreach (var k in inputShapes.Keys)
                if (!g.RuntimeInputs.Any(i => i.Name == k))
                    throw new ArgumentException($"'{k}' is not an input of the model; inputs are {string.Join(", ", g.RuntimeInputs.Select(i => i.Name))}");

        foreach (var node in g.TopologicalOrder())
        {
            var nc = new NodeContext(ctx, node, node.IsDefaultDomain ? ctx.Opset : model.OpsetFor(node.Domain));
            try
            {
                if (node.IsDefaultDomain && Rules.TryGetValue(node.OpType, out var rule)) rule(nc);
            }
            catch (OnnxFormatException) { throw; }
            catch (Exception e) when (e is ArgumentException or IndexOutOfRangeException or InvalidOperationException or OverflowException or FormatException)
            {
                throw new OnnxFormatException($"{node.Describe()}: cannot infer shapes ({e.Message}); the node's attributes or inputs are malformed", e);
            }
            for (int i = 0; i < node.Outputs.Count; i++)
            {
                var name = node.Outputs[i];
                if (name.Length == 0) continue;
                var v = nc.Outputs.TryGetValue(i, out var o) ? o : new Val(ElementType.Undefined, null);
                ctx.Values[name] = MergeDeclared(v, g.FindValueInfo(name));
            }
        }

        foreach (var (name, v) in ctx.Values)
            result[name] = new ValueInfo(name, v.Type, v.Shape is null ? null : [.. v.Shape]);

        if (writeToGraph)
        {
            var outputs = new HashSet<string>(g.Outputs.Select(o => o.Name), StringComparer.Ordinal);
            foreach (var n in g.Nodes)
                foreach (var o in n.Outputs)
                    if (o.Length > 0 && !outputs.Contains(o) && result.TryGetValue(o, out var vi))
                        g.ValueInfos[o] = new ValueInfo(o, vi.Type, vi.Shape is null ? null : [.. vi.Shape]);
        }
        return result;
    }

    /// <summary>What the file declares fills in what inference could not tell.</summary>
    private static Val MergeDeclared(Val v, ValueInfo? declared)
    {
        if (declared is null) declared = new ValueInfo("", ElementType.Undefined, null);
        var type = v.Type == ElementType.Undefined ? declared.Type : v.Type;
        var shape = v.Shape;
        if (shape is null) shape = declared.Shape is null ? null : [.. declared.Shape];
        else if (declared.Shape is { } ds && ds.Length == shape.Length)
        {
            shape = [.. shape];
            for (int i = 0; i < shape.Length; i++)
                if (!shape[i].IsKnown && shape[i].Symbol is null) shape[i] = ds[i];
        }
        // Negative numbers inside shape vectors are encoded as reserved symbols; as dims they mean "invalid".
        if (shape is not null && shape.Any(d => Val.AsLong(d) is < 0))
            shape = shape.Select(d => Val.AsLong(d) is < 0 ? Dim.Unknown : d).ToArray();
        return new Val(type, shape) { Ints = v.Ints, Reals = v.Reals };
    }

    internal delegate void Rule(NodeContext c);

    private static readonly Dictionary<string, Rule> Rules = BuildRules();

    private static Dictionary<string, Rule> BuildRules()
    {
        var r = new Dictionary<string, Rule>(StringComparer.Ordinal);
        ElementwiseShapes.Register(r);
        ConvPoolShapes.Register(r);
        TensorShapes.Register(r);
        MathShapes.Register(r);
        return r;
    }

    /// <summary>The op types this inference understands (others give unknown outputs).</summary>
    public static IReadOnlyCollection<string> SupportedOps => Rules.Keys;
}

/// <summary>A value during inference: type, shape, and for small tensors the element values.</summary>
internal sealed class Val(ElementType type, Dim[]? shape)
{
    public ElementType Type { get; } = type;
    public Dim[]? Shape { get; } = shape;
    /// <summary>Elements of a small integer or bool tensor, row-major; symbolic where they come from shapes.</summary>
    public Dim[]? Ints { get; init; }
    /// <summary>Elements of a small floating-point tensor.</summary>
    public double[]? Reals { get; init; }

    public int? Rank => Shape?.Length;

    public static bool IsIntegral(ElementType t) => t is ElementType.Int8 or ElementType.UInt8 or ElementType.Int16 or ElementType.UInt16
        or ElementType.Int32 or ElementType.UInt32 or ElementType.Int64 or ElementType.UInt64 or ElementType.Bool;

    public static bool IsReal(ElementType t) => t is ElementType.Float or ElementType.Double or ElementType.Float16 or ElementType.BFloat16;

    /// <summary>Known element values as longs, or null if any is unknown/symbolic or not tracked.</summary>
    public long[]? KnownInts()
    {
        if (Ints is { } ints) return ints.All(d => AsLong(d) is not null) ? ints.Select(d => AsLong(d)!.Value).ToArray() : null;
        if (Reals is { } r) return r.All(x => x == Math.Floor(x) && Math.Abs(x) < 9e18) ? r.Select(x => (long)x).ToArray() : null;
        return null;
    }

    /// <summary>Known element values as doubles, or null.</summary>
    public double[]? KnownReals() => Reals ?? KnownInts()?.Select(x => (double)x).ToArray();

    public static Val FromTensor(TensorData t)
    {
        var shape = t.Dims.Select(Dim.Known).ToArray();
        long n = t.ElementCount;
        if (n > ShapeInference.MaxTrackedElements || t.Type == ElementType.String) return new Val(t.Type, shape);
        var raw = t.Raw.AsSpan();
        if (IsIntegral(t.Type))
        {
            var ints = new Dim[n];
            for (int i = 0; i < n; i++)
            {
                long v = t.Type switch
                {
                    ElementType.Int8 => (sbyte)raw[i],
                    ElementType.UInt8 or ElementType.Bool => raw[i],
                    ElementType.Int16 => BinaryPrimitives.ReadInt16LittleEndian(raw[(i * 2)..]),
                    ElementType.UInt16 => BinaryPrimitives.ReadUInt16LittleEndian(raw[(i * 2)..]),
                    ElementType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(raw[(i * 4)..]),
                    ElementType.UInt32 => BinaryPrimitives.ReadUInt32LittleEndian(raw[(i * 4)..]),
                    ElementType.UInt64 => (long)BinaryPrimitives.ReadUInt64LittleEndian(raw[(i * 8)..]),
                    _ => BinaryPrimitives.ReadInt64LittleEndian(raw[(i * 8)..]),
                };
                ints[i] = KnownOrUnknown(v);
            }
            return new Val(t.Type, shape) { Ints = ints };
        }
        if (IsReal(t.Type))
        {
            var reals = new double[n];
            for (int i = 0; i < n; i++)
                reals[i] = t.Type switch
                {
                    ElementType.Float => BinaryPrimitives.ReadSingleLittleEndian(raw[(i * 4)..]),
                    ElementType.Double => BinaryPrimitives.ReadDoubleLittleEndian(raw[(i * 8)..]),
                    ElementType.Float16 => (double)BinaryPrimitives.ReadHalfLittleEndian(raw[(i * 2)..]),
                    _ => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(raw[(i * 2)..]) << 16),
                };
            return new Val(t.Type, shape) { Reals = reals };
        }
        return new Val(t.Type, shape);
    }

    /// <summary>
    /// Element values travel as <see cref="Dim"/>s, which cannot hold negative numbers; those are kept
    /// as a reserved symbol so negative constants (Reshape's -1, Slice's negative ends) survive.
    /// </summary>
    public static Dim KnownOrUnknown(long v) => v >= 0 ? Dim.Known(v) : Dim.Named(NegativePrefix + (-(v + 1)).ToString(System.Globalization.CultureInfo.InvariantCulture));

    public const string NegativePrefix = "\u0000neg";

    /// <summary>The integer value of an element, including encoded negatives; null if symbolic or unknown.</summary>
    public static long? AsLong(Dim d)
    {
        if (d.IsKnown) return d.Value;
        if (d.Symbol is { } s && s.StartsWith(NegativePrefix, StringComparison.Ordinal))
            return -long.Parse(s.AsSpan(NegativePrefix.Length), System.Globalization.CultureInfo.InvariantCulture) - 1;
        return null;
    }
}

/// <summary>Per-run state: values, and the algebra on symbolic dims.</summary>
internal sealed class InferenceContext(long opset)
{
    public long Opset { get; } = opset;
    public Dictionary<string, Val> Values { get; } = new(StringComparer.Ordinal);
    /// <summary>Derived symbols we printed, so they are read back as expressions rather than opaque names.</summary>
    private readonly Dictionary<string, SymExpr> derived = new(StringComparer.Ordinal);
    /// <summary>Symbols found equal by broadcasting: each maps to its representative.</summary>
    private readonly Dictionary<string, string> equal = new(StringComparer.Ordinal);

    public SymExpr? Expr(Dim d)
    {
        if (d.IsKnown) return SymExpr.Const(d.Value);
        if (d.Symbol is null) return null;
        if (Val.AsLong(d) is { } neg) return SymExpr.Const(neg);
        var s = Representative(d.Symbol);
        return derived.TryGetValue(s, out var e) ? e : SymExpr.Symbol(s);
    }

    public Dim ToDim(SymExpr? e)
    {
        if (e is null) return Dim.Unknown;
        if (e.IsConstant) return e.ConstantTerm >= 0 ? Dim.Known(e.ConstantTerm) : Val.KnownOrUnknown(e.ConstantTerm);
        var s = e.ToString();
        derived.TryAdd(s, e);
        return Dim.Named(Representative(s));
    }

    private string Representative(string s)
    {
        for (int hops = 0; hops < 64 && equal.TryGetValue(s, out var r); hops++) s = r;
        return s;
    }

    private Dim Apply(Dim a, Dim b, Func<SymExpr, SymExpr, SymExpr?> f)
    {
        var (x, y) = (Expr(a), Expr(b));
        if (x is null || y is null) return Dim.Unknown;
        try { return ToDim(f(x, y)); }
        catch (OverflowException) { return Dim.Unknown; }
    }

    public Dim Add(Dim a, Dim b) => Apply(a, b, (x, y) => x + y);
    public Dim Sub(Dim a, Dim b) => Apply(a, b, (x, y) => x - y);
    public Dim Mul(Dim a, Dim b) => Apply(a, b, (x, y) => x * y);
    public Dim Add(Dim a, long k) => Add(a, Val.KnownOrUnknown(k));
    public Dim Mul(Dim a, long k) => Mul(a, Val.KnownOrUnknown(k));

    /// <summary>floor(a / k) for k &gt; 0.</summary>
    public Dim FloorDiv(Dim a, long k)
    {
        if (k <= 0) return Dim.Unknown;
        var x = Expr(a);
        if (x is null) return Dim.Unknown;
        try { return ToDim(x.FloorDiv(k)); }
        catch (OverflowException) { return Dim.Unknown; }
    }

    /// <summary>ceil(a / k) for k &gt; 0.</summary>
    public Dim CeilDiv(Dim a, long k) => k <= 0 ? Dim.Unknown : FloorDiv(Add(a, k - 1), k);

    /// <summary>a / b when it divides exactly (known values, or symbolic monomials); unknown otherwise.</summary>
    public Dim ExactDiv(Dim a, Dim b)
    {
        if (a.IsKnown && b.IsKnown) return b.Value != 0 && a.Value % b.Value == 0 ? Dim.Known(a.Value / b.Value) : Dim.Unknown;
        var (x, y) = (Expr(a), Expr(b));
        if (x is null || y is null) return Dim.Unknown;
        if (y.IsConstant && y.ConstantTerm > 0)
        {
            var q = x.FloorDiv(y.ConstantTerm);
            return ToDim(q);
        }
        try { return ToDim(x.ExactDiv(y)); }
        catch (OverflowException) { return Dim.Unknown; }
    }

    public Dim Product(IEnumerable<Dim> dims)
    {
        Dim p = Dim.Known(1);
        foreach (var d in dims) p = Mul(p, d);
        return p;
    }

    /// <summary>Numpy broadcasting of one dim pair; symbols that meet are recorded as equal.</summary>
    public Dim Broadcast(Dim a, Dim b, Node node)
    {
        if (a.IsKnown && b.IsKnown)
        {
            if (a.Value == b.Value || b.Value == 1) return a;
            if (a.Value == 1) return b;
            throw new OnnxFormatException($"{node.Describe()}: dims {a.Value} and {b.Value} cannot be broadcast together");
        }
        if (a.IsKnown) return a.Value == 1 ? b : a;
        if (b.IsKnown) return b.Value == 1 ? a : b;
        if (a.Symbol is null) return b;
        if (b.Symbol is null) return a;
        return Unify(a, b);
    }

    /// <summary>Two dims that must be equal at run time: keep the simpler spelling and remember the equality.</summary>
    public Dim Unify(Dim a, Dim b)
    {
        if (a.IsKnown || a.Symbol is null) return a.IsKnown ? a : b;
        if (b.IsKnown) return b;
        if (b.Symbol is null) return a;
        var ra = Representative(a.Symbol);
        var rb = Representative(b.Symbol);
        if (ra == rb) return Dim.Named(ra);
        bool aSimpler = ra.Length < rb.Length || (ra.Length == rb.Length && string.CompareOrdinal(ra, rb) < 0);
        var (keep, drop) = aSimpler ? (ra, rb) : (rb, ra);
        equal[drop] = keep;
        return Dim.Named(keep);
    }

    public Dim[] Broadcast(Dim[] a, Dim[] b, Node node)
    {
        int r = Math.Max(a.Length, b.Length);
        var o = new Dim[r];
        for (int i = 0; i < r; i++)
        {
            int ia = i - (r - a.Length), ib = i - (r - b.Length);
            o[i] = ia < 0 ? b[ib] : ib < 0 ? a[ia] : Broadcast(a[ia], b[ib], node);
        }
        return o;
    }
}

/// <summary>What a shape rule sees of one node.</summary>
internal sealed class NodeContext(InferenceContext ctx, Node node, long opset)
{
    public InferenceContext Ctx { get; } = ctx;
    public Node Node { get; } = node;
    public long Opset { get; } = opset;
    public Dictionary<int, Val> Outputs { get; } = [];

    public int InputCount => Node.Inputs.Count;

    /// <summary>Input <paramref name="i"/>, or null when omitted.</summary>
    public Val? In(int i)
    {
        var name = Node.InputOrNull(i);
        if (name is null) return null;
        return Ctx.Values.TryGetValue(name, out var v) ? v : new Val(ElementType.Undefined, null);
    }

    public Val Required(int i) => In(i) ?? throw Error($"input {i} is required");

    public void Set(int i, Val v) => Outputs[i] = v;
    public void Set(int i, ElementType type, Dim[]? shape) => Outputs[i] = new Val(type, shape);

    public OnnxFormatException Error(string message) => new($"{Node.Describe()}: {message}");

    /// <summary>Normalizes a possibly negative axis against <paramref name="rank"/>.</summary>
    public int Axis(long axis, int rank)
    {
        long a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank) throw Error($"axis {axis} is out of range for rank {rank}");
        return (int)a;
    }
}
