using Quant.Onnx;

namespace Quant.Core.Conversion;

/// <summary>
/// The <see cref="LoweringEmitter"/> convert hands to rules: names are made unique against the whole qat graph, and
/// what a rule emits is held back until the rule succeeds (a rule that returns a reason leaves no trace).
/// </summary>
internal sealed class GraphEmitter(QdqGraph names) : LoweringEmitter
{
    private readonly List<Node> _nodes = [];
    private readonly List<TensorData> _initializers = [];
    private readonly HashSet<string> _freed = new(StringComparer.Ordinal);

    public IReadOnlyList<Node> Nodes => _nodes;
    public IReadOnlyList<TensorData> Initializers => _initializers;

    /// <summary>Lets the next rule reuse <paramref name="nodeName"/> (the name of the node it replaces).</summary>
    public void Free(string nodeName) => _freed.Add(nodeName);

    public void Clear()
    {
        _nodes.Clear();
        _initializers.Clear();
        _freed.Clear();
    }

    private string Name(string hint)
    {
        if (_freed.Remove(hint)) return hint;
        return names.Reserve(hint);
    }

    public override Node AddNode(string nameHint, string opType, string domain, IEnumerable<string> inputs, IEnumerable<string> outputs)
    {
        var node = new Node(Name(nameHint), opType, domain, inputs, outputs);
        _nodes.Add(node);
        return node;
    }

    public override string AddInitializer(string nameHint, TensorData data)
    {
        var name = names.Reserve(nameHint);
        _initializers.Add(new TensorData(name, data.Type, data.Dims, data.Raw, data.Strings));
        return name;
    }

    public override string NewTensorName(string hint) => names.Reserve(hint);
}
