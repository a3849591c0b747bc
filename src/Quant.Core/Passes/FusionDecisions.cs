using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>
/// Decides, for every Conv/ConvTranspose followed by an activation, whether the target runs the pair fused
/// (then the exporter places no quantization point between them) and records why not when it does not.
/// The graph is not changed. Recognised activations: single activation ops, HardSigmoid(alpha 1/6, beta 0.5)
/// times its input, and the decomposed HardSwish x * Clip(x + 3, 0, 6) / 6 Paddle exports.
/// </summary>
internal static class FusionDecisions
{
    private static readonly HashSet<string> Activations = new(StringComparer.Ordinal)
    {
        "Relu", "Clip", "HardSwish", "HardSigmoid", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Elu", "Selu",
        "Softplus", "Softsign", "Gelu", "Mish", "ThresholdedRelu",
    };

    public static List<FusionRecord> Run(PassState s, PreparationOptions options)
    {
        var records = new List<FusionRecord>();
        foreach (var conv in s.Graph.Nodes.ToList())
        {
            if (!conv.IsDefaultDomain || conv.OpType is not ("Conv" or "ConvTranspose") || conv.Outputs.Count == 0) continue;
            var y = conv.Outputs[0];
            var readers = s.ConsumersOf(y);

            if (MatchHardSwish(s, y, readers) is { } hs)
            {
                var others = readers.Where(r => !hs.Readers.Contains(r)).ToList();
                records.Add(Decide(s, options, conv, y, "HardSwish", hs.Nodes, hs.Output, others, $"decomposed HardSwish ({string.Join("+", hs.Nodes.Select(n => n.OpType))})"));
                continue;
            }
            foreach (var act in readers.Where(r => r.IsDefaultDomain && Activations.Contains(r.OpType)))
            {
                var others = readers.Where(r => !ReferenceEquals(r, act)).ToList();
                records.Add(Decide(s, options, conv, y, act.OpType, [act], act.Outputs[0], others, act.OpType));
            }
            // An activation behind a BatchNormalization that could not be folded cannot fuse with the conv either.
            foreach (var bn in readers.Where(r => r.OpType == "BatchNormalization"))
                foreach (var act in s.ConsumersOf(bn.Outputs[0]).Where(r => r.IsDefaultDomain && Activations.Contains(r.OpType)))
                {
                    var why = s.Folds.FirstOrDefault(f => f.Node == bn.Name && f.OpType == "BatchNormalization")?.Reason ?? "it was not folded";
                    records.Add(new FusionRecord(conv.Name, conv.OpType, act.OpType, [bn.Name, act.Name], act.Outputs[0], false,
                        $"BatchNormalization '{bn.Name}' stands between them and could not be folded: {why}"));
                }
        }
        return records;
    }

    private static FusionRecord Decide(PassState s, PreparationOptions options, Node conv, string y, string activation,
        IReadOnlyList<Node> nodes, string output, List<Node> otherReaders, string shown)
    {
        var names = nodes.Select(n => n.Name.Length > 0 ? n.Name : $"{n.OpType} -> {n.Outputs[0]}").ToList();
        FusionRecord No(string reason) => new(conv.Name, conv.OpType, activation, names, output, false, reason);
        if (s.IsGraphOutput(y)) return No($"the {conv.OpType} output '{y}' is also a graph output");
        if (otherReaders.Count > 0)
            return No($"the {conv.OpType} output also feeds {otherReaders.Count} other node(s) ({string.Join(", ", otherReaders.Take(3).Select(r => $"'{r.Name}' ({r.OpType})"))})");
        if (!options.FusibleActivations.Contains(activation)) return No($"activation {activation} not supported for fusion by the target");
        if (activation == "Clip" && ClipBounds(s, nodes[0]) is null) return No("Clip bounds not constant");
        return new FusionRecord(conv.Name, conv.OpType, activation, names, output, true, $"{shown} reads only the {conv.OpType} output");
    }

    /// <summary>The Clip node's (min, max) when known at preparation time (attributes before opset 11, constant inputs after).</summary>
    private static (float Min, float Max)? ClipBounds(PassState s, Node clip)
    {
        if (s.Model.OpsetFor(clip.Domain) < 11)
            return (clip.GetFloat("min", float.MinValue), clip.GetFloat("max", float.MaxValue));
        float lo = float.MinValue, hi = float.MaxValue;
        if (clip.InputOrNull(1) is { } a) { if (Scalar(s, a) is { } v) lo = v; else return null; }
        if (clip.InputOrNull(2) is { } b) { if (Scalar(s, b) is { } v) hi = v; else return null; }
        return (lo, hi);
    }

    private static float? Scalar(PassState s, string name) =>
        s.Constant(name) is { Type: ElementType.Float, ElementCount: 1 } t ? t.As<float>()[0] : null;

    private static bool Near(float? v, double target) => v is { } x && Math.Abs(x - target) <= 1e-4 * Math.Max(1, Math.Abs(target));

    private sealed record HardSwishMatch(List<Node> Nodes, HashSet<Node> Readers, string Output);

    /// <summary>x * HardSigmoid(x; 1/6, 0.5), or x * Clip(x + 3, 0, 6) / 6 with the division before or after the product.</summary>
    private static HardSwishMatch? MatchHardSwish(PassState s, string x, List<Node> readers)
    {
        Node? Single(string v) => s.ConsumersOf(v) is [var only] && !s.IsGraphOutput(v) ? only : null;
        bool IsMulOfX(Node? n, string other) => n is { OpType: "Mul" } && n.Inputs.Count == 2 && n.Inputs.Contains(x) && n.Inputs.Contains(other);
        bool IsDivBySix(Node? n, string v) =>
            n is { OpType: "Div" } && n.Inputs.Count == 2 && n.Inputs[0] == v && Near(Scalar(s, n.Inputs[1]), 6)
            || n is { OpType: "Mul" } && n.Inputs.Count == 2 && n.Inputs.Contains(v) && Near(Scalar(s, n.Inputs[0] == v ? n.Inputs[1] : n.Inputs[0]), 1.0 / 6);

        foreach (var hsig in readers.Where(r => r.OpType == "HardSigmoid"))
        {
            if (!Near(hsig.GetFloat("alpha", 0.2f), 1.0 / 6) || !Near(hsig.GetFloat("beta", 0.5f), 0.5)) continue;
            var mul = Single(hsig.Outputs[0]);
            if (IsMulOfX(mul, hsig.Outputs[0])) return new([hsig, mul!], new(ReferenceEqualityComparer.Instance) { hsig, mul! }, mul!.Outputs[0]);
        }
        foreach (var add in readers.Where(r => r.OpType == "Add" && r.Inputs.Count == 2))
        {
            if (!Near(Scalar(s, add.Inputs[0] == x ? add.Inputs[1] : add.Inputs[0]), 3)) continue;
            var clip = Single(add.Outputs[0]);
            if (clip is not { OpType: "Clip" } || ClipBounds(s, clip) is not { } b || !Near(b.Min, 0) || !Near(b.Max, 6)) continue;
            var next = Single(clip.Outputs[0]);
            if (IsMulOfX(next, clip.Outputs[0]))
            {
                var div = Single(next!.Outputs[0]);
                if (IsDivBySix(div, next.Outputs[0])) return new([add, clip, next, div!], new(ReferenceEqualityComparer.Instance) { add, next }, div!.Outputs[0]);
            }
            else if (IsDivBySix(next, clip.Outputs[0]))
            {
                var mul = Single(next!.Outputs[0]);
                if (IsMulOfX(mul, next.Outputs[0])) return new([add, clip, next, mul!], new(ReferenceEqualityComparer.Instance) { add, mul! }, mul!.Outputs[0]);
            }
        }
        return null;
    }
}
