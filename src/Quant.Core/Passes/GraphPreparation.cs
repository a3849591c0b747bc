using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>
/// Prepares a float model for calibration and export: Constant nodes become initializers, Identity and
/// inference Dropout go, constant subgraphs are evaluated by the engine, per-channel bias Adds and
/// BatchNormalization fold into the preceding Conv/ConvTranspose/Gemm, dead nodes are dropped, composite ops
/// written out in smaller ops (HardSwish, LayerNormalization, Gelu) become one op (raising the opset when the
/// model's predates the op), convolution pairs are equalized when asked, and the Conv+activation fusion
/// decisions are recorded. The result computes the same function (up to the
/// rounding of folded weights) and keeps the value names users see: a folded node's output takes the
/// name of the node folded into it.
/// </summary>
public static class GraphPreparation
{
    public static PreparedModel Prepare(OnnxModel original, PreparationOptions? options = null)
    {
        options ??= new PreparationOptions();
        var model = Copy(original);
        var s = new PassState(model);

        // Dead nodes are reported as the original model has them, before any pass changes what is reachable.
        var dead = model.Graph.DeadNodes();
        var deadRecords = dead.Select(n => PassState.Record(n, "dead: none of its outputs reaches a graph output")).ToList();
        DeadNodeRemoval.Run(s, dead); // first, so no pass spends work on them (folding a dead constant chain, say)

        int converted = ConstantNodesToInitializers.Run(s);
        IdentityRemoval.Run(s);
        if (options.FoldConstants) ConstantFolding.Run(s, options);
        if (options.FoldBatchNormalization)
        {
            BiasAddFolding.Run(s);
            BatchNormFolding.Run(s);
        }
        DeadNodeRemoval.Run(s, dead);
        var composites = options.FuseCompositeOps ? CompositeFusion.Run(s) : [];
        var equalizations = options.Equalize ? CrossLayerEqualization.Run(s) : [];
        var fusions = FusionDecisions.Run(s, options);
        s.DropStaleValueInfos();
        if (model.IrVersion < 4) model.IrVersion = 4; // initializers need not be graph inputs from IR 4 on

        return new PreparedModel(model, s.Removed, s.Folds, fusions, composites, equalizations, deadRecords, converted, s.ConstantFolded,
            s.RemovedInitializers, s.Aliases(), s.Vanished, s.OriginalValues);
    }

    /// <summary>A deep copy through the writer and reader, so every pass may edit freely.</summary>
    private static OnnxModel Copy(OnnxModel m)
    {
        var bytes = OnnxModelWriter.ToBytes(m);
        var dir = m.SourcePath is null ? Directory.GetCurrentDirectory() : Path.GetDirectoryName(Path.GetFullPath(m.SourcePath))!;
        var copy = OnnxModelReader.Parse(bytes, m.SourcePath ?? "model", dir);
        copy.SourcePath = m.SourcePath;
        return copy;
    }
}

/// <summary>The graph being prepared and the records the passes write.</summary>
internal sealed class PassState
{
    public PassState(OnnxModel model)
    {
        Model = model;
        foreach (var i in Graph.Inputs) OriginalValues.Add(i.Name);
        foreach (var k in Graph.Initializers.Keys) OriginalValues.Add(k);
        foreach (var n in Graph.Nodes) foreach (var o in n.Outputs) if (o.Length > 0) OriginalValues.Add(o);
        foreach (var v in OriginalValues) _current[v] = v;
    }

    public OnnxModel Model { get; }
    public Graph Graph => Model.Graph;
    public List<RemovedNode> Removed { get; } = [];
    public List<RemovedNode> ConstantFolded { get; } = [];
    public List<FoldRecord> Folds { get; } = [];
    public List<string> RemovedInitializers { get; } = [];
    public HashSet<string> OriginalValues { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, string> Vanished { get; } = new(StringComparer.Ordinal);
    /// <summary>Original value name -> the prepared value name carrying the same value.</summary>
    private readonly Dictionary<string, string> _current = new(StringComparer.Ordinal);

    public static RemovedNode Record(Node n, string reason) => new(n.Name, n.OpType, n.Outputs.ToList(), reason);

    public void Remove(Node n, string reason)
    {
        Graph.Nodes.Remove(n);
        Removed.Add(Record(n, reason));
    }

    public bool IsGraphOutput(string name) => Graph.Outputs.Any(o => o.Name == name);
    public bool IsGraphInput(string name) => Graph.Inputs.Any(i => i.Name == name);

    /// <summary>An initializer the caller cannot override (not also a graph input).</summary>
    public TensorData? Constant(string name) =>
        name.Length > 0 && Graph.Initializers.TryGetValue(name, out var t) && !IsGraphInput(name) ? t : null;

    /// <summary>Every node input reading <paramref name="from"/> reads <paramref name="to"/> instead.</summary>
    public void Rewire(string from, string to)
    {
        foreach (var n in Graph.Nodes)
            for (int i = 0; i < n.Inputs.Count; i++)
                if (n.Inputs[i] == from) n.Inputs[i] = to;
    }

    /// <summary>Value <paramref name="from"/> is gone; whatever it stood for is now the value named <paramref name="to"/>.</summary>
    public void Alias(string from, string to)
    {
        foreach (var k in _current.Keys.ToList())
            if (_current[k] == from) _current[k] = to;
    }

    /// <summary>Value <paramref name="name"/> no longer exists in any form (e.g. a conv output before a folded BatchNormalization).</summary>
    public void Vanish(string name, string reason)
    {
        foreach (var k in _current.Keys.ToList())
            if (_current[k] == name) { _current.Remove(k); Vanished[k] = reason; }
    }

    public Dictionary<string, string> Aliases() =>
        _current.Where(kv => kv.Key != kv.Value).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);

    /// <summary>How many nodes read <paramref name="value"/> (a node reading it twice counts once), plus one if it is a graph output.</summary>
    public int Uses(string value) =>
        Graph.Nodes.Count(n => n.Inputs.Contains(value)) + (IsGraphOutput(value) ? 1 : 0);

    public List<Node> ConsumersOf(string value) => Graph.Nodes.Where(n => n.Inputs.Contains(value)).ToList();

    public Node? ProducerOf(string value) => Graph.Nodes.FirstOrDefault(n => n.Outputs.Contains(value));

    /// <summary>A name not used by any value or initializer, starting from <paramref name="wish"/>.</summary>
    public string FreshName(string wish)
    {
        var used = new HashSet<string>(Graph.Initializers.Keys, StringComparer.Ordinal);
        foreach (var n in Graph.Nodes) { used.UnionWith(n.Inputs); used.UnionWith(n.Outputs); }
        foreach (var i in Graph.Inputs) used.Add(i.Name);
        var name = wish;
        for (int k = 1; used.Contains(name); k++) name = $"{wish}_{k}";
        return name;
    }

    /// <summary>Initializers nothing reads any more go, and value_info entries of values that no longer exist.</summary>
    public void DropStaleValueInfos()
    {
        var live = new HashSet<string>(StringComparer.Ordinal);
        foreach (var n in Graph.Nodes) { live.UnionWith(n.Inputs); live.UnionWith(n.Outputs); }
        foreach (var o in Graph.Outputs) live.Add(o.Name);
        foreach (var k in Graph.Initializers.Keys.ToList())
            if (!live.Contains(k) && !IsGraphInput(k)) { Graph.Initializers.Remove(k); RemovedInitializers.Add(k); }
        foreach (var k in Graph.ValueInfos.Keys.ToList())
            if (!live.Contains(k)) Graph.ValueInfos.Remove(k);
    }
}
