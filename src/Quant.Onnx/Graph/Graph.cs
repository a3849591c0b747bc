namespace Quant.Onnx;

/// <summary>
/// A mutable ONNX graph. Values are referred to by name; producers and consumers are computed on
/// demand from the node list, so edits need no bookkeeping beyond the lists themselves.
/// </summary>
public sealed class Graph
{
    public string Name { get; set; } = "";
    public string DocString { get; set; } = "";
    public List<ValueInfo> Inputs { get; } = [];
    public List<ValueInfo> Outputs { get; } = [];
    /// <summary>Declared types of intermediate values (value_info), by name.</summary>
    public OrderedDictionary<string, ValueInfo> ValueInfos { get; } = new(StringComparer.Ordinal);
    public OrderedDictionary<string, TensorData> Initializers { get; } = new(StringComparer.Ordinal);
    public List<Node> Nodes { get; } = [];
    /// <summary>Encoded GraphProto fields we do not model (sparse initializers, annotations), kept for saving.</summary>
    internal byte[]? Unmodelled { get; set; }

    /// <summary>Graph inputs that are not also initializers (ONNX IR &lt; 4 lists initializers as inputs too).</summary>
    public IEnumerable<ValueInfo> RuntimeInputs => Inputs.Where(i => !Initializers.ContainsKey(i.Name));

    /// <summary>Map from value name to the node producing it.</summary>
    public Dictionary<string, Node> Producers()
    {
        var map = new Dictionary<string, Node>(StringComparer.Ordinal);
        foreach (var n in Nodes)
            foreach (var o in n.Outputs)
                if (o.Length > 0) map[o] = n;
        return map;
    }

    /// <summary>Map from value name to the nodes consuming it, in node order.</summary>
    public Dictionary<string, List<Node>> Consumers()
    {
        var map = new Dictionary<string, List<Node>>(StringComparer.Ordinal);
        foreach (var n in Nodes)
            foreach (var i in n.Inputs)
            {
                if (i.Length == 0) continue;
                if (!map.TryGetValue(i, out var list)) map[i] = list = [];
                if (list.Count == 0 || !ReferenceEquals(list[^1], n)) list.Add(n);
            }
        return map;
    }

    /// <summary>
    /// Nodes in an order where every input is produced before it is read. Stable: among ready
    /// nodes, the one listed first in the file comes first, so the order is deterministic.
    /// </summary>
    /// <exception cref="OnnxFormatException">a cycle, or an input that nothing produces</exception>
    public List<Node> TopologicalOrder()
    {
        var available = new HashSet<string>(StringComparer.Ordinal) { "" };
        foreach (var i in Inputs) available.Add(i.Name);
        foreach (var k in Initializers.Keys) available.Add(k);
        var producers = Producers();

        var pending = new int[Nodes.Count];
        var waiting = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        var ready = new PriorityQueue<int, int>();
        for (int idx = 0; idx < Nodes.Count; idx++)
        {
            var n = Nodes[idx];
            foreach (var input in n.Inputs.Distinct())
            {
                if (available.Contains(input)) continue;
                if (!producers.ContainsKey(input) && !IsOuterScopeCandidate(input))
                    throw new OnnxFormatException($"{n.Describe()} reads '{input}', which no node, graph input or initializer provides");
                pending[idx]++;
                if (!waiting.TryGetValue(input, out var l)) waiting[input] = l = [];
                l.Add(idx);
            }
            if (pending[idx] == 0) ready.Enqueue(idx, idx);
        }

        var order = new List<Node>(Nodes.Count);
        while (ready.TryDequeue(out int idx, out _))
        {
            var n = Nodes[idx];
            order.Add(n);
            foreach (var o in n.Outputs)
            {
                if (o.Length == 0 || !available.Add(o)) continue;
                if (!waiting.TryGetValue(o, out var l)) continue;
                foreach (var w in l)
                    if (--pending[w] == 0) ready.Enqueue(w, w);
            }
        }
        if (order.Count != Nodes.Count)
        {
            var stuck = Nodes.Where((_, i) => pending[i] > 0).Take(3).Select(x => x.Describe());
            throw new OnnxFormatException($"the graph has a cycle or unresolvable inputs involving {string.Join(", ", stuck)}");
        }
        return order;
    }

    /// <summary>Subgraphs may read values of the enclosing graph; the outer graph resolves them.</summary>
    internal Func<string, bool> IsOuterScopeCandidate { get; set; } = static _ => false;

    /// <summary>Nodes none of whose outputs can reach a graph output (the model check reports these).</summary>
    public List<Node> DeadNodes()
    {
        var producers = Producers();
        var live = new HashSet<Node>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<string>(Outputs.Select(o => o.Name));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (stack.Count > 0)
        {
            var v = stack.Pop();
            if (!seen.Add(v) || !producers.TryGetValue(v, out var n) || !live.Add(n)) continue;
            foreach (var i in n.Inputs) if (i.Length > 0) stack.Push(i);
            foreach (var a in n.Attributes.Values)
                foreach (var g in a.Kind == AttributeKind.Graph ? [a.Graph!] : a.Graphs)
                    foreach (var outer in g.OuterScopeReads()) stack.Push(outer);
        }
        return Nodes.Where(n => !live.Contains(n)).ToList();
    }

    /// <summary>Names this graph reads that it does not define itself (for subgraphs of If/Loop/Scan).</summary>
    public IEnumerable<string> OuterScopeReads()
    {
        var defined = new HashSet<string>(StringComparer.Ordinal) { "" };
        foreach (var i in Inputs) defined.Add(i.Name);
        foreach (var k in Initializers.Keys) defined.Add(k);
        foreach (var n in Nodes) foreach (var o in n.Outputs) defined.Add(o);
        var result = new List<string>();
        foreach (var n in Nodes)
        {
            foreach (var i in n.Inputs) if (!defined.Contains(i)) result.Add(i);
            foreach (var a in n.Attributes.Values)
                foreach (var g in a.Kind == AttributeKind.Graph ? [a.Graph!] : a.Graphs)
                    foreach (var r in g.OuterScopeReads()) if (!defined.Contains(r)) result.Add(r);
        }
        return result.Distinct();
    }

    /// <summary>The declared type of a value: graph input/output, value_info, or initializer.</summary>
    public ValueInfo? FindValueInfo(string name)
    {
        foreach (var i in Inputs) if (i.Name == name) return i;
        foreach (var o in Outputs) if (o.Name == name) return o;
        if (ValueInfos.TryGetValue(name, out var vi)) return vi;
        if (Initializers.TryGetValue(name, out var t)) return new ValueInfo(name, t.Type, t.Dims.Select(Dim.Known).ToArray());
        return null;
    }
}
