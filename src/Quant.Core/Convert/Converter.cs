using Quant.Core.Precision;
using Quant.Engine;
using Quant.Engine.Kernels.Integer;
using Quant.Onnx;
using Quant.Onnx.Shapes;

namespace Quant.Core.Conversion;

/// <summary>What one computing node of the qat model became (a row of NAME.convert.json).</summary>
public sealed record ConvertedNode(string Node, string OpType, IReadOnlyList<string> Became, string? Fused, bool FloatCopyKept, string? FloatIsland)
{
    /// <summary>The names of the nodes the rule emitted (before table chains were folded).</summary>
    public IReadOnlyList<string> Emitted { get; init; } = [];
    /// <summary>The QTable node(s) that now compute what this node's emitted nodes computed (a folded table chain), or null.</summary>
    public string? FoldedInto { get; init; }
}

/// <summary>
/// The rewrite of docs/quantized-model.md: integer groups are handed to their op's rule; a rule's replacement writes
/// the tensors of the QuantizeLinear readers it replaces, so everything downstream keeps working; a node whose output
/// also has float readers stays for them; Q/DQ nodes and replaced nodes left without readers are removed.
/// </summary>
internal static class Converter
{
    private static readonly HashSet<string> GemmOps = new(StringComparer.Ordinal) { "Conv", "ConvTranspose", "MatMul", "Gemm" };

    public static (OnnxModel Model, List<ConvertedNode> Report) Convert(OnnxModel model, string modelFile, bool foldTables = true)
    {
        var g = model.Graph;
        var qdq = new QdqGraph(model, modelFile);
        var shapes = InferShapes(model);
        var rules = IntegerRules.ByOpType;
        var emitter = new GraphEmitter(qdq);
        var report = new List<ConvertedNode>();
        var removable = new HashSet<Node>();
        var graphOutputs = new HashSet<string>(g.Outputs.Select(o => o.Name), StringComparer.Ordinal);
        var fusedInto = new HashSet<Node>();

        // Readers of a group's output change only when that group is rewritten (its Q readers go), so one map serves
        // the whole pass.
        var consumers = g.Consumers();
        // The integer type of every activation tensor of the quantized graph: each is the output name of a qat Q node.
        var formats = new Dictionary<string, ElementType>(StringComparer.Ordinal);
        foreach (var q in g.Nodes.Where(QdqGraph.IsQ)) formats[q.Outputs[0]] = qdq.Params(q).Type;
        foreach (var node in g.Nodes.ToList())
        {
            if (QdqGraph.IsQ(node) || QdqGraph.IsDq(node) || fusedInto.Contains(node)) continue;
            if (node.OpType == "Constant" && node.IsDefaultDomain) continue;
            // An Identity of a constant (PyTorch's shared scales and zero points) computes nothing: not an island.
            if (node.OpType == "Identity" && node.IsDefaultDomain && qdq.Constant(node.Outputs[0]) is not null) continue;
            var fused = Fusable(node, consumers, graphOutputs, qdq);
            if (fused is not null) fusedInto.Add(fused);
            string? island = null;
            if (!node.IsDefaultDomain) island = $"domain '{node.Domain}' has no integer rules";
            else if (!rules.TryGetValue(node.OpType, out _)) island = $"{node.OpType} has no integer rule in this build";
            var inputs = new IntegerInput?[node.Inputs.Count];
            for (int i = 0; island is null && i < node.Inputs.Count; i++)
            {
                var t = node.Inputs[i];
                if (t.Length == 0) continue;
                inputs[i] = qdq.IntegerOf(t);
                if (inputs[i] is null && TargetRules.IsDataInput(node.OpType, i) && !TargetRules.IsBiasInput(node.OpType, i) && !NonFloatConstant(qdq, t))
                    island = $"input {i} '{t}' is not quantized (no QuantizeLinear → DequantizeLinear before it)";
            }
            var outTensor = (fused ?? node).Outputs.Count > 0 ? (fused ?? node).Outputs[0] : "";
            var readers = consumers.GetValueOrDefault(outTensor) ?? [];
            var qReaders = readers.Where(r => QdqGraph.IsQ(r) && qdq.Params(r).Type is ElementType.Int8 or ElementType.Int16).ToList();
            var floatReaders = readers.Except(qReaders).Select(r => $"'{r.Name}' ({r.OpType})").ToList();
            if (graphOutputs.Contains(outTensor)) floatReaders.Add("the graph output");
            if (island is null && node.Outputs.Skip(1).Any(o => o.Length > 0 && (consumers.ContainsKey(o) || graphOutputs.Contains(o))))
                island = "it has several outputs in use";
            bool floatFromAccumulator = island is null && rules[node.OpType] is IFloatOutputRule && floatReaders.Count > 0;
            if (island is null && qReaders.Count == 0 && !floatFromAccumulator)
                island = floatReaders.Count > 0 ? $"its output is read as float by {floatReaders[0]}" : "its output is not read";
            if (island is not null)
            {
                report.Add(new ConvertedNode(node.Name, node.OpType, [], fused?.Name, false, island));
                if (fused is not null) fusedInto.Remove(fused);
                continue;
            }

            var outputs = qReaders.Select(q => new IntegerOutput(q.Outputs[0], qdq.Params(q).Format)).ToList();
            emitter.Clear();
            if (floatReaders.Count == 0 || floatFromAccumulator) emitter.Free(node.Name);
            var request = new LoweringRequest(node, inputs, outputs, qdq.Constant, emitter)
            {
                FusedActivation = fused, ModelFile = modelFile, Shape = name => shapes.GetValueOrDefault(name),
                FloatOutput = floatFromAccumulator ? outTensor : null, Opset = model.OpsetFor(""),
            };
            var reason = rules[node.OpType].Lower(request);
            if (reason is not null)
            {
                report.Add(new ConvertedNode(node.Name, node.OpType, [], fused?.Name, false, reason));
                if (fused is not null) fusedInto.Remove(fused);
                continue;
            }
            var written = new HashSet<string>(emitter.Nodes.SelectMany(n => n.Outputs), StringComparer.Ordinal);
            foreach (var o in outputs)
                if (!written.Contains(o.Tensor))
                    throw new InvalidOperationException($"the {node.OpType} rule did not write '{o.Tensor}' for {node.Describe()}");
            bool keepFloat = floatReaders.Count > 0 && !written.Contains(outTensor);
            var originalName = node.Name;
            if (keepFloat && node.Name.Length > 0 && emitter.Nodes.Any(n => n.Name == node.Name)) node.Name = qdq.Reserve(node.Name + "_float");
            foreach (var q in qReaders) g.Nodes.Remove(q);
            int at = g.Nodes.IndexOf(fused ?? node) + 1;
            if (written.Contains(outTensor))
            {
                // The float output now comes from the accumulator: the float node(s) go, so no tensor has two writers.
                g.Nodes.Remove(fused ?? node);
                if (fused is not null) g.Nodes.Remove(node);
                at = Math.Min(at, g.Nodes.Count);
                at = FirstReaderIndex(g, written, at);
            }
            g.Nodes.InsertRange(at, emitter.Nodes);
            foreach (var t in emitter.Initializers) g.Initializers[t.Name] = t;
            removable.Add(node);
            if (fused is not null) removable.Add(fused);
            report.Add(new ConvertedNode(originalName, node.OpType, emitter.Nodes.Select(n => n.OpType).ToList(), fused?.Name, keepFloat, null)
            { Emitted = emitter.Nodes.Select(n => n.Name).ToList() });
        }
        int requantized = Requantizations(g, qdq, emitter);
        RemoveDead(g, removable);
        RemoveUnused(g);
        model.Opsets[LoweringEmitter.Domain] = 1;
        var order = g.TopologicalOrder();
        g.Nodes.Clear();
        g.Nodes.AddRange(order);
        _ = requantized;
        var folded = !foldTables ? [] : TableChains.Fold(model, formats, t => shapes.TryGetValue(t, out var s) ? s.Length : null, qdq.Reserve);
        RemoveUnused(g);
        for (int i = 0; i < report.Count; i++)
            if (report[i].Emitted.Count > 0 && report[i].Emitted.All(folded.ContainsKey))
                report[i] = report[i] with { FoldedInto = string.Join(", ", report[i].Emitted.Select(e => folded[e]).Distinct()) };
        return (model, report);
    }

    /// <summary>Where to insert nodes writing <paramref name="written"/>: no later than their first reader.</summary>
    private static int FirstReaderIndex(Graph g, HashSet<string> written, int at)
    {
        for (int i = 0; i < Math.Min(at, g.Nodes.Count); i++)
            if (g.Nodes[i].Inputs.Any(written.Contains)) return i;
        return Math.Min(at, g.Nodes.Count);
    }

    private static Dictionary<string, Dim[]> InferShapes(OnnxModel model)
    {
        var result = new Dictionary<string, Dim[]>(StringComparer.Ordinal);
        try
        {
            foreach (var (name, vi) in ShapeInference.Run(model)) if (vi.Shape is not null) result[name] = vi.Shape;
        }
        catch (Exception e) when (e is OnnxFormatException or NotSupportedException or InvalidOperationException or ArgumentException)
        {
            // Shapes only sharpen the accumulator-width proof of activation × activation MatMuls; without them
            // those take the (equally exact) int64 accumulator.
        }
        return result;
    }

    private static bool NonFloatConstant(QdqGraph qdq, string tensor) => qdq.Constant(tensor) is { } t && t.Type is not (ElementType.Float or ElementType.Float16);

    /// <summary>
    /// P6: a GEMM-type node whose only reader is a Relu or a Clip with constant bounds (no Q between), or a Conv whose
    /// only reader is a HardSwish (the QConv's float activation epilogue, spec §4.4).
    /// </summary>
    private static Node? Fusable(Node node, Dictionary<string, List<Node>> consumers, HashSet<string> graphOutputs, QdqGraph qdq)
    {
        if (!GemmOps.Contains(node.OpType) || !node.IsDefaultDomain || node.Outputs.Count != 1 || graphOutputs.Contains(node.Outputs[0])) return null;
        if (!consumers.TryGetValue(node.Outputs[0], out var rs) || rs.Count != 1) return null;
        var r = rs[0];
        if (!r.IsDefaultDomain || r.Inputs.Count == 0 || r.Inputs[0] != node.Outputs[0]) return null;
        if (r.OpType == "Relu") return r;
        if (r.OpType == "HardSwish" && node.OpType == "Conv") return r;
        if (r.OpType == "Clip" && r.Inputs.Skip(1).All(i => i.Length == 0 || qdq.Constant(i) is { Type: ElementType.Float, ElementCount: 1 })) return r;
        return null;
    }

    /// <summary>
    /// P9: <c>DQ(s1, z1) → Q(s2, z2)</c> with nothing between becomes one QRequantize (M = s1/s2), when this build's
    /// engine has that kernel; otherwise the pair stays as the qat model has it (exact, in float).
    /// </summary>
    private static int Requantizations(Graph g, QdqGraph qdq, GraphEmitter emitter)
    {
        if (KernelRegistry.Default.Find(LoweringEmitter.Domain, "QRequantize", 1) is null) return 0;
        var producers = g.Producers();
        int count = 0;
        foreach (var q in g.Nodes.Where(QdqGraph.IsQ).ToList())
        {
            if (!producers.TryGetValue(q.Inputs[0], out var dq) || !QdqGraph.IsDq(dq)) continue;
            if (qdq.IntegerOf(dq.Outputs[0]) is not { IsConstant: false } x || x.Format.Type is not (ElementType.Int8 or ElementType.Int16)) continue;
            var y = qdq.Params(q);
            if (y.Type is not (ElementType.Int8 or ElementType.Int16)) continue;
            var (m, n) = Requantize.Mult((double)x.Format.Scale / y.Scales[0]);
            emitter.Clear();
            var mName = emitter.AddInitializer(q.Name + "_multiplier", TensorData.From("m", ElementType.Int32, [1], new[] { m }.AsSpan()));
            var nName = emitter.AddInitializer(q.Name + "_shift", TensorData.From("n", ElementType.Int32, [1], new[] { n }.AsSpan()));
            var rq = emitter.AddNode(q.Name + "_requantize", "QRequantize", LoweringEmitter.Domain, [x.Tensor, mName, nName], [q.Outputs[0]]);
            rq.Set(AttributeValue.Of("x_zero_point", (long)x.Format.ZeroPoint));
            rq.Set(AttributeValue.Of("to", (long)y.Type));
            rq.Set(AttributeValue.Of("y_zero_point", (long)y.ZeroPoints[0]));
            foreach (var t in emitter.Initializers) g.Initializers[t.Name] = t;
            g.Nodes[g.Nodes.IndexOf(q)] = rq;
            count++;
        }
        return count;
    }

    /// <summary>Removes Q/DQ nodes and replaced nodes none of whose outputs is read any more.</summary>
    private static void RemoveDead(Graph g, HashSet<Node> replaced)
    {
        var graphOutputs = new HashSet<string>(g.Outputs.Select(o => o.Name), StringComparer.Ordinal);
        bool changed = true;
        while (changed)
        {
            changed = false;
            var read = new HashSet<string>(g.Nodes.SelectMany(n => n.Inputs), StringComparer.Ordinal);
            foreach (var n in g.Nodes.ToList())
            {
                bool candidate = QdqGraph.IsQ(n) || QdqGraph.IsDq(n) || replaced.Contains(n) || n.OpType is "Constant" or "Identity" && n.IsDefaultDomain;
                if (!candidate || n.Outputs.Any(o => o.Length > 0 && (read.Contains(o) || graphOutputs.Contains(o)))) continue;
                g.Nodes.Remove(n);
                changed = true;
            }
        }
    }

    /// <summary>Drops initializers nobody reads any more (float weights of replaced nodes, unused scales) and stale value infos.</summary>
    private static void RemoveUnused(Graph g)
    {
        var read = new HashSet<string>(g.Nodes.SelectMany(n => n.Inputs), StringComparer.Ordinal);
        foreach (var n in g.Nodes)
            foreach (var a in n.Attributes.Values)
                foreach (var sub in a.Kind == AttributeKind.Graph ? [a.Graph!] : a.Graphs)
                    foreach (var r in sub.OuterScopeReads()) read.Add(r);
        foreach (var o in g.Outputs) read.Add(o.Name);
        foreach (var name in g.Initializers.Keys.ToList())
        {
            if (read.Contains(name)) continue;
            g.Initializers.Remove(name);
            g.Inputs.RemoveAll(i => i.Name == name);
        }
        var exists = new HashSet<string>(g.Nodes.SelectMany(n => n.Outputs).Concat(g.Inputs.Select(i => i.Name)).Concat(g.Initializers.Keys), StringComparer.Ordinal);
        foreach (var name in g.ValueInfos.Keys.ToList())
            if (!exists.Contains(name)) g.ValueInfos.Remove(name);
    }
}
