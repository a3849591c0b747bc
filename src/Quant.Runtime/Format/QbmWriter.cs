using System.Buffers.Binary;
using System.Security.Cryptography;
using Quant.Onnx;
using static Quant.Runtime.QbmLayout;

namespace Quant.Runtime;

/// <summary>Encodes a <see cref="QbmFile"/>; the same file always gives the same bytes (no timestamps, fixed order).</summary>
public static class QbmWriter
{
    public static byte[] Write(QbmFile f)
    {
        var strings = new StringTable();
        // Every section but Strings first, so the string table knows all strings.
        var values = Encode(w =>
        {
            w.U32((uint)f.Values.Count);
            foreach (var v in f.Values)
            {
                w.U32(strings.Id(v.Name)); w.U8((byte)v.Type); w.U8((byte)v.Kind); w.U16(checked((ushort)v.Dims.Length));
                foreach (var d in v.Dims) w.I64(d);
            }
        });
        var io = Encode(w =>
        {
            foreach (var list in new[] { f.Inputs, f.Outputs })
            {
                w.U32((uint)list.Count);
                foreach (var x in list)
                {
                    w.U32((uint)x.Value);
                    w.U8(x.Shape is null ? (byte)0 : (byte)1);
                    if (x.Shape is not null)
                    {
                        w.U16(checked((ushort)x.Shape.Length));
                        foreach (var d in x.Shape)
                        {
                            if (d.IsKnown) { w.U8(0); w.I64(d.Value); }
                            else if (d.Symbol is { } s) { w.U8(1); w.I64(strings.Id(s)); }
                            else { w.U8(2); w.I64(0); }
                        }
                    }
                    w.U8(x.Quantization is null ? (byte)0 : (byte)1);
                    if (x.Quantization is { } q) { w.F32(q.Scale); w.I32(q.ZeroPoint); }
                }
            }
        });
        var program = Encode(w =>
        {
            w.U32((uint)f.Opsets.Count);
            foreach (var (domain, version) in f.Opsets) { w.U32(strings.Id(domain)); w.I64(version); }
            w.U32((uint)f.Ops.Count);
            foreach (var op in f.Ops)
            {
                w.U32(strings.Id(op.Name)); w.U32(strings.Id(op.OpType)); w.U32(strings.Id(op.Domain));
                w.U16(checked((ushort)op.Inputs.Length)); w.U16(checked((ushort)op.Outputs.Length));
                w.U16(checked((ushort)op.Attributes.Count)); w.U16(0);
                foreach (var i in op.Inputs) w.U32(i < 0 ? NoValue : (uint)i);
                foreach (var o in op.Outputs) w.U32(o < 0 ? NoValue : (uint)o);
                foreach (var a in op.Attributes) Attribute(w, strings, a);
            }
        });
        long dataBytes = 0;
        var offsets = new long[f.Constants.Count];
        for (int i = 0; i < f.Constants.Count; i++)
        {
            offsets[i] = dataBytes;
            dataBytes = Align(dataBytes + f.Constants[i].Data.Length, ConstantAlignment);
        }
        // Pre-packed weights follow the constants in ConstantData, each 64-aligned as well.
        var packedOffsets = new long[f.PackedWeights.Count];
        for (int i = 0; i < f.PackedWeights.Count; i++)
        {
            packedOffsets[i] = dataBytes;
            dataBytes = Align(dataBytes + f.PackedWeights[i].Weights.Data.Length, ConstantAlignment);
        }
        var packed = Encode(w =>
        {
            w.U32((uint)f.PackedWeights.Count);
            for (int i = 0; i < f.PackedWeights.Count; i++)
            {
                var p = f.PackedWeights[i];
                w.U32((uint)p.Step); w.U32(strings.Id(p.Slot)); w.U32((uint)p.Group);
                w.U8((byte)p.Weights.Layout); w.U8(0); w.U16(0);
                w.U32((uint)p.Weights.K); w.U32((uint)p.Weights.N);
                w.U64((ulong)packedOffsets[i]); w.U64((ulong)p.Weights.Data.Length);
            }
        });
        var constantTable = Encode(w =>
        {
            w.U32((uint)f.Constants.Count);
            for (int i = 0; i < f.Constants.Count; i++) { w.U32((uint)f.Constants[i].Value); w.U32(0); w.U64((ulong)offsets[i]); w.U64((ulong)f.Constants[i].Data.Length); }
        });
        var constantData = new byte[dataBytes];
        for (int i = 0; i < f.Constants.Count; i++) f.Constants[i].Data.CopyTo(constantData, offsets[i]);
        for (int i = 0; i < f.PackedWeights.Count; i++) f.PackedWeights[i].Weights.Data.CopyTo(constantData, packedOffsets[i]);
        var plan = Encode(w =>
        {
            var p = f.MemoryPlan;
            w.U64((ulong)p.ArenaBytes); w.U32((uint)p.Alignment); w.U32((uint)p.Placements.Count);
            foreach (var e in p.Placements)
            {
                w.U32((uint)e.Value); w.U32((uint)e.FirstStep); w.U32((uint)e.LastStep); w.U32(0);
                w.U64((ulong)e.Offset); w.U64((ulong)e.Bytes);
            }
        });
        var cost = Encode(w =>
        {
            w.U32((uint)f.Cost.Model.Families.Count);
            foreach (var family in f.Cost.Model.Families)
            {
                w.U32(strings.Id(family.Name)); w.U32(0);
                w.F64(family.Microseconds); w.F64(family.MicrosecondsPerMac); w.F64(family.MicrosecondsPerByte);
            }
            w.U32((uint)f.Cost.Ops.Count);
            foreach (var c in f.Cost.Ops)
            {
                w.U64((ulong)c.Macs); w.U32((uint)c.MacType); w.U32((uint)c.Family); w.U64((ulong)c.BytesRead); w.U64((ulong)c.BytesWritten); w.F64(c.Microseconds);
            }
        });
        var stringBytes = Encode(w =>
        {
            w.U32((uint)strings.All.Count);
            foreach (var s in strings.All)
            {
                var b = System.Text.Encoding.UTF8.GetBytes(s);
                w.U32((uint)b.Length); w.Bytes(b);
            }
        });

        byte[][] sections = [stringBytes, values, io, program, constantTable, constantData, plan, cost, packed];
        var sectionOffsets = new long[SectionCount];
        long at = HeaderBytes + SectionCount * SectionEntryBytes;
        for (int s = 0; s < SectionCount; s++)
        {
            at = Align(at, (Section)(s + 1) == Section.ConstantData ? ConstantAlignment : 8);
            sectionOffsets[s] = at;
            at += sections[s].Length;
        }
        var file = new byte[at];
        Magic.CopyTo(file);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(8), FormatVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(12), SectionCount);
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(16), (ulong)file.LongLength);
        for (int s = 0; s < SectionCount; s++)
        {
            var entry = file.AsSpan(HeaderBytes + s * SectionEntryBytes);
            BinaryPrimitives.WriteUInt32LittleEndian(entry, (uint)(s + 1));
            BinaryPrimitives.WriteUInt64LittleEndian(entry[8..], (ulong)sectionOffsets[s]);
            BinaryPrimitives.WriteUInt64LittleEndian(entry[16..], (ulong)sections[s].Length);
            sections[s].CopyTo(file, sectionOffsets[s]);
        }
        SHA256.HashData(file.AsSpan(HeaderBytes), file.AsSpan(HashOffset, 32));
        return file;
    }

    /// <summary>Recomputes the content hash in place (tests craft bad files that must fail later checks than the hash).</summary>
    public static void Rehash(byte[] file) => SHA256.HashData(file.AsSpan(HeaderBytes), file.AsSpan(HashOffset, 32));

    private static void Attribute(ByteWriter w, StringTable strings, AttributeValue a)
    {
        w.U32(strings.Id(a.Name)); w.U8((byte)a.Kind);
        switch (a.Kind)
        {
            case AttributeKind.Float: w.F32(a.Float); break;
            case AttributeKind.Int: w.I64(a.Int); break;
            case AttributeKind.String: w.U32((uint)a.Bytes.Length); w.Bytes(a.Bytes); break;
            case AttributeKind.Floats: w.U32((uint)a.Floats.Length); foreach (var x in a.Floats) w.F32(x); break;
            case AttributeKind.Ints: w.U32((uint)a.Ints.Length); foreach (var x in a.Ints) w.I64(x); break;
            case AttributeKind.Strings: w.U32((uint)a.StringList.Length); foreach (var s in a.StringList) { w.U32((uint)s.Length); w.Bytes(s); } break;
            case AttributeKind.Tensor:
                var t = a.Tensor!;
                w.U8((byte)t.Type); w.U16(checked((ushort)t.Dims.Length));
                foreach (var d in t.Dims) w.I64(d);
                w.U64((ulong)t.Raw.LongLength); w.Bytes(t.Raw);
                break;
            default: throw new ArgumentException($"attribute '{a.Name}' of kind {a.Kind} cannot be stored in a .qbm");
        }
    }

    private static byte[] Encode(Action<ByteWriter> body)
    {
        var w = new ByteWriter();
        body(w);
        return w.ToArray();
    }

    private sealed class StringTable
    {
        private readonly Dictionary<string, uint> _ids = new(StringComparer.Ordinal);
        public List<string> All { get; } = [];

        public uint Id(string s)
        {
            if (_ids.TryGetValue(s, out var id)) return id;
            _ids[s] = id = (uint)All.Count;
            All.Add(s);
            return id;
        }
    }

    private sealed class ByteWriter
    {
        private readonly MemoryStream _s = new();
        private readonly byte[] _b = new byte[8];

        public void U8(byte v) => _s.WriteByte(v);
        public void U16(ushort v) { BinaryPrimitives.WriteUInt16LittleEndian(_b, v); _s.Write(_b, 0, 2); }
        public void U32(uint v) { BinaryPrimitives.WriteUInt32LittleEndian(_b, v); _s.Write(_b, 0, 4); }
        public void I32(int v) { BinaryPrimitives.WriteInt32LittleEndian(_b, v); _s.Write(_b, 0, 4); }
        public void U64(ulong v) { BinaryPrimitives.WriteUInt64LittleEndian(_b, v); _s.Write(_b, 0, 8); }
        public void I64(long v) { BinaryPrimitives.WriteInt64LittleEndian(_b, v); _s.Write(_b, 0, 8); }
        public void F32(float v) { BinaryPrimitives.WriteSingleLittleEndian(_b, v); _s.Write(_b, 0, 4); }
        public void F64(double v) { BinaryPrimitives.WriteDoubleLittleEndian(_b, v); _s.Write(_b, 0, 8); }
        public void Bytes(ReadOnlySpan<byte> b) => _s.Write(b);
        public byte[] ToArray() => _s.ToArray();
    }
}
