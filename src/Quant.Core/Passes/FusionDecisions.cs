using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>
/// Decides, for every Conv/ConvTranspose followed by an activation, whether the target runs the pair fused
/// (then the exporter places no quantization point between them) and records why not when it does not.
/// The graph is not changed. Recognised activations: single activation ops (a HardSwish that composite fusion
/// made one op among them) and, when composite fusion is off, HardSwish written out (<see cref="HardSwishPattern"/>).
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

            // Written out when composite fusion is off (otherwise it is one HardSwish node by now).
            if (HardSwishPattern.FromInput(s, y) is { } hs)
            {
                var others = readers.Where(r => !hs.Nodes.Contains(r)).ToList();
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
        if (activation == "Clip" && PatternValues.ClipBounds(s, nodes[0]) is null) return No("Clip bounds not constant");
        return new FusionRecord(conv.Name, conv.OpType, activation, names, output, true, $"{shown} reads only the {conv.OpType} output");
    }
}
