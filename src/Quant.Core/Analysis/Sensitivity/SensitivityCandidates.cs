using Quant.Core.Config;
using Quant.Core.Precision;
using Quant.Onnx;

namespace Quant.Core.Analysis.Sensitivity;

/// <summary>
/// One thing whose quantization is scored: <see cref="Name"/> is the node (types node and weight) or the tensor
/// (type activation); <see cref="Node"/> the node (for a tensor: its producer, empty for a model input);
/// <see cref="QType"/> the precision it is scored at; <see cref="Nodes"/> every node whose precision the candidate
/// changes (a GEMM-type node with the activation fused into it count as one candidate).
/// </summary>
public sealed record SensitivityCandidateInfo(string Name, string Node, string OpType, string QType, IReadOnlyList<string> Nodes);

/// <summary>A candidate with what it does to a node's precision in each mode (applied to a copy of the config's plan of that node).</summary>
internal sealed record Candidate(SensitivityCandidateInfo Info, IReadOnlyList<Node> Nodes, Action<NodePrecision> Alone, Action<NodePrecision> Restore);

/// <summary>The candidates of a plan, in graph order.</summary>
internal static class SensitivityCandidates
{
    public static List<Candidate> Of(PrecisionPlan plan, CandidateType type) => type switch
    {
        CandidateType.Weight => Weights(plan),
        CandidateType.Activation => Activations(plan),
        _ => Nodes(plan),
    };

    /// <summary>Nodes that convert anything; an activation fused into a GEMM-type node belongs to that node's candidate.</summary>
    private static List<Candidate> Nodes(PrecisionPlan plan)
    {
        var fused = new Dictionary<Node, List<Node>>(ReferenceEqualityComparer.Instance);
        foreach (var n in plan.Nodes)
        {
            if (n.FusedInto is not { } producer || !PlanVariants.Converts(n)) continue;
            if (!fused.TryGetValue(producer, out var list)) fused[producer] = list = [];
            list.Add(n.Node);
        }
        var result = new List<Candidate>();
        foreach (var np in plan.Nodes)
        {
            if (np.FusedInto is not null || !PlanVariants.Converts(np)) continue;
            var nodes = new List<Node> { np.Node };
            if (fused.TryGetValue(np.Node, out var members)) nodes.AddRange(members);
            var info = new SensitivityCandidateInfo(np.Name, np.Name, np.OpType, PrecisionPlan.QTypeText(np.Compute), nodes.Select(n => n.Name).ToList());
            result.Add(new Candidate(info, nodes, _ => { }, PlanVariants.ToFloat));
        }
        return result;
    }

    /// <summary>Nodes with weights read as int8, int16 or float16: only those weight inputs change.</summary>
    private static List<Candidate> Weights(PrecisionPlan plan)
    {
        static bool IsWeight(InputPrecision i) => i.Role == InputRole.Weight && i.QType is { } q && q != QType.Float32;
        var result = new List<Candidate>();
        foreach (var np in plan.Nodes)
        {
            if (np.ShapeOnly) continue;
            var weights = np.Inputs.Where(IsWeight).Select(i => i.Index).ToHashSet();
            if (weights.Count == 0) continue;
            var q = np.Inputs.First(IsWeight).QType!.Value;
            var info = new SensitivityCandidateInfo(np.Name, np.Name, np.OpType, PrecisionPlan.QTypeText(q), [np.Name]);
            result.Add(new Candidate(info, [np.Node],
                n =>
                {
                    var kept = n.Inputs.Where(i => weights.Contains(i.Index)).Select(i => (i.Index, i.QType)).ToList();
                    PlanVariants.ToFloat(n);
                    foreach (var (index, qt) in kept) n.Inputs[index].QType = qt;
                },
                n => { foreach (var i in n.Inputs) if (weights.Contains(i.Index)) PlanVariants.FloatInput(i); }));
        }
        return result;
    }

    /// <summary>
    /// Activation tensors some node reads converted (int8, int16, float16; not fused into a GEMM-type node) or whose
    /// producer rounds them (float16 outputs, quantized model outputs): every edge of the tensor changes.
    /// </summary>
    private static List<Candidate> Activations(PrecisionPlan plan)
    {
        var byTensor = new Dictionary<string, (List<Node> Nodes, QType QType)>(StringComparer.Ordinal);
        var order = new List<string>();
        void Add(string tensor, Node node, QType q)
        {
            if (!byTensor.TryGetValue(tensor, out var e)) { byTensor[tensor] = e = ([], q); order.Add(tensor); }
            if (!e.Nodes.Contains(node)) e.Nodes.Add(node);
        }
        var producers = plan.Model.Graph.Producers();
        foreach (var np in plan.Nodes)
        {
            if (np.ShapeOnly) continue;
            foreach (var i in np.Inputs)
                if (i.Role == InputRole.Activation && !i.Fused && i.QType is { } q && q != QType.Float32 && i.Tensor.Length > 0) Add(i.Tensor, np.Node, q);
            foreach (var o in np.Outputs)
                if (o.QType is { } q && (q == QType.Float16 || (o.IsModelOutput && q is QType.Int8 or QType.Int16))) Add(o.Tensor, np.Node, q);
        }
        var result = new List<Candidate>();
        // Graph order of the producers (model inputs first), so the list reads top to bottom.
        var position = new Dictionary<Node, int>(ReferenceEqualityComparer.Instance);
        for (int k = 0; k < plan.Nodes.Count; k++) position[plan.Nodes[k].Node] = k;
        foreach (var tensor in order.OrderBy(t => producers.TryGetValue(t, out var p) ? position[p] : -1).ThenBy(t => order.IndexOf(t)))
        {
            var (nodes, q) = byTensor[tensor];
            producers.TryGetValue(tensor, out var producer);
            // The producer's plan matters too (its output conversions), so it is always among the changed nodes.
            if (producer is not null && !nodes.Contains(producer)) nodes.Insert(0, producer);
            var info = new SensitivityCandidateInfo(tensor, producer?.Name ?? "", producer?.OpType ?? "input", PrecisionPlan.QTypeText(q), nodes.Select(n => n.Name).ToList());
            result.Add(new Candidate(info, nodes,
                n =>
                {
                    var original = PlanVariants.Clone(n);
                    PlanVariants.ToFloat(n);
                    foreach (var i in n.Inputs) if (i.Tensor == tensor && i.Role == InputRole.Activation) PlanVariants.CopyInto(i, original.Inputs[i.Index]);
                    foreach (var o in n.Outputs) if (o.Tensor == tensor) o.QType = original.Outputs[o.Index].QType;
                },
                n =>
                {
                    foreach (var i in n.Inputs) if (i.Tensor == tensor && i.Role == InputRole.Activation) PlanVariants.FloatInput(i);
                    foreach (var o in n.Outputs) if (o.Tensor == tensor && o.QType is not null) o.QType = QType.Float32;
                }));
        }
        return result;
    }
}
