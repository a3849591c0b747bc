using System.Runtime.InteropServices;
using Quant.Onnx;

namespace Quant.Engine;

/// <summary>
/// A dense, row-major tensor. The elements live either in <see cref="Buffer"/>, a CLR array of the element type whose
/// capacity may exceed <see cref="Length"/> (buffers are reused across values), or in a region of a byte arena (a
/// compiled model's static memory plan places values there; <see cref="IsArenaView"/>), which has no array: read and
/// write the elements through <see cref="Span{T}"/>. Shapes are immutable once the tensor exists.
/// </summary>
public sealed class Tensor
{
    private readonly Array? _buffer;
    private readonly byte[]? _arena;
    private readonly int _arenaOffset;

    internal Tensor(ElementType type, int[] shape, Array buffer, int length)
    {
        Type = type;
        Shape = shape;
        _buffer = buffer;
        Length = length;
    }

    /// <summary>A view of <paramref name="length"/> elements at byte <paramref name="byteOffset"/> of <paramref name="arena"/> (not for strings).</summary>
    internal Tensor(ElementType type, int[] shape, byte[] arena, int byteOffset, int length)
    {
        if (type == ElementType.String) throw new ArgumentException("string tensors cannot live in a byte arena");
        Type = type;
        Shape = shape;
        _arena = arena;
        _arenaOffset = byteOffset;
        Length = length;
    }

    public ElementType Type { get; }
    public int[] Shape { get; }
    public int Rank => Shape.Length;
    public int Length { get; }

    /// <summary>The CLR array holding the elements; an arena view has none (use <see cref="Span{T}"/>).</summary>
    public Array Buffer => _buffer ?? throw new InvalidOperationException(
        $"this {this} is a view of a compiled model's arena and has no array; read it through Span<T>()");

    /// <summary>True when the elements live in a shared arena that the next run overwrites (copy them to keep them).</summary>
    public bool IsArenaView => _arena is not null;

    public Span<T> Span<T>() where T : unmanaged
    {
        if (_buffer is T[] arr) return new Span<T>(arr, 0, Length);
        if (_arena is not null && typeof(T) == ClrType(Type))
            return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(_arena.AsSpan(_arenaOffset, Length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>()));
        throw new InvalidOperationException($"tensor holds {Type.OnnxName()}, not {typeof(T).Name}");
    }

    public ReadOnlySpan<T> ReadOnlySpan<T>() where T : unmanaged => Span<T>();

    /// <summary>The elements as raw bytes (not for strings).</summary>
    public Span<byte> Bytes() => Type switch
    {
        ElementType.Float => MemoryMarshal.AsBytes(Span<float>()),
        ElementType.Float16 => MemoryMarshal.AsBytes(Span<Half>()),
        ElementType.BFloat16 => MemoryMarshal.AsBytes(Span<ushort>()),
        ElementType.Double => MemoryMarshal.AsBytes(Span<double>()),
        ElementType.Int8 => MemoryMarshal.AsBytes(Span<sbyte>()),
        ElementType.UInt8 => Span<byte>(),
        ElementType.Int16 => MemoryMarshal.AsBytes(Span<short>()),
        ElementType.UInt16 => MemoryMarshal.AsBytes(Span<ushort>()),
        ElementType.Int32 => MemoryMarshal.AsBytes(Span<int>()),
        ElementType.UInt32 => MemoryMarshal.AsBytes(Span<uint>()),
        ElementType.Int64 => MemoryMarshal.AsBytes(Span<long>()),
        ElementType.UInt64 => MemoryMarshal.AsBytes(Span<ulong>()),
        ElementType.Bool => MemoryMarshal.AsBytes(Span<bool>()),
        _ => throw new NotSupportedException($"{Type.OnnxName()} tensors have no byte view"),
    };

    /// <summary>String elements (only for <see cref="ElementType.String"/>).</summary>
    public Span<string> Strings() => new((string[])Buffer, 0, Length);

    public static int ElementCount(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in shape [{string.Join(",", shape.ToArray())}]");
            n *= d;
            if (n > Array.MaxLength) throw new ArgumentException($"shape [{string.Join(",", shape.ToArray())}] has more elements than a buffer can hold");
        }
        return (int)n;
    }

    public static Type ClrType(ElementType t) => t switch
    {
        ElementType.Float => typeof(float),
        ElementType.Float16 => typeof(Half),
        ElementType.BFloat16 => typeof(ushort),
        ElementType.Double => typeof(double),
        ElementType.Int8 => typeof(sbyte),
        ElementType.UInt8 => typeof(byte),
        ElementType.Int16 => typeof(short),
        ElementType.UInt16 => typeof(ushort),
        ElementType.Int32 => typeof(int),
        ElementType.UInt32 => typeof(uint),
        ElementType.Int64 => typeof(long),
        ElementType.UInt64 => typeof(ulong),
        ElementType.Bool => typeof(bool),
        ElementType.String => typeof(string),
        _ => throw new NotSupportedException($"element type {t} is not supported by the engine"),
    };

    /// <summary>A new zero-filled tensor.</summary>
    public static Tensor Zeros(ElementType type, ReadOnlySpan<int> shape)
    {
        int n = ElementCount(shape);
        var buffer = Array.CreateInstance(ClrType(type), n);
        if (type == ElementType.String) Array.Fill((string[])buffer, "");
        return new Tensor(type, shape.ToArray(), buffer, n);
    }

    /// <summary>Wraps <paramref name="data"/> (no copy). Its length must equal the shape's element count.</summary>
    public static Tensor From<T>(T[] data, params int[] shape)
    {
        int n = ElementCount(shape);
        if (data.Length != n) throw new ArgumentException($"{data.Length} elements do not fill shape [{string.Join(",", shape)}] ({n})");
        return new Tensor(TypeOf<T>(), shape, data, n);
    }

    public static ElementType TypeOf<T>() =>
        typeof(T) == typeof(float) ? ElementType.Float
        : typeof(T) == typeof(Half) ? ElementType.Float16
        : typeof(T) == typeof(double) ? ElementType.Double
        : typeof(T) == typeof(sbyte) ? ElementType.Int8
        : typeof(T) == typeof(byte) ? ElementType.UInt8
        : typeof(T) == typeof(short) ? ElementType.Int16
        : typeof(T) == typeof(ushort) ? ElementType.UInt16
        : typeof(T) == typeof(int) ? ElementType.Int32
        : typeof(T) == typeof(uint) ? ElementType.UInt32
        : typeof(T) == typeof(long) ? ElementType.Int64
        : typeof(T) == typeof(ulong) ? ElementType.UInt64
        : typeof(T) == typeof(bool) ? ElementType.Bool
        : typeof(T) == typeof(string) ? ElementType.String
        : throw new NotSupportedException($"{typeof(T).Name} is not an element type");

    /// <summary>Copies a stored constant into a tensor.</summary>
    public static Tensor FromData(TensorData data)
    {
        var shape = new int[data.Dims.Length];
        for (int i = 0; i < shape.Length; i++)
        {
            if (data.Dims[i] > int.MaxValue) throw new ArgumentException($"tensor '{data.Name}' dimension {data.Dims[i]} is too large");
            shape[i] = (int)data.Dims[i];
        }
        var t = Zeros(data.Type, shape);
        if (data.Type == ElementType.String)
            data.Strings!.CopyTo((string[])t.Buffer, 0);
        else
            data.Raw.CopyTo(t.Bytes());
        return t;
    }

    /// <summary>Copies this tensor into the stored-constant form.</summary>
    public TensorData ToData(string name)
    {
        var dims = Shape.Select(d => (long)d).ToArray();
        return Type == ElementType.String
            ? new TensorData(name, Type, dims, [], Strings().ToArray())
            : new TensorData(name, Type, dims, Bytes().ToArray());
    }

    /// <summary>A deep copy with its own exactly-sized buffer.</summary>
    public Tensor Clone()
    {
        var t = Zeros(Type, Shape);
        if (Type == ElementType.String) Array.Copy(Buffer, t.Buffer, Length);
        else Bytes().CopyTo(t.Bytes());
        return t;
    }

    public override string ToString() => $"{Type.OnnxName()}[{string.Join(",", Shape)}]";
}
