using Google.Protobuf;
using Quant.Onnx.Proto;

namespace Quant.Onnx;

/// <summary>How <see cref="OnnxModelWriter.Save"/> lays out tensor data.</summary>
public sealed class OnnxWriteOptions
{
    /// <summary>
    /// Write initializers of at least <see cref="ExternalDataThreshold"/> bytes into one file next to the
    /// model (<c>NAME.onnx.data</c>), referenced by a relative location. Needed above protobuf's 2 GiB limit.
    /// </summary>
    public bool ExternalData { get; init; }

    /// <summary>Smallest tensor (bytes) that goes to the external file; smaller ones stay inline.</summary>
    public long ExternalDataThreshold { get; init; } = 1024;

    /// <summary>
    /// Also move large tensors held in node attributes (Constant values) to the external file.
    /// Off by default, like ONNX's own converter, because not every runtime reads external attribute tensors.
    /// </summary>
    public bool ExternalAttributeTensors { get; init; }
}

/// <summary>
/// Writes the graph IR back to ONNX protobuf. Output is deterministic: the same model gives the same
/// bytes (fields are written in a fixed order and tensors always as raw little-endian data).
/// Parts the reader kept undecoded (local functions, sparse initializers, quantization annotations,
/// opaque attributes) are written back as they were read.
/// </summary>
public static class OnnxModelWriter
{
    /// <summary>Tensors of at least this size start on a page boundary in the data file, so they can be memory-mapped.</summary>
    private const long PageAlignFrom = 64 * 1024;
    private const long PageSize = 4096;
    /// <summary>Smaller external tensors still start on a cache-line boundary for aligned loads.</summary>
    private const long SmallAlign = 64;

    /// <summary>The serialized model with every tensor inline.</summary>
    /// <exception cref="OnnxFormatException">the model does not fit in one protobuf message (2 GiB)</exception>
    public static byte[] ToBytes(OnnxModel model)
    {
        var proto = ToProto(model, external: null);
        return Serialize(proto, model.SourcePath ?? "model");
    }

    /// <summary>
    /// Saves atomically: the model (and its data file, if any) are written to temporary files in the
    /// target folder and then moved over the destination, so a crash never leaves a half-written model.
    /// </summary>
    public static void Save(OnnxModel model, string path, OnnxWriteOptions? options = null)
    {
        options ??= new OnnxWriteOptions();
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);

        ExternalWriter? external = null;
        string? dataTemp = null;
        string? modelTemp = null;
        try
        {
            if (options.ExternalData)
            {
                var dataName = Path.GetFileName(full) + ".data";
                dataTemp = TempPathIn(dir, dataName);
                external = new ExternalWriter(dataName, dataTemp, options.ExternalDataThreshold, options.ExternalAttributeTensors);
            }
            var proto = ToProto(model, external);
            external?.Dispose();
            var bytes = Serialize(proto, path);

            modelTemp = TempPathIn(dir, Path.GetFileName(full));
            using (var fs = new FileStream(modelTemp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(bytes);
                fs.Flush(flushToDisk: true);
            }
            // The data file goes first: a model file never refers to data that is not there yet.
            if (external is { Used: true })
            {
                File.Move(dataTemp!, Path.Combine(dir, external.Location), overwrite: true);
                dataTemp = null;
            }
            File.Move(modelTemp, full, overwrite: true);
            modelTemp = null;
        }
        finally
        {
            external?.Dispose();
            TryDelete(dataTemp);
            TryDelete(modelTemp);
        }
    }

    private static string TempPathIn(string dir, string name) =>
        Path.Combine(dir, $".{name}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");

    private static void TryDelete(string? path)
    {
        if (path is null) return;
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static byte[] Serialize(ModelProto proto, string name)
    {
        long size = proto.CalculateSize();
        if (size < 0 || size >= int.MaxValue)
            throw new OnnxFormatException($"{name}: the model needs more than 2 GiB inline, more than protobuf allows; save with external data");
        return proto.ToByteArray();
    }

    private static ModelProto ToProto(OnnxModel model, ExternalWriter? external)
    {
        var p = new ModelProto
        {
            IrVersion = model.IrVersion,
            ProducerName = model.ProducerName,
            ProducerVersion = model.ProducerVersion,
            Domain = model.Domain,
            ModelVersion = model.ModelVersion,
            DocString = model.DocString,
            Graph = ToProto(model.Graph, external),
        };
        foreach (var (domain, version) in model.Opsets)
            p.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = version });
        foreach (var (k, v) in model.Metadata)
            p.MetadataProps.Add(new StringStringEntryProto { Key = k, Value = v });
        if (model.Unmodelled is { Length: > 0 } rest)
            p.MergeFrom(ModelProto.Parser.ParseFrom(rest));
        return p;
    }

    private static GraphProto ToProto(Graph g, ExternalWriter? external)
    {
        var p = new GraphProto { Name = g.Name, DocString = g.DocString };
        foreach (var n in g.Nodes) p.Node.Add(ToProto(n, external));
        foreach (var t in g.Initializers.Values) p.Initializer.Add(ToProto(t, external, isAttribute: false));
        foreach (var v in g.Inputs) p.Input.Add(ToProto(v));
        foreach (var v in g.Outputs) p.Output.Add(ToProto(v));
        foreach (var v in g.ValueInfos.Values) p.ValueInfo.Add(ToProto(v));
        if (g.Unmodelled is { Length: > 0 } rest)
            p.MergeFrom(GraphProto.Parser.ParseFrom(rest));
        return p;
    }

    private static NodeProto ToProto(Node n, ExternalWriter? external)
    {
        var p = new NodeProto { Name = n.Name, OpType = n.OpType, Domain = n.Domain, DocString = n.DocString };
        p.Input.AddRange(n.Inputs);
        p.Output.AddRange(n.Outputs);
        foreach (var a in n.Attributes.Values) p.Attribute.Add(ToProto(a, external));
        return p;
    }

    private static AttributeProto ToProto(AttributeValue a, ExternalWriter? external)
    {
        if (a.Kind == AttributeKind.Opaque)
        {
            var opaque = AttributeProto.Parser.ParseFrom(a.OpaqueProto ?? []);
            opaque.Name = a.Name;
            return opaque;
        }
        var p = new AttributeProto { Name = a.Name };
        switch (a.Kind)
        {
            case AttributeKind.Float: p.Type = AttributeProto.Types.AttributeType.Float; p.F = a.Float; break;
            case AttributeKind.Int: p.Type = AttributeProto.Types.AttributeType.Int; p.I = a.Int; break;
            case AttributeKind.String: p.Type = AttributeProto.Types.AttributeType.String; p.S = ByteString.CopyFrom(a.Bytes); break;
            case AttributeKind.Tensor:
                p.Type = AttributeProto.Types.AttributeType.Tensor;
                p.T = ToProto(a.Tensor ?? throw new OnnxFormatException($"attribute '{a.Name}' is a tensor attribute without a tensor"), external, isAttribute: true);
                break;
            case AttributeKind.Graph:
                p.Type = AttributeProto.Types.AttributeType.Graph;
                p.G = ToProto(a.Graph ?? throw new OnnxFormatException($"attribute '{a.Name}' is a graph attribute without a graph"), external);
                break;
            case AttributeKind.Floats: p.Type = AttributeProto.Types.AttributeType.Floats; p.Floats.AddRange(a.Floats); break;
            case AttributeKind.Ints: p.Type = AttributeProto.Types.AttributeType.Ints; p.Ints.AddRange(a.Ints); break;
            case AttributeKind.Strings:
                p.Type = AttributeProto.Types.AttributeType.Strings;
                foreach (var s in a.StringList) p.Strings.Add(ByteString.CopyFrom(s));
                break;
            case AttributeKind.Tensors:
                p.Type = AttributeProto.Types.AttributeType.Tensors;
                foreach (var t in a.Tensors) p.Tensors.Add(ToProto(t, external, isAttribute: true));
                break;
            case AttributeKind.Graphs:
                p.Type = AttributeProto.Types.AttributeType.Graphs;
                foreach (var g in a.Graphs) p.Graphs.Add(ToProto(g, external));
                break;
        }
        return p;
    }

    private static TensorProto ToProto(TensorData t, ExternalWriter? external, bool isAttribute)
    {
        var p = new TensorProto { Name = t.Name, DataType = (int)t.Type, DocString = t.DocString };
        p.Dims.AddRange(t.Dims);
        if (t.Type == ElementType.String)
        {
            foreach (var s in t.Strings ?? []) p.StringData.Add(ByteString.CopyFromUtf8(s));
            return p;
        }
        if (external is not null && external.Wants(t, isAttribute))
        {
            var (offset, length) = external.Append(t.Raw);
            p.DataLocation = TensorProto.Types.DataLocation.External;
            p.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = external.Location });
            p.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            p.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            return p;
        }
        p.RawData = ByteString.CopyFrom(t.Raw);
        return p;
    }

    private static ValueInfoProto ToProto(ValueInfo v)
    {
        var p = new ValueInfoProto { Name = v.Name, DocString = v.DocString };
        // The reader maps "no type at all" to Undefined with unknown rank; keep that distinction on the way out.
        if (v.Type == ElementType.Undefined && v.Shape is null) return p;
        var tt = new TypeProto.Types.Tensor { ElemType = (int)v.Type };
        if (v.Shape is not null)
        {
            tt.Shape = new TensorShapeProto();
            foreach (var d in v.Shape)
            {
                var dp = new TensorShapeProto.Types.Dimension();
                if (d.IsKnown) dp.DimValue = d.Value;
                else if (d.Symbol is { Length: > 0 } s) dp.DimParam = s;
                tt.Shape.Dim.Add(dp);
            }
        }
        p.Type = new TypeProto { TensorType = tt };
        return p;
    }

    private sealed class ExternalWriter(string location, string tempPath, long threshold, bool attributes) : IDisposable
    {
        private FileStream? stream = new(tempPath, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        private long position;

        public string Location { get; } = location;
        public bool Used { get; private set; }

        public bool Wants(TensorData t, bool isAttribute) =>
            (!isAttribute || attributes) && t.Raw.LongLength >= Math.Max(threshold, 1);

        public (long Offset, long Length) Append(byte[] data)
        {
            var s = stream ?? throw new InvalidOperationException("external data file already closed");
            long align = data.LongLength >= PageAlignFrom ? PageSize : SmallAlign;
            long offset = (position + align - 1) / align * align;
            if (offset > position)
            {
                s.Write(new byte[offset - position]);
                position = offset;
            }
            s.Write(data);
            position += data.LongLength;
            Used = true;
            return (offset, data.LongLength);
        }

        public void Dispose()
        {
            if (stream is null) return;
            stream.Flush(flushToDisk: true);
            stream.Dispose();
            stream = null;
        }
    }
}
