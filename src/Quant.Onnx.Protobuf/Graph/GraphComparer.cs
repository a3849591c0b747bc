namespace Quant.Onnx;

/// <summary>
/// Structural equality of models and graphs, for round-trip checks. Reports the first difference
/// as a readable sentence (e.g. "graph 'main': node 12 'conv1' (Conv): attribute 'pads' differs: [1,1,1,1] vs [0,0,0,0]").
/// Floats compare bit for bit, so NaN payloads and -0 count as differences. <see cref="OnnxModel.SourcePath"/> is ignored.
/// </summary>
public static class GraphComparer
{
    /// <summary>The first difference between two models, or null when they are structurally equal.</summary>
    public static string? FirstDifference(OnnxModel a, OnnxModel b)
    {
        if (a.IrVersion != b.IrVersion) return $"ir_version {a.IrVersion} vs {b.IrVersion}";
        if (a.ProducerName != b.ProducerName) return $"producer_name '{a.ProducerName}' vs '{b.ProducerName}'";
        if (a.ProducerVersion != b.ProducerVersion) return $"producer_version '{a.ProducerVersion}' vs '{b.ProducerVersion}'";
        if (a.Domain != b.Domain) return $"model domain '{a.Domain}' vs '{b.Domain}'";
        if (a.ModelVersion != b.ModelVersion) return $"model_version {a.ModelVersion} vs {b.ModelVersion}";
        if (a.DocString != b.DocString) return "model doc_string differs";
        if (Pairs(a.Opsets) != Pairs(b.Opsets)) return $"opset imports {Pairs(a.Opsets)} vs {Pairs(b.Opsets)}";
        if (Pairs(a.Metadata) != Pairs(b.Metadata)) return $"metadata {Pairs(a.Metadata)} vs {Pairs(b.Metadata)}";
        if (!BlobEqual(a.Unmodelled, b.Unmodelled, Proto.ModelProto.Parser)) return "unmodelled model fields (local functions) differ";
        return FirstDifference(a.Graph, b.Graph);
    }

    /// <summary>The first difference between two graphs (recursing into subgraphs), or null.</summary>
    public static string? FirstDifference(Graph a, Graph b)
    {
        string at = $"graph '{a.Name}'";
        if (a.Name != b.Name) return $"graph name '{a.Name}' vs '{b.Name}'";
        if (a.DocString != b.DocString) return $"{at}: doc_string differs";
        if (ValueInfos(a.Inputs, b.Inputs, "input") is { } di) return $"{at}: {di}";
        if (ValueInfos(a.Outputs, b.Outputs, "output") is { } dout) return $"{at}: {dout}";
        if (ValueInfos(a.ValueInfos.Values.ToList(), b.ValueInfos.Values.ToList(), "value_info") is { } dvi) return $"{at}: {dvi}";
        if (a.Initializers.Count != b.Initializers.Count) return $"{at}: {a.Initializers.Count} initializers vs {b.Initializers.Count}";
        for (int i = 0; i < a.Initializers.Count; i++)
        {
            var (ka, ta) = a.Initializers.GetAt(i);
            var (kb, tb) = b.Initializers.GetAt(i);
            if (ka != kb) return $"{at}: initializer {i} is '{ka}' vs '{kb}'";
            if (Tensors(ta, tb) is { } dt) return $"{at}: initializer '{ka}': {dt}";
        }
        if (a.Nodes.Count != b.Nodes.Count) return $"{at}: {a.Nodes.Count} nodes vs {b.Nodes.Count}";
        for (int i = 0; i < a.Nodes.Count; i++)
            if (Nodes(a.Nodes[i], b.Nodes[i]) is { } dn) return $"{at}: node {i} {a.Nodes[i].Describe()}: {dn}";
        if (!BlobEqual(a.Unmodelled, b.Unmodelled, Proto.GraphProto.Parser)) return $"{at}: unmodelled fields (sparse initializers, annotations) differ";
        return null;
    }

    /// <summary>The first difference between two tensors (type, dims, elements), or null.</summary>
    public static string? Tensors(TensorData a, TensorData b)
    {
        if (a.Name != b.Name) return $"name '{a.Name}' vs '{b.Name}'";
        if (a.Type != b.Type) return $"type {a.Type.OnnxName()} vs {b.Type.OnnxName()}";
        if (!a.Dims.AsSpan().SequenceEqual(b.Dims)) return $"dims [{string.Join(",", a.Dims)}] vs [{string.Join(",", b.Dims)}]";
        if (a.DocString != b.DocString) return "doc_string differs";
        if (!a.Raw.AsSpan().SequenceEqual(b.Raw))
        {
            int i = a.Raw.AsSpan().CommonPrefixLength(b.Raw);
            return $"data differs from byte {i} (of {a.Raw.Length} vs {b.Raw.Length})";
        }
        var sa = a.Strings ?? [];
        var sb = b.Strings ?? [];
        if (!sa.AsSpan().SequenceEqual(sb)) return "string elements differ";
        return null;
    }

    private static string? Nodes(Node a, Node b)
    {
        if (a.Name != b.Name) return $"name '{a.Name}' vs '{b.Name}'";
        if (a.OpType != b.OpType) return $"op_type {a.OpType} vs {b.OpType}";
        if (a.Domain != b.Domain) return $"domain '{a.Domain}' vs '{b.Domain}'";
        if (!a.Inputs.SequenceEqual(b.Inputs)) return $"inputs [{string.Join(",", a.Inputs)}] vs [{string.Join(",", b.Inputs)}]";
        if (!a.Outputs.SequenceEqual(b.Outputs)) return $"outputs [{string.Join(",", a.Outputs)}] vs [{string.Join(",", b.Outputs)}]";
        if (a.DocString != b.DocString) return "doc_string differs";
        // Attribute order carries no meaning in ONNX; compare by name.
        if (a.Attributes.Count != b.Attributes.Count)
            return $"attributes [{string.Join(",", a.Attributes.Keys)}] vs [{string.Join(",", b.Attributes.Keys)}]";
        foreach (var (name, va) in a.Attributes)
        {
            if (!b.Attributes.TryGetValue(name, out var vb)) return $"attribute '{name}' missing in the second";
            if (Attributes(va, vb) is { } d) return $"attribute '{name}': {d}";
        }
        return null;
    }

    private static string? Attributes(AttributeValue a, AttributeValue b)
    {
        if (a.Kind != b.Kind) return $"kind {a.Kind} vs {b.Kind}";
        switch (a.Kind)
        {
            case AttributeKind.Float:
                return BitConverter.SingleToInt32Bits(a.Float) == BitConverter.SingleToInt32Bits(b.Float) ? null : $"{a} vs {b}";
            case AttributeKind.Int:
                return a.Int == b.Int ? null : $"{a} vs {b}";
            case AttributeKind.String:
                return a.Bytes.AsSpan().SequenceEqual(b.Bytes) ? null : $"{a} vs {b}";
            case AttributeKind.Floats:
                return a.Floats.Length == b.Floats.Length && a.Floats.Zip(b.Floats).All(p => BitConverter.SingleToInt32Bits(p.First) == BitConverter.SingleToInt32Bits(p.Second))
                    ? null : $"{a} vs {b}";
            case AttributeKind.Ints:
                return a.Ints.AsSpan().SequenceEqual(b.Ints) ? null : $"{a} vs {b}";
            case AttributeKind.Strings:
                if (a.StringList.Length != b.StringList.Length) return $"{a.StringList.Length} strings vs {b.StringList.Length}";
                for (int i = 0; i < a.StringList.Length; i++)
                    if (!a.StringList[i].AsSpan().SequenceEqual(b.StringList[i])) return $"string {i} differs";
                return null;
            case AttributeKind.Tensor:
                return Tensors(a.Tensor!, b.Tensor!);
            case AttributeKind.Tensors:
                if (a.Tensors.Length != b.Tensors.Length) return $"{a.Tensors.Length} tensors vs {b.Tensors.Length}";
                for (int i = 0; i < a.Tensors.Length; i++)
                    if (Tensors(a.Tensors[i], b.Tensors[i]) is { } dt) return $"tensor {i}: {dt}";
                return null;
            case AttributeKind.Graph:
                return FirstDifference(a.Graph!, b.Graph!);
            case AttributeKind.Graphs:
                if (a.Graphs.Length != b.Graphs.Length) return $"{a.Graphs.Length} graphs vs {b.Graphs.Length}";
                for (int i = 0; i < a.Graphs.Length; i++)
                    if (FirstDifference(a.Graphs[i], b.Graphs[i]) is { } dg) return $"graph {i}: {dg}";
                return null;
            default:
                return BlobEqual(a.OpaqueProto, b.OpaqueProto, Proto.AttributeProto.Parser) ? null : "opaque attribute contents differ";
        }
    }

    private static string? ValueInfos(List<ValueInfo> a, List<ValueInfo> b, string what)
    {
        if (a.Count != b.Count) return $"{a.Count} {what}s vs {b.Count}";
        for (int i = 0; i < a.Count; i++)
        {
            var (x, y) = (a[i], b[i]);
            if (x.Name != y.Name) return $"{what} {i} is '{x.Name}' vs '{y.Name}'";
            if (x.Type != y.Type) return $"{what} '{x.Name}' type {x.Type.OnnxName()} vs {y.Type.OnnxName()}";
            if ((x.Shape is null) != (y.Shape is null) || (x.Shape is not null && !x.Shape.AsSpan().SequenceEqual(y.Shape)))
                return $"{what} '{x.Name}' shape {x} vs {y}";
            if (x.DocString != y.DocString) return $"{what} '{x.Name}' doc_string differs";
        }
        return null;
    }

    private static string Pairs<TValue>(OrderedDictionary<string, TValue> d) =>
        "{" + string.Join(", ", d.Select(kv => $"'{kv.Key}': {kv.Value}")) + "}";

    /// <summary>Undecoded blobs are equal when they decode to equal messages (field order may differ).</summary>
    private static bool BlobEqual<T>(byte[]? a, byte[]? b, Google.Protobuf.MessageParser<T> parser) where T : Google.Protobuf.IMessage<T>
    {
        a ??= [];
        b ??= [];
        if (a.AsSpan().SequenceEqual(b)) return true;
        try { return parser.ParseFrom(a).Equals(parser.ParseFrom(b)); }
        catch (Google.Protobuf.InvalidProtocolBufferException) { return false; }
    }
}
