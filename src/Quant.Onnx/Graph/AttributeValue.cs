namespace Quant.Onnx;

public enum AttributeKind
{
    Float, Int, String, Tensor, Graph, Floats, Ints, Strings, Tensors, Graphs,
    /// <summary>Sparse tensors and type protos: kept for saving, never interpreted.</summary>
    Opaque,
}

/// <summary>A node attribute. Exactly the field matching <see cref="Kind"/> is meaningful.</summary>
public sealed class AttributeValue
{
    public AttributeValue(string name, AttributeKind kind) { Name = name; Kind = kind; }

    public string Name { get; }
    public AttributeKind Kind { get; }
    public float Float { get; init; }
    public long Int { get; init; }
    /// <summary>ONNX strings are bytes; most are UTF-8 text.</summary>
    public byte[] Bytes { get; init; } = [];
    public string String => System.Text.Encoding.UTF8.GetString(Bytes);
    public TensorData? Tensor { get; init; }
    public Graph? Graph { get; init; }
    public float[] Floats { get; init; } = [];
    public long[] Ints { get; init; } = [];
    public byte[][] StringList { get; init; } = [];
    public TensorData[] Tensors { get; init; } = [];
    public Graph[] Graphs { get; init; } = [];
    /// <summary>The original encoded AttributeProto for <see cref="AttributeKind.Opaque"/>.</summary>
    internal byte[]? OpaqueProto { get; init; }

    public static AttributeValue Of(string name, long value) => new(name, AttributeKind.Int) { Int = value };
    public static AttributeValue Of(string name, float value) => new(name, AttributeKind.Float) { Float = value };
    public static AttributeValue Of(string name, string value) => new(name, AttributeKind.String) { Bytes = System.Text.Encoding.UTF8.GetBytes(value) };
    public static AttributeValue Of(string name, long[] values) => new(name, AttributeKind.Ints) { Ints = values };
    public static AttributeValue Of(string name, float[] values) => new(name, AttributeKind.Floats) { Floats = values };
    public static AttributeValue Of(string name, TensorData value) => new(name, AttributeKind.Tensor) { Tensor = value };

    public override string ToString() => Kind switch
    {
        AttributeKind.Float => $"{Name}={Float}",
        AttributeKind.Int => $"{Name}={Int}",
        AttributeKind.String => $"{Name}='{String}'",
        AttributeKind.Ints => $"{Name}=[{string.Join(",", Ints)}]",
        AttributeKind.Floats => $"{Name}=[{string.Join(",", Floats)}]",
        _ => $"{Name}:{Kind}",
    };
}
