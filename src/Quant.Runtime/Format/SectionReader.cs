using System.Buffers.Binary;
using static Quant.Runtime.QbmLayout;

namespace Quant.Runtime;

/// <summary>
/// Reads one section, never past its end: every read checks the bytes left first, and every count is checked
/// against the bytes left (times the smallest record) before anything is allocated, so a lying size field
/// fails with <see cref="QbmError.SectionOverrun"/> instead of a huge allocation.
/// </summary>
internal sealed class SectionReader(byte[] file, long start, long length, Section section, string source)
{
    private long _at = start;
    private readonly long _end = start + length;

    public Section Section { get; } = section;
    public string Source { get; } = source;
    /// <summary>The file offset of the next byte to read.</summary>
    public long Position => _at;
    public long Remaining => _end - _at;

    public QbmFormatException Error(QbmError error, string what, long? at = null) =>
        new(error, Source, $"section {Section} at byte {at ?? _at}: {what}");

    private ReadOnlySpan<byte> Take(int n, string what)
    {
        if (Remaining < n) throw Error(QbmError.SectionOverrun, $"{what} needs {n} bytes but the section has {Remaining} left");
        var s = file.AsSpan((int)_at, n);
        _at += n;
        return s;
    }

    public byte U8(string what) => Take(1, what)[0];
    public ushort U16(string what) => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, what));
    public uint U32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));
    public int I32(string what) => BinaryPrimitives.ReadInt32LittleEndian(Take(4, what));
    public long I64(string what) => BinaryPrimitives.ReadInt64LittleEndian(Take(8, what));
    public float F32(string what) => BinaryPrimitives.ReadSingleLittleEndian(Take(4, what));
    public double F64(string what) => BinaryPrimitives.ReadDoubleLittleEndian(Take(8, what));

    /// <summary>A u64 that must fit a non-negative long.</summary>
    public long U64(string what)
    {
        long at = _at;
        ulong v = BinaryPrimitives.ReadUInt64LittleEndian(Take(8, what));
        if (v > long.MaxValue) throw Error(QbmError.SectionOverrun, $"{what} is {v}, beyond any file", at);
        return (long)v;
    }

    /// <summary>A u32 count of records of at least <paramref name="minRecordBytes"/> each, checked against the bytes left.</summary>
    public int Count(string what, int minRecordBytes)
    {
        long at = _at;
        uint n = U32(what);
        if ((long)n * minRecordBytes > Remaining)
            throw Error(QbmError.SectionOverrun, $"{what} says {n} records of at least {minRecordBytes} bytes but the section has {Remaining} bytes left", at);
        return (int)n;
    }

    public byte[] Bytes(long n, string what)
    {
        if (n < 0 || n > Remaining) throw Error(QbmError.SectionOverrun, $"{what} says {n} bytes but the section has {Remaining} left");
        return Take((int)n, what).ToArray();
    }

    /// <summary>A reserved field just read (<paramref name="size"/> bytes) must be 0: later versions may give it a meaning.</summary>
    public void Zero(uint value, string what, int size = 4)
    {
        if (value != 0) throw Error(QbmError.SectionOverrun, $"{what} must be 0 but is {value}", _at - size);
    }

    public void End()
    {
        if (Remaining != 0) throw Error(QbmError.SectionOverrun, $"{Remaining} bytes are left over after the last record");
    }
}
