using Quant.Core.Config;
using Quant.Core.Precision;
using Quant.Onnx;

namespace Quant.Core.Analysis.Sensitivity;

/// <summary>
/// Precision plans that differ from the config's in a few nodes: what an export would plan had node_config set those
/// nodes (or inputs) to float32 or left only them quantized. Copies; the config's plan is never changed.
/// </summary>
internal static class PlanVariants
{
    /// <summary>A copy of <paramref name="plan"/> for <paramref name="model"/> (the same model or a sub-model of its nodes).</summary>
    public static PrecisionPlan Copy(OnnxModel model, IEnumerable<Node> nodes, Func<Node, NodePrecision> source)
    {
        var list = nodes.Select(n => Clone(source(n))).ToList();
        return new PrecisionPlan(model, list, [], []);
    }

    /// <summary>A copy of <paramref name="plan"/> where <paramref name="edit"/> changed the copies of the nodes it is given.</summary>
    public static PrecisionPlan With(PrecisionPlan plan, Func<NodePrecision, bool> selects, Action<NodePrecision> edit)
    {
        var list = plan.Nodes.Select(n =>
        {
            var c = Clone(n);
            if (selects(n)) edit(c);
            return c;
        }).ToList();
        return new PrecisionPlan(plan.Model, list, [], []);
    }

    /// <summary>Every node float32: the float model, as the exporter writes it.</summary>
    public static PrecisionPlan AllFloat(PrecisionPlan plan) => With(plan, _ => true, ToFloat);

    public static NodePrecision Clone(NodePrecision n) => new()
    {
        Node = n.Node, NodeIndex = n.NodeIndex, ShapeOnly = n.ShapeOnly, Compute = n.Compute, Source = n.Source, FusedInto = n.FusedInto,
        Inputs = n.Inputs.Select(i => new InputPrecision
        {
            Index = i.Index, Tensor = i.Tensor, Role = i.Role, QType = i.QType, Fused = i.Fused, Explicit = i.Explicit, ErrorCompensation = i.ErrorCompensation,
        }).ToList(),
        Outputs = n.Outputs.Select(o => new OutputPrecision { Index = o.Index, Tensor = o.Tensor, QType = o.QType, IsModelOutput = o.IsModelOutput }).ToList(),
    };

    /// <summary>What node_config <c>qtype: float32</c> makes of a node.</summary>
    public static void ToFloat(NodePrecision n)
    {
        if (n.ShapeOnly) return;
        n.Compute = QType.Float32;
        n.FusedInto = null;
        foreach (var i in n.Inputs) FloatInput(i);
        foreach (var o in n.Outputs) if (o.QType is not null) o.QType = QType.Float32;
    }

    public static void FloatInput(InputPrecision i)
    {
        if (i.QType is null) return;
        i.QType = QType.Float32;
        i.Fused = false;
        i.ErrorCompensation = false;
    }

    /// <summary>Sets <paramref name="target"/>'s qtypes to <paramref name="from"/>'s (same node).</summary>
    public static void CopyInto(NodePrecision target, NodePrecision from)
    {
        target.Compute = from.Compute;
        target.FusedInto = from.FusedInto;
        for (int k = 0; k < target.Inputs.Count; k++) CopyInto(target.Inputs[k], from.Inputs[k]);
        for (int k = 0; k < target.Outputs.Count; k++) target.Outputs[k].QType = from.Outputs[k].QType;
    }

    public static void CopyInto(InputPrecision target, InputPrecision from)
    {
        target.QType = from.QType;
        target.Fused = from.Fused;
        target.ErrorCompensation = from.ErrorCompensation;
    }

    /// <summary>Whether the two plans of one node make the exporter write the same thing.</summary>
    public static bool Same(NodePrecision a, NodePrecision b) =>
        a.Compute == b.Compute && ReferenceEquals(a.FusedInto, b.FusedInto)
        && a.Inputs.Zip(b.Inputs).All(p => p.First.QType == p.Second.QType && p.First.Fused == p.Second.Fused && p.First.ErrorCompensation == p.Second.ErrorCompensation)
        && a.Outputs.Zip(b.Outputs).All(p => p.First.QType == p.Second.QType);

    /// <summary>True when the node converts anything (an input, a weight or an output is not float32).</summary>
    public static bool Converts(NodePrecision n) =>
        !n.ShapeOnly && (n.Inputs.Any(i => i.QType is { } q && q != QType.Float32 && !i.Fused) || n.Outputs.Any(o => o.QType is { } q && q != QType.Float32)
                         || (n.Compute != QType.Float32 && n.FusedInto is not null));
}
