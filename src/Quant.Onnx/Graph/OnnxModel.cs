namespace Quant.Onnx;

/// <summary>An ONNX model: metadata, operator set imports and the main graph.</summary>
public sealed class OnnxModel
{
    public OnnxModel(Graph graph) { Graph = graph; }

    public long IrVersion { get; set; } = 8;
    /// <summary>Operator set versions by domain ("" is the default ONNX domain).</summary>
    public OrderedDictionary<string, long> Opsets { get; } = new(StringComparer.Ordinal);
    public string ProducerName { get; set; } = "";
    public string ProducerVersion { get; set; } = "";
    public string Domain { get; set; } = "";
    public long ModelVersion { get; set; }
    public string DocString { get; set; } = "";
    public OrderedDictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);
    public Graph Graph { get; }
    /// <summary>The file the model was loaded from, if any (for error messages and external data).</summary>
    public string? SourcePath { get; set; }
    /// <summary>
    /// The external-data files the model's tensors were read from when it was loaded (full paths, sorted): part of
    /// the model as much as the .onnx file is, so whatever is derived from the model depends on them too.
    /// </summary>
    public IReadOnlyList<string> ExternalDataFiles { get; init; } = [];
    /// <summary>Encoded ModelProto fields we do not model (local functions), kept for saving.</summary>
    internal byte[]? Unmodelled { get; set; }

    /// <summary>The opset version imported for <paramref name="domain"/>; "ai.onnx" is the default domain.</summary>
    public long OpsetFor(string domain)
    {
        if (domain == "ai.onnx") domain = "";
        return Opsets.TryGetValue(domain, out var v) ? v : 0;
    }
}
