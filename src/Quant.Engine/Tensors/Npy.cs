using System.Globalization;
using System.Text;
using Quant.Onnx;

namespace Quant.Engine;

/// <summary>
/// NumPy .npy files (format versions 1-3, C order, little-endian): float32, float16, float64, int8,
/// uint8, int16, uint16, int32, uint32, int64, uint64, bool.
/// </summary>
public static class Npy
{
    private static readonly (string Descr, ElementType Type)[] Types =
    [
        ("f4", ElementType.Float), ("f2", ElementType.Float16), ("f8", ElementType.Double),
        ("i1", ElementType.Int8), ("u1", ElementType.UInt8), ("i2", ElementType.Int16), ("u2", ElementType.UInt16),
        ("i4", ElementType.Int32), ("u4", ElementType.UInt32), ("i8", ElementType.Int64), ("u8", ElementType.UInt64),
        ("b1", ElementType.Bool),
    ];

    /// <summary>Largest header we accept; real headers are well under 1 KiB.</summary>
    private const int MaxHeaderBytes = 1 << 16;

    public static Tensor Read(string path)
    {
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            return Read(fs, path);
        }
        catch (FileNotFoundException) { throw new NpyFormatException($"{path}: file not found"); }
        catch (DirectoryNotFoundException) { throw new NpyFormatException($"{path}: file not found"); }
    }

    public static Tensor Read(Stream s, string name)
    {
        var (type, shape) = ReadHeader(s, name);
        int count;
        try { count = Tensor.ElementCount(shape); }
        catch (ArgumentException e) { throw new NpyFormatException($"{name}: {e.Message}"); }
        long bytes = (long)count * type.SizeOf();
        if (s.CanSeek && s.Length - s.Position < bytes)
            throw new NpyFormatException($"{name}: shape ({string.Join(", ", shape)}) of {type.OnnxName()} needs {bytes} data bytes but the file has {s.Length - s.Position}; it is truncated");
        var t = s.CanSeek ? Tensor.Zeros(type, shape) : ReadForwardOnly(s, name, type, shape, bytes);
        if (s.CanSeek && !TryReadExactly(s, t.Bytes())) throw Truncated(name);
        return t;
    }

    /// <summary>
    /// A stream that cannot tell its length (an .npz entry being decompressed) is read in chunks before the tensor is
    /// allocated, so a header that claims more data than the stream holds fails after allocating only what is there
    /// (docs/limits.md).
    /// </summary>
    private static Tensor ReadForwardOnly(Stream s, string name, ElementType type, int[] shape, long bytes)
    {
        const int Chunk = 1 << 20;
        var chunks = new List<byte[]>();
        for (long left = bytes; left > 0; left -= Chunk)
        {
            var c = new byte[Math.Min(left, Chunk)];
            if (!TryReadExactly(s, c))
                throw new NpyFormatException($"{name}: shape ({string.Join(", ", shape)}) of {type.OnnxName()} needs {bytes} data bytes but the array ends before; it is truncated");
            chunks.Add(c);
        }
        var t = Tensor.Zeros(type, shape);
        var dst = t.Bytes();
        long at = 0;
        foreach (var c in chunks) { c.CopyTo(dst[(int)at..]); at += c.Length; }
        return t;
    }

    /// <summary>
    /// The element type and shape from an .npy header, leaving the stream at the first data byte: what a reader
    /// needs to check a file without reading its data.
    /// </summary>
    public static NpyHeader ReadHeader(Stream s, string name)
    {
        Span<byte> pre = stackalloc byte[8];
        if (!TryReadExactly(s, pre) || pre[0] != 0x93 || Encoding.ASCII.GetString(pre[1..6]) != "NUMPY")
            throw new NpyFormatException($"{name}: not an .npy file (missing the \\x93NUMPY magic)");
        int major = pre[6];
        int headerLen;
        Span<byte> lenBytes = stackalloc byte[4];
        if (major == 1)
        {
            if (!TryReadExactly(s, lenBytes[..2])) throw Truncated(name);
            headerLen = lenBytes[0] | lenBytes[1] << 8;
        }
        else if (major is 2 or 3)
        {
            if (!TryReadExactly(s, lenBytes)) throw Truncated(name);
            headerLen = BitConverter.ToInt32(lenBytes);
        }
        else throw new NpyFormatException($"{name}: .npy format version {major} is not supported (1, 2 or 3)");
        if (headerLen <= 0 || headerLen > MaxHeaderBytes) throw new NpyFormatException($"{name}: header length {headerLen} is not plausible; the file is corrupt");
        var headerBytes = new byte[headerLen];
        if (!TryReadExactly(s, headerBytes)) throw Truncated(name);
        var header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(headerBytes);

        string descr = Field(header, "descr", name);
        string fortran = Field(header, "fortran_order", name);
        string shapeText = Field(header, "shape", name);
        if (fortran.Trim() != "False") throw new NpyFormatException($"{name}: Fortran-order arrays are not supported; save with np.ascontiguousarray");
        descr = descr.Trim().Trim('\'', '"');
        if (descr.Length < 3 || descr[0] is not ('<' or '|' or '='))
            throw new NpyFormatException($"{name}: dtype '{descr}' is not supported (little-endian numeric or bool only)");
        var type = Types.FirstOrDefault(t => t.Descr == descr[1..]).Type;
        if (type == ElementType.Undefined)
            throw new NpyFormatException($"{name}: dtype '{descr}' is not supported; use one of float32, float16, float64, int8, uint8, int16, uint16, int32, uint32, int64, uint64, bool");
        return new NpyHeader(type, ParseShape(shapeText, name));
    }

    public static void Write(string path, Tensor t)
    {
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write);
        Write(fs, t);
    }

    public static void Write(Stream s, Tensor t)
    {
        var descr = Types.FirstOrDefault(x => x.Type == t.Type).Descr
            ?? throw new NotSupportedException($"{t.Type.OnnxName()} tensors cannot be stored as .npy");
        string order = t.Type is ElementType.Int8 or ElementType.UInt8 or ElementType.Bool ? "|" : "<";
        string shape = t.Rank == 1 ? $"({t.Shape[0]},)" : $"({string.Join(", ", t.Shape)})";
        var header = $"{{'descr': '{order}{descr}', 'fortran_order': False, 'shape': {shape}, }}";
        int total = 10 + header.Length + 1;
        header += new string(' ', (64 - total % 64) % 64) + "\n";
        var pre = new byte[10];
        pre[0] = 0x93;
        Encoding.ASCII.GetBytes("NUMPY").CopyTo(pre, 1);
        pre[6] = 1;
        pre[8] = (byte)(header.Length & 0xff);
        pre[9] = (byte)(header.Length >> 8);
        s.Write(pre);
        s.Write(Encoding.Latin1.GetBytes(header));
        s.Write(t.Bytes());
    }

    private static string Field(string header, string key, string name)
    {
        int k = header.IndexOf($"'{key}'", StringComparison.Ordinal);
        if (k < 0) throw new NpyFormatException($"{name}: header has no '{key}' entry; the file is corrupt");
        int colon = header.IndexOf(':', k);
        if (colon < 0) throw new NpyFormatException($"{name}: header entry '{key}' is malformed");
        int start = colon + 1;
        int end;
        var rest = header.AsSpan(start).TrimStart();
        start = header.Length - rest.Length;
        if (rest.Length > 0 && rest[0] == '(')
        {
            end = header.IndexOf(')', start);
            if (end < 0) throw new NpyFormatException($"{name}: header entry '{key}' is malformed");
            return header[start..(end + 1)];
        }
        end = header.IndexOf(',', start);
        if (end < 0) end = header.IndexOf('}', start);
        if (end < 0) throw new NpyFormatException($"{name}: header entry '{key}' is malformed");
        return header[start..end];
    }

    private static int[] ParseShape(string text, string name)
    {
        var inner = text.Trim().TrimStart('(').TrimEnd(')');
        var parts = inner.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var shape = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            var p = parts[i].TrimEnd('L');
            if (!int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out shape[i]))
                throw new NpyFormatException($"{name}: shape {text} is not a tuple of non-negative integers");
        }
        return shape;
    }

    private static bool TryReadExactly(Stream s, Span<byte> buffer)
    {
        try { s.ReadExactly(buffer); return true; }
        catch (EndOfStreamException) { return false; }
    }

    private static NpyFormatException Truncated(string name) => new($"{name}: the .npy file is truncated");
}

/// <summary>What an .npy header says about its array.</summary>
public readonly record struct NpyHeader(ElementType Type, int[] Shape);

/// <summary>An .npy file that cannot be read; the message names the file and what is wrong.</summary>
public sealed class NpyFormatException(string message) : Exception(message);
