using System.Runtime.InteropServices;

namespace Quant.Onnx;

/// <summary>
/// A constant tensor as the model stores it (initializer, Constant node value, attribute):
/// element type, dims and the elements as little-endian bytes, whatever field the file used.
/// </summary>
public sealed class TensorData
{
    public TensorData(string name, ElementType type, long[] dims, byte[] raw, string[]? strings = null)
    {
        Name = name;
        Type = type;
        Dims = dims;
        Raw = raw;
        Strings = strings;
        long expected = ElementCount;
        if (type == ElementType.String)
        {
            if ((strings?.Length ?? 0) != expected)
                throw new OnnxFormatException($"tensor '{name}': dims say {expected} strings but {strings?.Length ?? 0} are stored");
        }
        else if (type.SizeOf() > 0 && raw.LongLength != expected * type.SizeOf())
        {
            throw new OnnxFormatException(
                $"tensor '{name}': dims [{string.Join(",", dims)}] of {type.OnnxName()} need {expected * type.SizeOf()} bytes but {raw.LongLength} are stored");
        }
    }

    public string Name { get; set; }
    public ElementType Type { get; }
    public long[] Dims { get; }
    /// <summary>Elements, little-endian, densely packed. Empty for string tensors.</summary>
    public byte[] Raw { get; }
    public string[]? Strings { get; }
    public string DocString { get; set; } = "";

    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (var d in Dims) n *= d;
            return n;
        }
    }

    /// <summary>The elements reinterpreted as <typeparamref name="T"/> (no copy).</summary>
    public ReadOnlySpan<T> As<T>() where T : unmanaged => MemoryMarshal.Cast<byte, T>(Raw);

    public static TensorData From<T>(string name, ElementType type, long[] dims, ReadOnlySpan<T> values) where T : unmanaged =>
        new(name, type, dims, MemoryMarshal.AsBytes(values).ToArray());

    public static TensorData FromFloats(string name, long[] dims, ReadOnlySpan<float> values) => From(name, ElementType.Float, dims, values);
    public static TensorData FromInt64s(string name, long[] dims, ReadOnlySpan<long> values) => From(name, ElementType.Int64, dims, values);

    public override string ToString() => $"{Name}: {Type.OnnxName()}[{string.Join(",", Dims)}]";
}
