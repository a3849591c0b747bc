namespace Quant.Onnx;

/// <summary>
/// One operator application. Inputs and outputs are value names; an empty input name means an
/// omitted optional input (ONNX convention).
/// </summary>
public sealed class Node
{
    public Node(string name, string opType, string domain, IEnumerable<string> inputs, IEnumerable<string> outputs)
    {
        Name = name;
        OpType = opType;
        Domain = domain;
        Inputs = [.. inputs];
        Outputs = [.. outputs];
    }

    public string Name { get; set; }
    public string OpType { get; set; }
    /// <summary>Operator domain; "" and "ai.onnx" both mean the default domain.</summary>
    public string Domain { get; set; }
    public List<string> Inputs { get; }
    public List<string> Outputs { get; }
    public Dictionary<string, AttributeValue> Attributes { get; } = new(StringComparer.Ordinal);
    public string DocString { get; set; } = "";

    public bool IsDefaultDomain => Domain is "" or "ai.onnx";

    /// <summary>Input <paramref name="index"/> if present and non-empty.</summary>
    public string? InputOrNull(int index) => index < Inputs.Count && Inputs[index].Length > 0 ? Inputs[index] : null;

    public bool Has(string attribute) => Attributes.ContainsKey(attribute);

    public long GetInt(string name, long fallback) => Attributes.TryGetValue(name, out var a) ? a.Int : fallback;
    public float GetFloat(string name, float fallback) => Attributes.TryGetValue(name, out var a) ? a.Float : fallback;
    public string GetString(string name, string fallback) => Attributes.TryGetValue(name, out var a) ? a.String : fallback;
    public long[]? GetInts(string name) => Attributes.TryGetValue(name, out var a) ? a.Ints : null;
    public float[]? GetFloats(string name) => Attributes.TryGetValue(name, out var a) ? a.Floats : null;
    public TensorData? GetTensor(string name) => Attributes.TryGetValue(name, out var a) ? a.Tensor : null;

    public void Set(AttributeValue value) => Attributes[value.Name] = value;

    /// <summary>How errors refer to this node: its name if it has one, otherwise its op type and first output.</summary>
    public string Describe() =>
        Name.Length > 0 ? $"node '{Name}' ({OpType})" : $"{OpType} node producing '{(Outputs.Count > 0 ? Outputs[0] : "?")}'";

    public override string ToString() => $"{Describe()}: [{string.Join(", ", Inputs)}] -> [{string.Join(", ", Outputs)}]";
}
