using System.Buffers.Binary;
using Google.Protobuf;
using Quant.Onnx.Proto;

namespace Quant.Onnx;

/// <summary>Reads .onnx files into the graph IR: initializers, Constant nodes, external data, subgraphs.</summary>
public static class OnnxModelReader
{
    /// <summary>Largest model file we parse; protobuf itself cannot exceed 2 GiB.</summary>
    private const long MaxModelBytes = int.MaxValue;

    public static OnnxModel Load(string path)
    {
        var full = Path.GetFullPath(path);
        byte[] bytes;
        try
        {
            var info = new FileInfo(full);
            if (!info.Exists) throw new OnnxFormatException($"{path}: model file not found");
            if (info.Length > MaxModelBytes) throw new OnnxFormatException($"{path}: {info.Length} bytes is larger than a protobuf model can be (2 GiB); store weights as external data");
            bytes = File.ReadAllBytes(full);
        }
        catch (IOException e) { throw new OnnxFormatException($"{path}: cannot read model file: {e.Message}", e); }
        catch (UnauthorizedAccessException e) { throw new OnnxFormatException($"{path}: cannot read model file: {e.Message}", e); }
        var model = Parse(bytes, path, Path.GetDirectoryName(full)!);
        model.SourcePath = full;
        return model;
    }

    /// <summary>Parses a serialized ModelProto. External data is resolved relative to <paramref name="baseDirectory"/>.</summary>
    public static OnnxModel Parse(ReadOnlySpan<byte> bytes, string displayName, string baseDirectory)
    {
        ModelProto proto;
        try
        {
            proto = ModelProto.Parser.ParseFrom(bytes);
        }
        // Google.Protobuf reports most malformed input as InvalidProtocolBufferException, but a varint or length cut off
        // at the end of some nested messages escapes as IndexOutOfRange/ArgumentOutOfRange (found by build/fuzz.sh):
        // whatever the decoder throws, the bytes are not a model.
        catch (Exception e) when (e is InvalidProtocolBufferException or IndexOutOfRangeException or ArgumentException or OverflowException)
        {
            throw new OnnxFormatException($"{displayName}: not a valid ONNX model (protobuf decoding failed: {e.Message}); the file is truncated or not an .onnx file", e);
        }
        if (proto.Graph is null)
            throw new OnnxFormatException($"{displayName}: the model has no graph; the file is empty, truncated or not an .onnx file");
        if (proto.IrVersion <= 0 || proto.IrVersion > 12)
            throw new OnnxFormatException($"{displayName}: ir_version {proto.IrVersion} is not one we read (1..12); the file is probably not an .onnx model");

        var ctx = new Context(displayName, Path.GetFullPath(baseDirectory));
        var model = new OnnxModel(ctx.ReadGraph(proto.Graph))
        {
            IrVersion = proto.IrVersion,
            ProducerName = proto.ProducerName,
            ProducerVersion = proto.ProducerVersion,
            Domain = proto.Domain,
            ModelVersion = proto.ModelVersion,
            DocString = proto.DocString,
            ExternalDataFiles = [.. ctx.ExternalFiles],
        };
        foreach (var op in proto.OpsetImport)
            model.Opsets[op.Domain == "ai.onnx" ? "" : op.Domain] = op.Version;
        if (proto.OpsetImport.Count == 0) model.Opsets[""] = 1;
        foreach (var kv in proto.MetadataProps) model.Metadata[kv.Key] = kv.Value;
        if (proto.Functions.Count > 0)
        {
            var rest = new ModelProto();
            rest.Functions.AddRange(proto.Functions);
            model.Unmodelled = rest.ToByteArray();
        }
        return model;
    }

    internal static TensorData ReadTensor(TensorProto t, string displayName, string baseDirectory) =>
        new Context(displayName, baseDirectory).ReadTensor(t, $"tensor '{t.Name}'");

    private sealed class Context(string displayName, string baseDirectory)
    {
        /// <summary>Every external-data file a tensor was read from (full paths, sorted).</summary>
        public SortedSet<string> ExternalFiles { get; } = new(StringComparer.Ordinal);

        public Graph ReadGraph(GraphProto g)
        {
            var graph = new Graph { Name = g.Name, DocString = g.DocString };
            foreach (var t in g.Initializer)
            {
                var data = ReadTensor(t, $"initializer '{t.Name}'");
                graph.Initializers[t.Name] = data;
            }
            foreach (var v in g.Input) graph.Inputs.Add(ReadValueInfo(v));
            foreach (var v in g.Output) graph.Outputs.Add(ReadValueInfo(v));
            foreach (var v in g.ValueInfo) graph.ValueInfos[v.Name] = ReadValueInfo(v);
            foreach (var n in g.Node) graph.Nodes.Add(ReadNode(n));
            if (g.SparseInitializer.Count > 0 || g.QuantizationAnnotation.Count > 0 || g.MetadataProps.Count > 0)
            {
                var rest = new GraphProto();
                rest.SparseInitializer.AddRange(g.SparseInitializer);
                rest.QuantizationAnnotation.AddRange(g.QuantizationAnnotation);
                rest.MetadataProps.AddRange(g.MetadataProps);
                graph.Unmodelled = rest.ToByteArray();
            }
            return graph;
        }

        private Node ReadNode(NodeProto n)
        {
            var node = new Node(n.Name, n.OpType, n.Domain, n.Input, n.Output) { DocString = n.DocString };
            foreach (var a in n.Attribute)
                node.Attributes[a.Name] = ReadAttribute(a, node);
            return node;
        }

        private AttributeValue ReadAttribute(AttributeProto a, Node owner)
        {
            var type = a.Type;
            if (type == AttributeProto.Types.AttributeType.Undefined) type = GuessType(a);
            string where = $"attribute '{a.Name}' of {owner.Describe()}";
            return type switch
            {
                AttributeProto.Types.AttributeType.Float => new AttributeValue(a.Name, AttributeKind.Float) { Float = a.F },
                AttributeProto.Types.AttributeType.Int => new AttributeValue(a.Name, AttributeKind.Int) { Int = a.I },
                AttributeProto.Types.AttributeType.String => new AttributeValue(a.Name, AttributeKind.String) { Bytes = a.S.ToByteArray() },
                AttributeProto.Types.AttributeType.Tensor => new AttributeValue(a.Name, AttributeKind.Tensor) { Tensor = ReadTensor(a.T ?? new TensorProto(), where) },
                AttributeProto.Types.AttributeType.Graph => new AttributeValue(a.Name, AttributeKind.Graph) { Graph = ReadGraph(a.G ?? new GraphProto()) },
                AttributeProto.Types.AttributeType.Floats => new AttributeValue(a.Name, AttributeKind.Floats) { Floats = [.. a.Floats] },
                AttributeProto.Types.AttributeType.Ints => new AttributeValue(a.Name, AttributeKind.Ints) { Ints = [.. a.Ints] },
                AttributeProto.Types.AttributeType.Strings => new AttributeValue(a.Name, AttributeKind.Strings) { StringList = a.Strings.Select(s => s.ToByteArray()).ToArray() },
                AttributeProto.Types.AttributeType.Tensors => new AttributeValue(a.Name, AttributeKind.Tensors) { Tensors = a.Tensors.Select(t => ReadTensor(t, where)).ToArray() },
                AttributeProto.Types.AttributeType.Graphs => new AttributeValue(a.Name, AttributeKind.Graphs) { Graphs = a.Graphs.Select(ReadGraph).ToArray() },
                _ => new AttributeValue(a.Name, AttributeKind.Opaque) { OpaqueProto = a.ToByteArray() },
            };
        }

        /// <summary>Very old files (IR v1) may omit the attribute type; infer it from the filled field.</summary>
        private static AttributeProto.Types.AttributeType GuessType(AttributeProto a)
        {
            if (a.Floats.Count > 0) return AttributeProto.Types.AttributeType.Floats;
            if (a.Ints.Count > 0) return AttributeProto.Types.AttributeType.Ints;
            if (a.Strings.Count > 0) return AttributeProto.Types.AttributeType.Strings;
            if (a.T is not null) return AttributeProto.Types.AttributeType.Tensor;
            if (a.G is not null) return AttributeProto.Types.AttributeType.Graph;
            if (!a.S.IsEmpty) return AttributeProto.Types.AttributeType.String;
            if (a.F != 0) return AttributeProto.Types.AttributeType.Float;
            return AttributeProto.Types.AttributeType.Int;
        }

        private static ValueInfo ReadValueInfo(ValueInfoProto v)
        {
            var tt = v.Type?.TensorType;
            Dim[]? shape = null;
            if (tt?.Shape is not null)
            {
                shape = tt.Shape.Dim.Select(d =>
                    d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? Dim.Known(d.DimValue)
                    : d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam && d.DimParam.Length > 0 ? Dim.Named(d.DimParam)
                    : Dim.Unknown).ToArray();
            }
            return new ValueInfo(v.Name, (ElementType)(tt?.ElemType ?? 0), shape) { DocString = v.DocString };
        }

        public TensorData ReadTensor(TensorProto t, string where)
        {
            var type = (ElementType)t.DataType;
            foreach (var d in t.Dims)
                if (d < 0) throw new OnnxFormatException($"{displayName}: {where} has a negative dimension ({d})");
            int size = type.SizeOf();
            if (type != ElementType.String && size == 0)
                throw new OnnxFormatException($"{displayName}: {where} has element type {t.DataType}, which is not a tensor type we read");
            // Element and byte counts are bounded by what an array can hold; larger declared dims cannot be backed by data.
            long count = 1;
            foreach (var d in t.Dims)
            {
                if (d != 0 && count > Array.MaxLength / d)
                    throw new OnnxFormatException($"{displayName}: {where} declares dims [{string.Join(",", t.Dims)}], more elements than a tensor can hold; the file is corrupt");
                count *= d;
            }
            if (count * Math.Max(size, 1) > Array.MaxLength)
                throw new OnnxFormatException($"{displayName}: {where} declares dims [{string.Join(",", t.Dims)}] of {type.OnnxName()}, more than 2 GiB in one tensor, which we do not support");

            if (type == ElementType.String)
            {
                if (t.StringData.Count != count)
                    throw new OnnxFormatException($"{displayName}: {where} declares {count} strings but stores {t.StringData.Count}; the file is truncated or corrupt");
                return new TensorData(t.Name, type, [.. t.Dims], [], t.StringData.Select(s => s.ToStringUtf8()).ToArray()) { DocString = t.DocString };
            }

            byte[] raw;
            if (t.DataLocation == TensorProto.Types.DataLocation.External)
                raw = ReadExternal(t, where, count * size);
            else if (!t.RawData.IsEmpty)
                raw = t.RawData.ToByteArray();
            else
                raw = FromTypedFields(t, type, count, where);
            if (raw.LongLength != count * size)
                throw new OnnxFormatException($"{displayName}: {where} declares {count} elements of {type.OnnxName()} ({count * size} bytes) but holds {raw.LongLength} bytes; the file is truncated or corrupt");
            return new TensorData(t.Name, type, [.. t.Dims], raw) { DocString = t.DocString };
        }

        private byte[] FromTypedFields(TensorProto t, ElementType type, long count, string where)
        {
            int size = type.SizeOf();
            long stored = type switch
            {
                ElementType.Float => t.FloatData.Count,
                ElementType.Complex64 => t.FloatData.Count / 2,
                ElementType.Double => t.DoubleData.Count,
                ElementType.Complex128 => t.DoubleData.Count / 2,
                ElementType.Int64 => t.Int64Data.Count,
                ElementType.UInt32 or ElementType.UInt64 => t.Uint64Data.Count,
                _ => t.Int32Data.Count,
            };
            // Check before allocating: huge declared dims over a few stored values must not allocate gigabytes.
            if (stored != count)
                throw new OnnxFormatException($"{displayName}: {where} declares {count} elements but stores {stored}; the file is truncated or corrupt");
            var raw = new byte[count * size];
            var span = raw.AsSpan();
            long have;
            switch (type)
            {
                case ElementType.Float:
                    have = t.FloatData.Count;
                    if (have == count) for (int i = 0; i < count; i++) BinaryPrimitives.WriteSingleLittleEndian(span[(i * 4)..], t.FloatData[i]);
                    break;
                case ElementType.Complex64:
                    have = t.FloatData.Count / 2;
                    if (have == count) for (int i = 0; i < count * 2; i++) BinaryPrimitives.WriteSingleLittleEndian(span[(i * 4)..], t.FloatData[i]);
                    break;
                case ElementType.Double:
                    have = t.DoubleData.Count;
                    if (have == count) for (int i = 0; i < count; i++) BinaryPrimitives.WriteDoubleLittleEndian(span[(i * 8)..], t.DoubleData[i]);
                    break;
                case ElementType.Complex128:
                    have = t.DoubleData.Count / 2;
                    if (have == count) for (int i = 0; i < count * 2; i++) BinaryPrimitives.WriteDoubleLittleEndian(span[(i * 8)..], t.DoubleData[i]);
                    break;
                case ElementType.Int64:
                    have = t.Int64Data.Count;
                    if (have == count) for (int i = 0; i < count; i++) BinaryPrimitives.WriteInt64LittleEndian(span[(i * 8)..], t.Int64Data[i]);
                    break;
                case ElementType.UInt32:
                    have = t.Uint64Data.Count;
                    if (have == count) for (int i = 0; i < count; i++) BinaryPrimitives.WriteUInt32LittleEndian(span[(i * 4)..], (uint)t.Uint64Data[i]);
                    break;
                case ElementType.UInt64:
                    have = t.Uint64Data.Count;
                    if (have == count) for (int i = 0; i < count; i++) BinaryPrimitives.WriteUInt64LittleEndian(span[(i * 8)..], t.Uint64Data[i]);
                    break;
                default:
                    // int32, int16, uint16, int8, uint8, bool, float16, bfloat16: stored in int32_data.
                    have = t.Int32Data.Count;
                    if (have == count)
                        for (int i = 0; i < count; i++)
                        {
                            int v = t.Int32Data[i];
                            switch (size)
                            {
                                case 1: span[i] = (byte)v; break;
                                case 2: BinaryPrimitives.WriteUInt16LittleEndian(span[(i * 2)..], (ushort)v); break;
                                default: BinaryPrimitives.WriteInt32LittleEndian(span[(i * 4)..], v); break;
                            }
                        }
                    break;
            }
            if (have != count)
                throw new OnnxFormatException($"{displayName}: {where} declares {count} elements but stores {have}; the file is truncated or corrupt");
            return raw;
        }

        private byte[] ReadExternal(TensorProto t, string where, long expectedBytes)
        {
            string? location = null;
            long offset = 0, length = -1;
            foreach (var kv in t.ExternalData)
            {
                switch (kv.Key)
                {
                    case "location": location = kv.Value; break;
                    case "offset": offset = ParseLong(kv.Value, where, "offset"); break;
                    case "length": length = ParseLong(kv.Value, where, "length"); break;
                }
            }
            if (string.IsNullOrEmpty(location))
                throw new OnnxFormatException($"{displayName}: {where} is stored externally but has no 'location'");
            var full = ExternalDataPath.Resolve(baseDirectory, location, displayName, where);
            ExternalFiles.Add(full);
            try
            {
                using var fs = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read);
                if (length < 0) length = expectedBytes;
                if (length != expectedBytes)
                    throw new OnnxFormatException($"{displayName}: {where} external data length {length} does not match its dims ({expectedBytes} bytes)");
                if (offset < 0 || offset > fs.Length || length > fs.Length - offset)
                    throw new OnnxFormatException($"{displayName}: {where} reads bytes {offset}..{offset + length} of '{location}', which has only {fs.Length}; the data file is truncated");
                var buffer = new byte[length];
                fs.Seek(offset, SeekOrigin.Begin);
                fs.ReadExactly(buffer);
                return buffer;
            }
            catch (IOException e)
            {
                throw new OnnxFormatException($"{displayName}: {where} external data '{location}' cannot be read: {e.Message}", e);
            }
            catch (UnauthorizedAccessException e)
            {
                throw new OnnxFormatException($"{displayName}: {where} external data '{location}' cannot be read: {e.Message}", e);
            }
        }

        private long ParseLong(string s, string where, string key) =>
            long.TryParse(s, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var v) && v >= 0
                ? v
                : throw new OnnxFormatException($"{displayName}: {where} has external data {key} '{s}', which is not a non-negative integer");
    }
}

public static class OnnxTensorFile
{
    /// <summary>Reads a serialized TensorProto (.pb), as the ONNX backend tests store inputs and outputs.</summary>
    public static TensorData Load(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (IOException e) { throw new OnnxFormatException($"{path}: cannot read tensor file: {e.Message}", e); }
        Quant.Onnx.Proto.TensorProto proto;
        try { proto = Quant.Onnx.Proto.TensorProto.Parser.ParseFrom(bytes); }
        catch (Exception e) when (e is Google.Protobuf.InvalidProtocolBufferException or IndexOutOfRangeException or ArgumentException or OverflowException)
        {
            throw new OnnxFormatException($"{path}: not a valid TensorProto: {e.Message}", e);
        }
        return OnnxModelReader.ReadTensor(proto, path, Path.GetDirectoryName(Path.GetFullPath(path))!);
    }
}
