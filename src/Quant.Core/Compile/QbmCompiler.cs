using Quant.Core.Diagnostics;
using Quant.Engine;
using Quant.Onnx;
using Quant.Runtime;

namespace Quant.Core.Compilation;

/// <summary>
/// Turns a model the engine runs into a .qbm's content. The engine plans the model once (its topological order and
/// its constant folding: what folds at load is stored as a constant, so the program holds only ops that run per
/// call); one engine run on zero-filled inputs of the planned static shapes gives every value's shape, from which
/// come the memory plan and the cost estimate.
/// </summary>
internal static class QbmCompiler
{
    public sealed record Result(QbmFile File, IReadOnlyDictionary<string, int[]> PlannedInputShapes);

    public static Result Compile(OnnxModel model, string file, CompileOptions options)
    {
        var where = SourcePosition.InFile(file);
        var g = model.Graph;
        foreach (var node in g.Nodes)
            foreach (var a in node.Attributes.Values)
                if (a.Kind is not (AttributeKind.Float or AttributeKind.Int or AttributeKind.String or AttributeKind.Floats or AttributeKind.Ints
                    or AttributeKind.Strings or AttributeKind.Tensor) || a.Kind == AttributeKind.Tensor && !QbmLayout.IsStorable(a.Tensor!.Type))
                    throw new QuantException(ErrorCode.CompileUnsupportedModel, where,
                        $"{node.Describe()}: attribute '{a.Name}' ({a.Kind}) cannot be stored in a .qbm (subgraphs, sparse tensors and string tensors are not supported)");
        InferenceSession session;
        try { session = new InferenceSession(model); }
        catch (EngineException e) { throw new QuantException(ErrorCode.ModelUnsupportedOp, where, e.Message, e); }

        var planned = PlannedShapes(g, options, where);
        var shapes = new Dictionary<string, (ElementType Type, long[] Dims)>(StringComparer.Ordinal);
        var feeds = g.RuntimeInputs.ToDictionary(i => i.Name, i => Tensor.Zeros(i.Type, planned[i.Name]), StringComparer.Ordinal);
        try { session.Run(feeds, new RunOptions { Observer = new ShapeRecorder(shapes) }); }
        catch (EngineException e)
        {
            throw new QuantException(ErrorCode.ModelRunFailed, where, $"the engine cannot run the model at the planned input shapes ({Describe(planned)}): {e.Message}", e);
        }

        var values = new List<QbmValue>();
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        var constants = new List<QbmConstant>();
        int Add(string name, QbmValueKind kind)
        {
            if (ids.TryGetValue(name, out var id)) return id;
            ElementType type;
            long[] dims;
            if (kind == QbmValueKind.Constant)
            {
                var t = session.ConstantValue(name)!;
                if (!QbmLayout.IsStorable(t.Type))
                    throw new QuantException(ErrorCode.CompileUnsupportedModel, where, $"constant '{name}' is a {t.Type.OnnxName()} tensor, which a .qbm cannot hold");
                type = t.Type;
                dims = t.Shape.Select(d => (long)d).ToArray();
                constants.Add(new QbmConstant(values.Count, t.Bytes().ToArray()));
            }
            else
            {
                if (!shapes.TryGetValue(name, out var s))
                    throw new QuantException(ErrorCode.CompileUnsupportedModel, where, $"value '{name}' was not computed by the shape run");
                if (!QbmLayout.IsStorable(s.Type))
                    throw new QuantException(ErrorCode.CompileUnsupportedModel, where, $"value '{name}' is a {s.Type.OnnxName()} tensor, which a .qbm cannot hold");
                (type, dims) = s;
            }
            ids[name] = values.Count;
            values.Add(new QbmValue(name, type, kind, dims));
            return values.Count - 1;
        }

        foreach (var i in g.RuntimeInputs) Add(i.Name, QbmValueKind.Input);
        var ops = new List<QbmOp>();
        foreach (var node in session.PlannedNodes)
        {
            var inputs = node.Inputs.Select(i => i.Length == 0 ? QbmFile.Omitted
                : ids.TryGetValue(i, out var id) ? id : Add(i, QbmValueKind.Constant)).ToArray();
            var outputs = node.Outputs.Select(o => o.Length == 0 ? QbmFile.Omitted : Add(o, QbmValueKind.Intermediate)).ToArray();
            ops.Add(new QbmOp(node.Name, node.OpType, node.Domain, inputs, outputs,
                node.Attributes.Values.OrderBy(a => a.Name, StringComparer.Ordinal).ToList()));
        }
        var outputIds = g.Outputs.Select(o => ids.TryGetValue(o.Name, out var id) ? id : Add(o.Name, QbmValueKind.Constant)).ToList();

        var consumers = g.Consumers();
        var producers = g.Producers();
        var io = new
        {
            Inputs = g.RuntimeInputs.Select(i => new QbmIo(ids[i.Name], i.Shape, InputQuantization(i, consumers, session))).ToList(),
            Outputs = g.Outputs.Select((o, k) => new QbmIo(outputIds[k], o.Shape, OutputQuantization(o, values[outputIds[k]], producers, session))).ToList(),
        };
        var plan = MemoryPlanner.Plan(values, ops, outputIds);
        var costModel = CostModel.Committed;
        var cost = new QbmCost(costModel, ops.Select(op => CostModel.Estimate(op, values, costModel)).ToList());
        var opsets = model.Opsets.Select(kv => (kv.Key == "ai.onnx" ? "" : kv.Key, kv.Value)).ToList();
        var qbm = new QbmFile
        {
            Opsets = opsets, Values = values, Inputs = io.Inputs, Outputs = io.Outputs, Ops = ops,
            Constants = constants, MemoryPlan = plan, Cost = cost, PackedWeights = PackedWeights(session),
        };
        return new Result(qbm, planned);
    }

    /// <summary>
    /// The integer GEMM weights the shape run's kernels packed (the paths the program takes at these input types), in
    /// step, slot, group order: stored so that loading hands them to the kernels without packing.
    /// </summary>
    private static List<QbmPackedWeights> PackedWeights(InferenceSession session)
    {
        // Steps are the session's planned nodes in order (the program is built from them), matched by node object.
        var step = new Dictionary<Node, int>(ReferenceEqualityComparer.Instance);
        var planned = session.PlannedNodes;
        for (int s = 0; s < planned.Count; s++) step[planned[s]] = s;
        return session.PackedWeights()
            .OrderBy(e => step[e.Node]).ThenBy(e => e.Slot, StringComparer.Ordinal)
            .SelectMany(e => e.Groups.Select((w, g) => new QbmPackedWeights(step[e.Node], e.Slot, g, w)))
            .ToList();
    }

    /// <summary>The static input shapes the plan is made for: given ones, else declared dims, unknown ones from the options.</summary>
    private static Dictionary<string, int[]> PlannedShapes(Graph g, CompileOptions options, SourcePosition where)
    {
        var result = new Dictionary<string, int[]>(StringComparer.Ordinal);
        var inputs = g.RuntimeInputs.ToList();
        foreach (var name in options.InputShapes.Keys)
            if (!inputs.Any(i => i.Name == name))
                throw new QuantException(ErrorCode.CompileInvalidInputShape, where, $"'{name}' is not an input of the model; its inputs are {string.Join(", ", inputs.Select(i => i.Name))}");
        foreach (var vi in inputs)
        {
            var declared = vi.Shape ?? throw new QuantException(ErrorCode.CompileInvalidInputShape, where,
                $"input '{vi.Name}' has no declared rank; give its shape (CompileOptions.InputShapes)");
            if (options.InputShapes.TryGetValue(vi.Name, out var given))
            {
                bool fits = given.Length == declared.Length && given.All(d => d > 0);
                for (int d = 0; fits && d < given.Length; d++) fits = !declared[d].IsKnown || declared[d].Value == given[d];
                if (!fits)
                    throw new QuantException(ErrorCode.CompileInvalidInputShape, where,
                        $"input '{vi.Name}': shape [{string.Join(",", given)}] does not fit the declared [{string.Join(",", declared)}]");
                result[vi.Name] = given;
                continue;
            }
            result[vi.Name] = declared.Select((d, k) => d.IsKnown ? (int)d.Value : k == 0 ? 1 : options.UnknownDimension).ToArray();
        }
        return result;
    }

    private static string Describe(IReadOnlyDictionary<string, int[]> shapes) =>
        string.Join(", ", shapes.Select(kv => $"{kv.Key} [{string.Join(",", kv.Value)}]"));

    /// <summary>An integer input read by DequantizeLinear with constant scalar scale and zero point carries them.</summary>
    private static QbmQuantization? InputQuantization(ValueInfo input, Dictionary<string, List<Node>> consumers, InferenceSession session)
    {
        if (input.Type is ElementType.Float or ElementType.Float16 or ElementType.Double || !consumers.TryGetValue(input.Name, out var readers)) return null;
        var dq = readers.FirstOrDefault(n => n.OpType == "DequantizeLinear" && n.IsDefaultDomain && n.Inputs[0] == input.Name);
        return dq is null ? null : Scalars(dq, session);
    }

    private static QbmQuantization? OutputQuantization(ValueInfo output, QbmValue value, Dictionary<string, Node> producers, InferenceSession session)
    {
        if (value.Type is ElementType.Float or ElementType.Float16 or ElementType.Double || !producers.TryGetValue(output.Name, out var q)
            || q.OpType != "QuantizeLinear" || !q.IsDefaultDomain) return null;
        return Scalars(q, session);
    }

    private static QbmQuantization? Scalars(Node qdq, InferenceSession session)
    {
        if (qdq.InputOrNull(1) is not { } s || session.ConstantValue(s) is not { Length: 1, Type: ElementType.Float } scale) return null;
        int zero = 0;
        if (qdq.InputOrNull(2) is { } z)
        {
            if (session.ConstantValue(z) is not { Length: 1 } zp) return null;
            zero = zp.Type switch
            {
                ElementType.Int8 => zp.Span<sbyte>()[0], ElementType.UInt8 => zp.Span<byte>()[0],
                ElementType.Int16 => zp.Span<short>()[0], ElementType.UInt16 => zp.Span<ushort>()[0],
                ElementType.Int32 => zp.Span<int>()[0], _ => 0,
            };
        }
        return new QbmQuantization(scale.Span<float>()[0], zero);
    }

    private sealed class ShapeRecorder(Dictionary<string, (ElementType, long[])> shapes) : IValueObserver
    {
        public Tensor? OnValue(in ObservedValue value)
        {
            shapes[value.Name] = (value.Value.Type, value.Value.Shape.Select(d => (long)d).ToArray());
            return null;
        }
    }
}
