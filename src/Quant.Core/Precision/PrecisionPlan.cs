using System.Globalization;
using System.Text;
using Quant.Core.Config;
using Quant.Onnx;

namespace Quant.Core.Precision;

/// <summary>The resolved precision of one input edge of a node.</summary>
public sealed class InputPrecision
{
    public required int Index { get; init; }
    /// <summary>The tensor name ("" for an omitted optional input).</summary>
    public required string Tensor { get; init; }
    public required InputRole Role { get; init; }
    /// <summary>The qtype the node reads this input in; null for <see cref="InputRole.Parameter"/> and <see cref="InputRole.Bias"/> inputs.</summary>
    public QType? QType { get; internal set; }
    /// <summary>
    /// The input is the output of a GEMM-type op this node is fused into: it stays in the accumulator's
    /// precision and is not quantized in between.
    /// </summary>
    public bool Fused { get; internal set; }
    /// <summary>True when node_config set this input explicitly (inputN).</summary>
    public bool Explicit { get; internal set; }
    /// <summary>
    /// node_config asked for <c>ec</c> (error compensation): this int8 weight is exported as a high part and the
    /// residual low part, two GEMM nodes and an Add (<see cref="Export.ErrorCompensation"/>).
    /// </summary>
    public bool ErrorCompensation { get; internal set; }
}

/// <summary>The resolved precision of one output of a node.</summary>
public sealed class OutputPrecision
{
    public required int Index { get; init; }
    public required string Tensor { get; init; }
    /// <summary>Null when the output carries no float data.</summary>
    public QType? QType { get; internal set; }
    public bool IsModelOutput { get; init; }
}

/// <summary>The resolved precision of one node.</summary>
public sealed class NodePrecision
{
    public required Node Node { get; init; }
    /// <summary>Position in the prepared model's node list.</summary>
    public required int NodeIndex { get; init; }
    public string Name => Node.Name;
    public string OpType => Node.OpType;
    /// <summary>The qtype the node computes in.</summary>
    public QType Compute { get; internal set; }
    /// <summary>The config layer that decided <see cref="Compute"/> before target rules (e.g. "preset base", "node_config").</summary>
    public string Source { get; internal set; } = "default";
    /// <summary>
    /// The node carries no float data (Shape, integer shape arithmetic): it has no qtype of its own,
    /// is left as it is and is not counted in precision statistics.
    /// </summary>
    public bool ShapeOnly { get; init; }
    /// <summary>The GEMM-type node this activation is fused into, when it is.</summary>
    public Node? FusedInto { get; internal set; }
    public required IReadOnlyList<InputPrecision> Inputs { get; init; }
    public required IReadOnlyList<OutputPrecision> Outputs { get; init; }

    public override string ToString() => $"{Node.Describe()}: {Compute}";
}

/// <summary>What a change log entry is about.</summary>
public enum ChangeSite { Node, Input, Output }

/// <summary>One automatic change of a precision (a fallback or promotion), the seeds' qconfig_changelogs line.</summary>
public sealed record ChangeLogEntry(string NodeName, string OpType, ChangeSite Site, int Index, string Tensor, QType From, QType To, string Reason)
{
    public string SiteText => Site switch
    {
        ChangeSite.Node => "node",
        ChangeSite.Input => string.Create(CultureInfo.InvariantCulture, $"input{Index} '{Tensor}'"),
        _ => string.Create(CultureInfo.InvariantCulture, $"output{Index} '{Tensor}'"),
    };
}

/// <summary>
/// The precision of every node, input and output of a prepared model, plus the log of the changes the
/// target's rules made to what the config asked for. Built by <see cref="PrecisionPlanner"/>.
/// </summary>
public sealed class PrecisionPlan
{
    private readonly Dictionary<Node, NodePrecision> _byNode;

    internal PrecisionPlan(OnnxModel model, List<NodePrecision> nodes, List<ChangeLogEntry> changes, List<string> warnings)
    {
        Model = model;
        Nodes = nodes;
        ChangeLog = changes;
        Warnings = warnings;
        _byNode = new Dictionary<Node, NodePrecision>(ReferenceEqualityComparer.Instance);
        foreach (var n in nodes) _byNode[n.Node] = n;
    }

    public OnnxModel Model { get; }
    /// <summary>Every node, in the model's node order.</summary>
    public IReadOnlyList<NodePrecision> Nodes { get; }
    /// <summary>Automatic changes, in node order, then input/output order.</summary>
    public IReadOnlyList<ChangeLogEntry> ChangeLog { get; }
    /// <summary>Non-fatal config findings as canonical diagnostics (<c>file(line,col): warning QB1006: ...</c>).</summary>
    public IReadOnlyList<string> Warnings { get; }

    public NodePrecision this[Node node] => _byNode[node];
    public bool TryGet(Node node, out NodePrecision precision) => _byNode.TryGetValue(node, out precision!);
    public NodePrecision? ByName(string name) => Nodes.FirstOrDefault(n => n.Name == name);

    /// <summary>Whether any edge is int16 (the exported model then needs opset 21).</summary>
    public bool UsesInt16 => Nodes.Any(n => !n.ShapeOnly &&
        (n.Inputs.Any(i => i.QType == QType.Int16 && !i.Fused) || n.Outputs.Any(o => o.QType == QType.Int16)));

    /// <summary>Node counts by compute qtype, shape-only nodes excluded.</summary>
    public IReadOnlyDictionary<QType, int> CountByQType()
    {
        var counts = Enum.GetValues<QType>().ToDictionary(t => t, _ => 0);
        foreach (var n in Nodes) if (!n.ShapeOnly) counts[n.Compute]++;
        return counts;
    }

    /// <summary>
    /// The change log as text, one line per change with aligned columns; byte-identical for the same plan
    /// (qconfig_changelogs.txt).
    /// </summary>
    public string RenderChangeLog()
    {
        var sb = new StringBuilder();
        sb.Append("# precision change log: ").Append(ChangeLog.Count.ToString(CultureInfo.InvariantCulture)).Append(" automatic change(s)\n");
        if (ChangeLog.Count == 0) return sb.ToString();
        var rows = ChangeLog.Select(c => new[] { c.NodeName, c.OpType, c.SiteText, QTypeText(c.From), QTypeText(c.To), c.Reason }).ToList();
        Reports.TextTable.Aligned(sb, ["node", "op", "where", "from", "to", "reason"], rows);
        return sb.ToString();
    }

    /// <summary>The config spelling of a qtype (int8, int16, float16, float32).</summary>
    public static string QTypeText(QType t) => t switch
    {
        QType.Int8 => "int8",
        QType.Int16 => "int16",
        QType.Float16 => "float16",
        _ => "float32",
    };
}
