using Quant.Onnx;
using Quant.Onnx.Shapes;

namespace Quant.Core.Passes;

/// <summary>
/// One composite op found written out in smaller ops: the nodes to replace, the fused op's inputs, output,
/// attributes and new constants, and the opset that introduced the op.
/// </summary>
internal sealed record CompositeMatch(string OpType, List<Node> Nodes, List<string> Inputs, string Output,
    List<AttributeValue> Attributes, List<TensorData> Constants, long SinceOpset);

/// <summary>
/// Replaces composite ops written out in smaller ops — HardSwish, LayerNormalization, Gelu (erf form) — by the one
/// op, so quantization points sit at the composite's boundary instead of between its pieces (a LayerNorm split
/// into nine ops would get nine int8 roundings, its variance among them). The fused op's output keeps the last
/// piece's output name, so everything downstream reads the same value. A model whose opset predates the op is
/// raised to an opset that has it (<see cref="OpsetRaise"/>); when that is impossible, nothing that needs it is fused
/// and the record says why.
/// </summary>
internal static class CompositeFusion
{
    public static List<CompositeRecord> Run(PassState s)
    {
        var matches = new List<CompositeMatch>();
        var taken = new HashSet<Node>(ReferenceEqualityComparer.Instance);
        var shapes = new Lazy<Dictionary<string, ValueInfo>>(() => Shapes(s.Model));
        Dim[]? ShapeOf(string v) => shapes.Value.TryGetValue(v, out var vi) ? vi.Shape : s.Graph.Inputs.FirstOrDefault(i => i.Name == v)?.Shape;
        foreach (var n in s.Graph.TopologicalOrder())
        {
            if (taken.Contains(n) || !n.IsDefaultDomain) continue;
            var m = n.OpType switch
            {
                "Clip" or "HardSigmoid" => HardSwishPattern.At(s, n),
                "ReduceMean" => LayerNormPattern.At(s, n, ShapeOf),
                "Erf" => GeluPattern.At(s, n),
                _ => null,
            };
            if (m is null || m.Nodes.Any(taken.Contains) || !SelfContained(s, m)) continue;
            matches.Add(m);
            taken.UnionWith(m.Nodes);
        }
        if (matches.Count == 0) return [];

        long opset = s.Model.OpsetFor("");
        long need = matches.Max(m => m.SinceOpset);
        long target = OpsetRaise.Target(need);
        // Ranks as the model has them before fusion (fused values keep their names and ranks).
        var raise = new OpsetRaise(s, v => ShapeOf(v)?.Length);
        string? refused = need > opset ? raise.WhyNot(target) : null;
        var records = new List<CompositeRecord>();
        var fusedNodes = new HashSet<Node>(ReferenceEqualityComparer.Instance);
        foreach (var m in matches)
        {
            var pieces = m.Nodes.Select(Label).ToList();
            if (refused is not null && m.SinceOpset > opset)
            {
                records.Add(new CompositeRecord("", m.OpType, pieces, m.Inputs[0], m.Output, false,
                    $"{m.OpType} needs opset {m.SinceOpset} and the model's opset {opset} cannot be raised: {refused}"));
                continue;
            }
            var fused = Apply(s, m, pieces);
            fusedNodes.Add(fused);
            records.Add(new CompositeRecord(fused.Name, m.OpType, pieces, m.Inputs[0], m.Output, true,
                $"{pieces.Count} nodes computing {m.OpType} replaced by one {m.OpType} node"));
        }
        if (refused is null && need > opset) raise.Run(target, fusedNodes);
        return records;
    }

    /// <summary>Inferred value shapes; none when inference refuses the model (then nothing shape-dependent is fused).</summary>
    private static Dictionary<string, ValueInfo> Shapes(OnnxModel model)
    {
        try { return ShapeInference.Run(model); }
        catch (OnnxFormatException) { return []; }
    }

    private static string Label(Node n) => n.Name.Length > 0 ? n.Name : $"{n.OpType} -> {n.Outputs[0]}";

    /// <summary>Nothing outside the match reads a value computed inside it, and only its output leaves it.</summary>
    private static bool SelfContained(PassState s, CompositeMatch m)
    {
        var inside = new HashSet<Node>(m.Nodes, ReferenceEqualityComparer.Instance);
        foreach (var n in m.Nodes)
            foreach (var o in n.Outputs)
            {
                if (o.Length == 0 || o == m.Output) continue;
                if (s.IsGraphOutput(o) || s.ConsumersOf(o).Any(c => !inside.Contains(c))) return false;
            }
        return m.Nodes.Count(n => n.Outputs.Contains(m.Output)) == 1;
    }

    private static Node Apply(PassState s, CompositeMatch m, List<string> pieces)
    {
        var used = new HashSet<string>(s.Graph.Nodes.Select(n => n.Name), StringComparer.Ordinal);
        // The output's name is what the user's tools call the composite (Paddle: "hardswish_3.tmp_0", "layer_norm_2.tmp_2").
        var name = m.Output;
        for (int k = 1; used.Contains(name); k++) name = $"{m.Output}_{k}";
        var fused = new Node(name, m.OpType, "", m.Inputs, [m.Output]);
        foreach (var a in m.Attributes) fused.Set(a);
        foreach (var c in m.Constants)
        {
            // Names were chosen when the match was found; an earlier fusion may have taken one since.
            var at = fused.Inputs.IndexOf(c.Name);
            if (s.Graph.Initializers.ContainsKey(c.Name)) c.Name = s.FreshName(c.Name);
            fused.Inputs[at] = c.Name;
            s.Graph.Initializers[c.Name] = c;
        }

        var last = m.Nodes.Single(n => n.Outputs.Contains(m.Output));
        s.Graph.Nodes.Insert(s.Graph.Nodes.IndexOf(last), fused);
        string why = $"fused into {m.OpType} '{name}'";
        foreach (var n in m.Nodes)
        {
            s.Remove(n, why);
            foreach (var o in n.Outputs)
                if (o.Length > 0 && o != m.Output)
                    s.Vanish(o, $"a value inside the {m.OpType} '{name}' that graph preparation fused from {string.Join(", ", pieces)}");
        }
        return fused;
    }
}
