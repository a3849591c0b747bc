using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Quant.Engine;
using Quant.Onnx;
using static Quant.Runtime.QbmLayout;

namespace Quant.Runtime;

/// <summary>
/// Decodes a .qbm: header (magic, version, length, content hash), section table, then each section with bounded
/// reads. Cross-section consistency (value ids, liveness, arena overlaps) is <see cref="QbmValidator"/>'s.
/// </summary>
public static class QbmReader
{
    public static QbmFile Read(byte[] file, string source)
    {
        if (file.Length < HeaderBytes + SectionCount * SectionEntryBytes)
        {
            if (file.Length >= Magic.Length && !file.AsSpan(0, Magic.Length).SequenceEqual(Magic))
                throw new QbmFormatException(QbmError.NotAQbm, source, "not a .qbm file (the first 8 bytes are not the .qbm magic)");
            throw new QbmFormatException(QbmError.Truncated, source, $"the file has {file.Length} bytes, fewer than the {HeaderBytes + SectionCount * SectionEntryBytes} of the header and section table; it is truncated");
        }
        if (!file.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            throw new QbmFormatException(QbmError.NotAQbm, source, "not a .qbm file (the first 8 bytes are not the .qbm magic)");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(8));
        if (version != FormatVersion)
            throw new QbmFormatException(QbmError.UnsupportedVersion, source, $"header at byte 8: format version {version}; this runtime reads version {FormatVersion} only; recompile the model with this toolchain");
        uint sections = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(12));
        if (sections != SectionCount)
            throw new QbmFormatException(QbmError.BadSectionTable, source, $"header at byte 12: {sections} sections, version {FormatVersion} has {SectionCount}");
        ulong length = BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(16));
        if (length != (ulong)file.LongLength)
            throw new QbmFormatException(QbmError.Truncated, source, $"header at byte 16: the file should have {length} bytes but has {file.LongLength}; it is truncated or has bytes appended");
        if (BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(56)) != 0)
            throw new QbmFormatException(QbmError.BadSectionTable, source, "header at byte 56: the reserved field must be 0");
        var hash = SHA256.HashData(file.AsSpan(HeaderBytes));
        if (!hash.AsSpan().SequenceEqual(file.AsSpan(HashOffset, 32)))
            throw new QbmFormatException(QbmError.HashMismatch, source, $"header at byte {HashOffset}: the content hash does not match bytes {HeaderBytes}..{file.Length}; the file is corrupt");

        var readers = SectionTable(file, source);
        var strings = Strings(readers[0]);
        var values = Values(readers[1], strings);
        var (inputs, outputs) = Io(readers[2], strings);
        var (opsets, ops) = Program(readers[3], strings);
        var constants = Constants(readers[4], readers[5], file);
        var plan = MemoryPlan(readers[6]);
        var cost = Cost(readers[7], strings);
        var packed = PackedWeights(readers[8], readers[5], file, strings);
        return new QbmFile
        {
            Opsets = opsets, Values = values, Inputs = inputs, Outputs = outputs, Ops = ops,
            Constants = constants, MemoryPlan = plan, Cost = cost, PackedWeights = packed,
        };
    }

    private static SectionReader[] SectionTable(byte[] file, string source)
    {
        var readers = new SectionReader[SectionCount];
        long previousEnd = HeaderBytes + SectionCount * SectionEntryBytes;
        for (int s = 0; s < SectionCount; s++)
        {
            int at = HeaderBytes + s * SectionEntryBytes;
            var entry = file.AsSpan(at);
            uint kind = BinaryPrimitives.ReadUInt32LittleEndian(entry);
            uint flags = BinaryPrimitives.ReadUInt32LittleEndian(entry[4..]);
            ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(entry[8..]);
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(entry[16..]);
            var section = (Section)(s + 1);
            string Where() => $"section table entry {s} at byte {at}";
            if (kind != (uint)section)
                throw new QbmFormatException(QbmError.BadSectionTable, source, $"{Where()}: section kind {kind}, expected {(uint)section} ({section})");
            if (flags != 0)
                throw new QbmFormatException(QbmError.BadSectionTable, source, $"{Where()}: flags must be 0 but are {flags}");
            if (offset < (ulong)previousEnd || offset > (ulong)file.LongLength || length > (ulong)file.LongLength - offset)
                throw new QbmFormatException(QbmError.BadSectionTable, source,
                    $"{Where()}: {section} spans bytes {offset}..{offset + length}, outside bytes {previousEnd}..{file.LongLength} left for it");
            if (section == Section.ConstantData && offset % ConstantAlignment != 0)
                throw new QbmFormatException(QbmError.BadSectionTable, source, $"{Where()}: ConstantData starts at byte {offset}, not a multiple of {ConstantAlignment}");
            readers[s] = new SectionReader(file, (long)offset, (long)length, section, source);
            previousEnd = (long)(offset + length);
        }
        return readers;
    }

    private static string[] Strings(SectionReader r)
    {
        int n = r.Count("string count", 4);
        var result = new string[n];
        var utf8 = new UTF8Encoding(false, throwOnInvalidBytes: true);
        for (int i = 0; i < n; i++)
        {
            long at = r.Position;
            var bytes = r.Bytes(r.U32("string length"), $"string {i}");
            try { result[i] = utf8.GetString(bytes); }
            catch (DecoderFallbackException) { throw r.Error(QbmError.BadString, $"string {i} is not valid UTF-8", at); }
        }
        r.End();
        return result;
    }

    private static string Str(SectionReader r, string[] strings, string what)
    {
        long at = r.Position;
        uint id = r.U32(what);
        if (id >= strings.Length) throw r.Error(QbmError.BadString, $"{what} is string {id} but the string table has {strings.Length}", at);
        return strings[id];
    }

    private static ElementType Type(SectionReader r, string what)
    {
        long at = r.Position;
        var t = (ElementType)r.U8(what);
        if (!IsStorable(t)) throw r.Error(QbmError.BadValue, $"{what} is element type {(int)t}, which a .qbm cannot hold", at);
        return t;
    }

    private static long[] Dims(SectionReader r, int rank, string what)
    {
        if ((long)rank * 8 > r.Remaining) throw r.Error(QbmError.SectionOverrun, $"{what}: rank {rank} needs {rank * 8} bytes but the section has {r.Remaining} left");
        var dims = new long[rank];
        long elements = 1;
        for (int d = 0; d < rank; d++)
        {
            long at = r.Position;
            dims[d] = r.I64($"{what} dimension {d}");
            if (dims[d] < 0 || dims[d] > int.MaxValue)
                throw r.Error(QbmError.BadValue, $"{what} dimension {d} is {dims[d]}", at);
            elements *= dims[d];
            if (elements > int.MaxValue) throw r.Error(QbmError.BadValue, $"{what} has more than {int.MaxValue} elements", at);
        }
        return dims;
    }

    private static QbmValue[] Values(SectionReader r, string[] strings)
    {
        int n = r.Count("value count", 8);
        var result = new QbmValue[n];
        for (int i = 0; i < n; i++)
        {
            string name = Str(r, strings, $"value {i} name");
            var type = Type(r, $"value {i} element type");
            long at = r.Position;
            byte kind = r.U8($"value {i} kind");
            if (kind > (byte)QbmValueKind.Intermediate) throw r.Error(QbmError.BadValue, $"value {i} '{name}' has kind {kind}; kinds are 0 input, 1 constant, 2 intermediate", at);
            int rank = r.U16($"value {i} rank");
            result[i] = new QbmValue(name, type, (QbmValueKind)kind, Dims(r, rank, $"value {i} '{name}'"));
        }
        r.End();
        return result;
    }

    private static (QbmIo[] Inputs, QbmIo[] Outputs) Io(SectionReader r, string[] strings)
    {
        var lists = new QbmIo[2][];
        for (int l = 0; l < 2; l++)
        {
            string side = l == 0 ? "input" : "output";
            int n = r.Count($"{side} count", 6);
            lists[l] = new QbmIo[n];
            for (int i = 0; i < n; i++)
            {
                int value = (int)Math.Min(r.U32($"{side} {i} value id"), int.MaxValue);
                long at = r.Position;
                byte hasShape = r.U8($"{side} {i} shape flag");
                Dim[]? shape = null;
                if (hasShape > 1) throw r.Error(QbmError.BadIo, $"{side} {i} shape flag is {hasShape}, not 0 or 1", at);
                if (hasShape == 1)
                {
                    int rank = r.U16($"{side} {i} rank");
                    if ((long)rank * 9 > r.Remaining) throw r.Error(QbmError.SectionOverrun, $"{side} {i}: rank {rank} needs {rank * 9} bytes but the section has {r.Remaining} left");
                    shape = new Dim[rank];
                    for (int d = 0; d < rank; d++)
                    {
                        long dimAt = r.Position;
                        byte tag = r.U8($"{side} {i} dimension {d} tag");
                        long v = r.I64($"{side} {i} dimension {d}");
                        shape[d] = tag switch
                        {
                            0 when v >= 0 && v <= int.MaxValue => Dim.Known(v),
                            1 when v >= 0 && v < strings.Length => Dim.Named(strings[v]),
                            2 when v == 0 => Dim.Unknown,
                            _ => throw r.Error(QbmError.BadIo, $"{side} {i} dimension {d}: tag {tag} with value {v} is not a size, a symbol's string id or unknown", dimAt),
                        };
                    }
                }
                at = r.Position;
                byte hasQuant = r.U8($"{side} {i} quantization flag");
                if (hasQuant > 1) throw r.Error(QbmError.BadIo, $"{side} {i} quantization flag is {hasQuant}, not 0 or 1", at);
                QbmQuantization? q = null;
                if (hasQuant == 1)
                {
                    at = r.Position;
                    float scale = r.F32($"{side} {i} scale");
                    if (!(scale > 0) || !float.IsFinite(scale)) throw r.Error(QbmError.BadIo, $"{side} {i} scale is {scale}; it must be positive and finite", at);
                    q = new QbmQuantization(scale, r.I32($"{side} {i} zero point"));
                }
                lists[l][i] = new QbmIo(value, shape, q);
            }
        }
        r.End();
        return (lists[0], lists[1]);
    }

    private static ((string, long)[] Opsets, QbmOp[] Ops) Program(SectionReader r, string[] strings)
    {
        int nOpsets = r.Count("opset count", 12);
        var opsets = new (string, long)[nOpsets];
        for (int i = 0; i < nOpsets; i++) opsets[i] = (Str(r, strings, $"opset {i} domain"), r.I64($"opset {i} version"));
        int n = r.Count("op count", 20);
        var ops = new QbmOp[n];
        for (int i = 0; i < n; i++)
        {
            string name = Str(r, strings, $"op {i} name");
            string opType = Str(r, strings, $"op {i} op type");
            string domain = Str(r, strings, $"op {i} domain");
            int nIn = r.U16($"op {i} input count"), nOut = r.U16($"op {i} output count"), nAttr = r.U16($"op {i} attribute count");
            r.Zero(r.U16($"op {i} reserved"), $"op {i} reserved field", 2);
            if ((long)(nIn + nOut) * 4 + (long)nAttr * 5 > r.Remaining)
                throw r.Error(QbmError.SectionOverrun, $"op {i} '{name}' ({opType}) says {nIn} inputs, {nOut} outputs and {nAttr} attributes, more than the {r.Remaining} bytes left");
            var inputs = new int[nIn];
            for (int k = 0; k < nIn; k++) inputs[k] = ValueId(r.U32($"op {i} input {k}"));
            var outputs = new int[nOut];
            for (int k = 0; k < nOut; k++) outputs[k] = ValueId(r.U32($"op {i} output {k}"));
            var attributes = new AttributeValue[nAttr];
            for (int k = 0; k < nAttr; k++) attributes[k] = Attribute(r, strings, $"op {i} '{name}' ({opType}) attribute {k}");
            ops[i] = new QbmOp(name, opType, domain, inputs, outputs, attributes);
        }
        r.End();
        return (opsets, ops);
    }

    /// <summary>Ids beyond int range stay out of range (the validator reports them); NoValue is an omitted slot.</summary>
    private static int ValueId(uint id) => id == NoValue ? QbmFile.Omitted : (int)Math.Min(id, int.MaxValue);

    private static AttributeValue Attribute(SectionReader r, string[] strings, string what)
    {
        string name = Str(r, strings, $"{what} name");
        long at = r.Position;
        var kind = (AttributeKind)r.U8($"{what} kind");
        what = $"{what} '{name}'";
        switch (kind)
        {
            case AttributeKind.Float: return new AttributeValue(name, kind) { Float = r.F32(what) };
            case AttributeKind.Int: return new AttributeValue(name, kind) { Int = r.I64(what) };
            case AttributeKind.String: return new AttributeValue(name, kind) { Bytes = r.Bytes(r.U32($"{what} length"), what) };
            case AttributeKind.Floats:
            {
                int n = r.Count($"{what} count", 4);
                var v = new float[n];
                for (int i = 0; i < n; i++) v[i] = r.F32(what);
                return new AttributeValue(name, kind) { Floats = v };
            }
            case AttributeKind.Ints:
            {
                int n = r.Count($"{what} count", 8);
                var v = new long[n];
                for (int i = 0; i < n; i++) v[i] = r.I64(what);
                return new AttributeValue(name, kind) { Ints = v };
            }
            case AttributeKind.Strings:
            {
                int n = r.Count($"{what} count", 4);
                var v = new byte[n][];
                for (int i = 0; i < n; i++) v[i] = r.Bytes(r.U32($"{what} string {i} length"), what);
                return new AttributeValue(name, kind) { StringList = v };
            }
            case AttributeKind.Tensor:
            {
                var type = Type(r, $"{what} element type");
                int rank = r.U16($"{what} rank");
                var dims = Dims(r, rank, what);
                long bytesAt = r.Position;
                long length = r.U64($"{what} byte length");
                long elements = dims.Aggregate(1L, (a, d) => a * d);
                if (length != elements * type.SizeOf())
                    throw r.Error(QbmError.BadAttribute, $"{what}: dims [{string.Join(",", dims)}] of {type.OnnxName()} need {elements * type.SizeOf()} bytes but {length} are stored", bytesAt);
                return new AttributeValue(name, kind) { Tensor = new TensorData(name, type, dims, r.Bytes(length, what)) };
            }
            default:
                throw r.Error(QbmError.BadAttribute, $"{what} has kind {(int)kind}; a .qbm stores 0 float, 1 int, 2 string, 3 tensor, 5 floats, 6 ints, 7 strings", at);
        }
    }

    private static QbmConstant[] Constants(SectionReader table, SectionReader data, byte[] file)
    {
        int n = table.Count("constant count", 24);
        var result = new QbmConstant[n];
        long dataLength = data.Remaining;
        for (int i = 0; i < n; i++)
        {
            int value = ValueId(table.U32($"constant {i} value id"));
            table.Zero(table.U32($"constant {i} reserved"), $"constant {i} reserved field");
            long at = table.Position;
            long offset = table.U64($"constant {i} offset");
            long length = table.U64($"constant {i} length");
            if (offset % ConstantAlignment != 0 || offset > dataLength || length > dataLength - offset)
                throw table.Error(QbmError.BadConstant,
                    $"constant {i} spans bytes {offset}..{offset + length} of ConstantData, which has {dataLength} bytes (offsets must be multiples of {ConstantAlignment})", at);
            result[i] = new QbmConstant(value, file.AsSpan((int)(data.Position + offset), (int)length).ToArray());
        }
        table.End();
        return result;
    }

    /// <summary>The PackedWeights table: each entry's layout is known and its bytes are exactly its layout's size for its K × N.</summary>
    private static QbmPackedWeights[] PackedWeights(SectionReader table, SectionReader data, byte[] file, string[] strings)
    {
        int n = table.Count("packed weights count", 40);
        var result = new QbmPackedWeights[n];
        long dataLength = data.Remaining;
        for (int i = 0; i < n; i++)
        {
            long entry = table.Position;
            uint step = table.U32($"packed weights {i} step");
            string slot = Str(table, strings, $"packed weights {i} slot");
            uint group = table.U32($"packed weights {i} group");
            long at = table.Position;
            var layout = (PackedLayout)table.U8($"packed weights {i} layout");
            table.Zero(table.U8($"packed weights {i} reserved"), $"packed weights {i} reserved byte", 1);
            table.Zero(table.U16($"packed weights {i} reserved"), $"packed weights {i} reserved field", 2);
            uint k = table.U32($"packed weights {i} K"), cols = table.U32($"packed weights {i} N");
            long offset = table.U64($"packed weights {i} offset");
            long length = table.U64($"packed weights {i} length");
            if (!PackedGemmWeights.IsKnown(layout))
                throw table.Error(QbmError.BadPackedWeights, $"packed weights {i} have layout {(int)layout}, which this runtime does not know; recompile the model with this toolchain", at);
            long need = PackedGemmWeights.Bytes(layout, k, cols);
            if (need < 0 || length != need)
                throw table.Error(QbmError.BadPackedWeights,
                    $"packed weights {i} (step {step}, slot '{slot}', group {group}) are {layout} [K {k}, N {cols}], which takes {need} bytes, but the entry says {length}", entry);
            if (step > int.MaxValue || group > int.MaxValue || offset % ConstantAlignment != 0 || offset > dataLength || length > dataLength - offset)
                throw table.Error(QbmError.BadPackedWeights,
                    $"packed weights {i} (step {step}, group {group}) span bytes {offset}..{offset + length} of ConstantData, which has {dataLength} bytes (offsets must be multiples of {ConstantAlignment})", entry);
            var bytes = file.AsSpan((int)(data.Position + offset), (int)length).ToArray();
            result[i] = new QbmPackedWeights((int)step, slot, (int)group, new PackedGemmWeights(layout, (int)k, (int)cols, bytes));
        }
        table.End();
        return result;
    }

    private static QbmMemoryPlan MemoryPlan(SectionReader r)
    {
        long arena = r.U64("arena bytes");
        long at = r.Position;
        uint alignment = r.U32("arena alignment");
        if (alignment != ArenaAlignment) throw r.Error(QbmError.BadMemoryPlan, $"arena alignment is {alignment}; version {FormatVersion} uses {ArenaAlignment}", at);
        int n = r.Count("placement count", 32);
        var placements = new QbmPlacement[n];
        for (int i = 0; i < n; i++)
        {
            int value = ValueId(r.U32($"placement {i} value id"));
            int first = (int)Math.Min(r.U32($"placement {i} first step"), int.MaxValue);
            int last = (int)Math.Min(r.U32($"placement {i} last step"), int.MaxValue);
            r.Zero(r.U32($"placement {i} reserved"), $"placement {i} reserved field");
            at = r.Position;
            long offset = r.U64($"placement {i} offset");
            long bytes = r.U64($"placement {i} bytes");
            if (offset % ArenaAlignment != 0 || offset > arena || bytes > arena - offset)
                throw r.Error(QbmError.BadMemoryPlan, $"placement {i} (value {value}) spans arena bytes {offset}..{offset + bytes}, outside the {arena}-byte arena or not {ArenaAlignment}-aligned", at);
            placements[i] = new QbmPlacement(value, first, last, offset, bytes);
        }
        r.End();
        return new QbmMemoryPlan(arena, (int)alignment, placements);
    }

    private static QbmCost Cost(SectionReader r, string[] strings)
    {
        int nFamilies = r.Count("cost family count", 32);
        if (nFamilies == 0) throw r.Error(QbmError.BadCost, "the cost model has no op family", r.Position - 4);
        var families = new QbmCostFamily[nFamilies];
        for (int i = 0; i < nFamilies; i++)
        {
            var name = Str(r, strings, $"cost family {i} name");
            r.Zero(r.U32($"cost family {i} reserved"), $"cost family {i} reserved field");
            var c = new double[3];
            for (int k = 0; k < 3; k++)
            {
                long at = r.Position;
                c[k] = r.F64($"cost family {i} ({name}) constant {k}");
                if (!(c[k] >= 0) || !double.IsFinite(c[k])) throw r.Error(QbmError.BadCost, $"cost family {i} ({name}) constant {k} is {c[k]}; it must be finite and not negative", at);
            }
            families[i] = new QbmCostFamily(name, c[0], c[1], c[2]);
        }
        int n = r.Count("op cost count", 40);
        var ops = new QbmOpCost[n];
        for (int i = 0; i < n; i++)
        {
            long macs = r.U64($"op {i} MACs");
            long at = r.Position;
            var type = (ElementType)r.U32($"op {i} MAC element type");
            if (type != ElementType.Undefined && !IsStorable(type)) throw r.Error(QbmError.BadCost, $"op {i} MAC element type {(int)type} is not an element type", at);
            at = r.Position;
            uint family = r.U32($"op {i} cost family");
            if (family >= nFamilies) throw r.Error(QbmError.BadCost, $"op {i} cost family {family} is not one of the {nFamilies} families", at);
            long read = r.U64($"op {i} bytes read"), written = r.U64($"op {i} bytes written");
            at = r.Position;
            double us = r.F64($"op {i} estimate");
            if (!(us >= 0) || !double.IsFinite(us)) throw r.Error(QbmError.BadCost, $"op {i} estimate is {us} µs", at);
            ops[i] = new QbmOpCost((int)family, macs, type, read, written, us);
        }
        r.End();
        return new QbmCost(new QbmCostModel(families), ops);
    }
}
