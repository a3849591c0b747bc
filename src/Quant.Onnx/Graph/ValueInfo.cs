namespace Quant.Onnx;

/// <summary>Declared (or inferred) type of a graph value. <see cref="Shape"/> is null when the rank is unknown.</summary>
public sealed class ValueInfo
{
    public ValueInfo(string name, ElementType type, Dim[]? shape)
    {
        Name = name;
        Type = type;
        Shape = shape;
    }

    public string Name { get; set; }
    public ElementType Type { get; set; }
    public Dim[]? Shape { get; set; }
    public string DocString { get; set; } = "";

    public override string ToString() =>
        $"{Name}: {Type.OnnxName()}[{(Shape is null ? "?" : string.Join(",", Shape))}]";
}
