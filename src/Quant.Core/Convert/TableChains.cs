using Quant.Engine;
using Quant.Engine.Kernels.Integer;
using Quant.Onnx;

namespace Quant.Core.Conversion;

/// <summary>
/// Collapses every chain of integer elementwise nodes that is a function of ONE per-tensor int8 tensor into one
/// <c>QTable</c> per tensor the chain hands on (docs/quantized-model.md "Table chains"). PaddleOCR wraps each conv in a
/// scale-and-shift (Mul, Add by scalars) around a decomposed hard-swish (Add 3, Clip, Mul, Div 6): eight integer
/// passes over the activation, all functions of the conv's int8 output. An int8 input has only 256 values, so the
/// chain is a 256-entry table; convert builds it by running the chain's own <c>quant.build</c> nodes through the
/// engine on a tensor holding every int8 value, so each entry is what the unfolded chain computes, bit for bit.
/// <para>A node belongs to the chain of root r when it is QAdd, QSub, QMul, QDiv, QRequantize or QTable, every
/// data input is either r, a tensor of r's chain, or a one-element integer initializer no higher in rank than r
/// (so broadcasting leaves r's shape unchanged), and its parameters are initializers. A per-tensor DequantizeLinear
/// of a chain tensor joins the chain too: its table is float (the det model's Sigmoid → DequantizeLinear output).</para>
/// </summary>
internal static class TableChains
{
    private static readonly Dictionary<string, int> DataInputs = new(StringComparer.Ordinal)
    {
        ["QAdd"] = 2, ["QSub"] = 2, ["QMul"] = 2, ["QDiv"] = 2, ["QRequantize"] = 1, ["QTable"] = 1,
    };

    /// <summary>
    /// Rewrites <paramref name="model"/>'s graph in place. <paramref name="formats"/> gives the integer type of the
    /// quantized graph's activation tensors and <paramref name="rank"/> their rank (null when unknown). Returns, for
    /// every folded node, the name of the table node(s) that now compute its chain.
    /// </summary>
    public static Dictionary<string, string> Fold(OnnxModel model, IReadOnlyDictionary<string, ElementType> formats, Func<string, int?> rank, Func<string, string> reserve)
    {
        var g = model.Graph;
        var order = g.TopologicalOrder();
        var rootOf = new Dictionary<string, string>(StringComparer.Ordinal);
        var members = new Dictionary<string, List<Node>>(StringComparer.Ordinal);
        foreach (var node in order)
        {
            if (Root(node, g, formats, rank, rootOf) is not { } root) continue;
            rootOf[node.Outputs[0]] = root;
            if (!members.TryGetValue(root, out var list)) members[root] = list = [];
            list.Add(node);
        }

        var folded = new Dictionary<string, string>(StringComparer.Ordinal);
        if (members.Count == 0) return folded;
        var consumers = g.Consumers();
        var graphOutputs = new HashSet<string>(g.Outputs.Select(o => o.Name), StringComparer.Ordinal);
        foreach (var (root, chain) in members)
        {
            if (chain is [{ OpType: "QTable" }]) continue;
            var inChain = new HashSet<Node>(chain, ReferenceEqualityComparer.Instance);
            var outputs = chain.Select(n => n.Outputs[0])
                .Where(o => graphOutputs.Contains(o) || consumers.GetValueOrDefault(o)?.Any(r => !inChain.Contains(r)) == true).ToList();
            var tables = Tables(model, root, chain, outputs);
            int at = g.Nodes.IndexOf(chain[0]);
            foreach (var n in chain) g.Nodes.Remove(n);
            var names = new List<string>();
            for (int k = 0; k < outputs.Count; k++)
            {
                var producer = chain.First(n => n.Outputs[0] == outputs[k]);
                var table = tables[k];
                var tableName = reserve(producer.Name + "_table");
                g.Initializers[tableName] = table.Type switch
                {
                    ElementType.Int8 => TensorData.From(tableName, ElementType.Int8, [256], table.ReadOnlySpan<sbyte>()[..256]),
                    ElementType.Int16 => TensorData.From(tableName, ElementType.Int16, [256], table.ReadOnlySpan<short>()[..256]),
                    _ => TensorData.From(tableName, ElementType.Float, [256], table.ReadOnlySpan<float>()[..256]),
                };
                // The producer is gone: its name is free for the table that now writes its tensor.
                g.Nodes.Insert(Math.Min(at, g.Nodes.Count), new Node(producer.Name, "QTable", QuantBuildOps.Domain, [root, tableName], [outputs[k]]));
                names.Add(producer.Name);
            }
            var joined = string.Join(", ", names);
            foreach (var n in chain) folded[n.Name] = joined;
        }
        var sorted = g.TopologicalOrder();
        g.Nodes.Clear();
        g.Nodes.AddRange(sorted);
        return folded;
    }

    /// <summary>The int8 root <paramref name="node"/> is a function of, or null when it is not a chain member.</summary>
    private static string? Root(Node node, Graph g, IReadOnlyDictionary<string, ElementType> formats, Func<string, int?> rank, Dictionary<string, string> rootOf)
    {
        bool dequantize = IsDequantize(node);
        if (node.Outputs.Count != 1) return null;
        int data = 1;
        if (!dequantize && (node.Domain != QuantBuildOps.Domain || !DataInputs.TryGetValue(node.OpType, out data))) return null;
        if (node.Inputs.Count < data) return null;
        // Multipliers, shifts, tables and a DequantizeLinear's scale and zero point must be constants, so the node is
        // the same function on every run (and per tensor, for DequantizeLinear).
        for (int i = data; i < node.Inputs.Count; i++)
            if (node.Inputs[i].Length > 0 && (!g.Initializers.TryGetValue(node.Inputs[i], out var p) || dequantize && p.ElementCount != 1)) return null;
        // A DequantizeLinear joins a chain (its float table replaces one more pass), it does not start one.
        if (dequantize && !rootOf.ContainsKey(node.Inputs[0])) return null;
        string? root = null;
        var constants = new List<TensorData>();
        for (int i = 0; i < data; i++)
        {
            var t = node.Inputs[i];
            if (g.Initializers.TryGetValue(t, out var c))
            {
                if (c.ElementCount != 1 || c.Type is not (ElementType.Int8 or ElementType.Int16)) return null;
                constants.Add(c);
                continue;
            }
            var r = rootOf.GetValueOrDefault(t, t);
            if (root is not null && root != r) return null;
            root = r;
        }
        if (root is null || formats.GetValueOrDefault(root) != ElementType.Int8) return null;
        // A constant of higher rank than the root would broadcast the output to a larger rank.
        if (constants.Count > 0 && (rank(root) is not { } rr || constants.Any(c => c.Dims.Length > rr))) return null;
        return root;
    }

    private static bool IsDequantize(Node n) => n.OpType == "DequantizeLinear" && n.IsDefaultDomain;

    /// <summary>Runs the chain on the 256 int8 values and returns each output's 256 entries (in the engine's layout).</summary>
    private static List<Tensor> Tables(OnnxModel model, string root, List<Node> chain, List<string> outputs)
    {
        var sub = new Graph { Name = "table_chain" };
        sub.Inputs.Add(new ValueInfo(root, ElementType.Int8, [Dim.Known(256)]));
        foreach (var n in chain)
        {
            var copy = new Node(n.Name, n.OpType, n.Domain, n.Inputs, n.Outputs);
            foreach (var a in n.Attributes.Values) copy.Set(a);
            sub.Nodes.Add(copy);
            foreach (var i in n.Inputs)
                if (i.Length > 0 && model.Graph.Initializers.TryGetValue(i, out var c)) sub.Initializers[i] = c;
        }
        foreach (var o in outputs) sub.Outputs.Add(new ValueInfo(o, ElementType.Undefined, null));
        var m = new OnnxModel(sub) { IrVersion = model.IrVersion, ProducerName = "quant-convert" };
        foreach (var (domain, version) in model.Opsets) m.Opsets[domain] = version;
        var q = new sbyte[256];
        for (int i = 0; i < 256; i++) q[i] = (sbyte)(i - 128);
        var result = new InferenceSession(m, new SessionOptions { Threads = 1 }).Run(
            new Dictionary<string, Tensor>(StringComparer.Ordinal) { [root] = Tensor.From(q, 256) });
        var tables = new List<Tensor>();
        foreach (var o in outputs)
        {
            var t = result[o];
            if (t.Length != 256 || t.Type is not (ElementType.Int8 or ElementType.Int16 or ElementType.Float))
                throw new InvalidOperationException($"the chain of '{root}' gave {t} for '{o}', not 256 int8/int16/float entries");
            tables.Add(t);
        }
        return tables;
    }
}
