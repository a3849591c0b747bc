using static Quant.Core.Passes.PatternValues;
using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>
/// HardSwish written out in smaller ops: x * HardSigmoid(x; alpha 1/6, beta 0.5), and x * Clip(x + 3, 0, 6) / 6
/// with the division (or a multiplication by 1/6) before or after the product — the forms Paddle and PyTorch
/// exporters write. Used both to fuse the pieces into one HardSwish and, when fusion is off, to recognise the
/// pieces after a convolution for the fusion decisions.
/// </summary>
internal static class HardSwishPattern
{
    /// <summary>The nodes of one decomposed HardSwish reading <paramref name="x"/>, or null.</summary>
    public static CompositeMatch? FromInput(PassState s, string x)
    {
        foreach (var r in s.ConsumersOf(x))
        {
            var anchor = r.OpType == "Add" ? SingleReader(s, r.Outputs[0]) : r;
            if (anchor is not null && At(s, anchor) is { } m && m.Inputs[0] == x) return m;
        }
        return null;
    }

    /// <summary>The decomposed HardSwish around <paramref name="anchor"/> (its Clip or HardSigmoid node), or null.</summary>
    public static CompositeMatch? At(PassState s, Node anchor)
    {
        if (Is(anchor, "HardSigmoid", 1))
        {
            if (!Near(anchor.GetFloat("alpha", 0.2f), 1.0 / 6) || !Near(anchor.GetFloat("beta", 0.5f), 0.5)) return null;
            string x = anchor.Inputs[0];
            var mul = SingleReader(s, anchor.Outputs[0]);
            if (Is(mul, "Mul", 2) && Other(mul!, anchor.Outputs[0]) == x)
                return Match([anchor, mul!], x);
            return null;
        }
        if (anchor is not { OpType: "Clip", IsDefaultDomain: true } || anchor.Inputs.Count == 0) return null;
        if (ClipBounds(s, anchor) is not { } b || !Near(b.Min, 0) || !Near(b.Max, 6)) return null;
        var add = s.ProducerOf(anchor.Inputs[0]);
        if (!Is(add, "Add", 2)) return null;
        string? input = add!.Inputs.FirstOrDefault(i => Near(ScalarOperand(s, add, i), 3));
        if (input is null || s.Constant(input) is not null) return null;
        var next = SingleReader(s, anchor.Outputs[0]);
        if (next is null) return null;
        if (Is(next, "Mul", 2) && Other(next, anchor.Outputs[0]) == input)
        {
            var div = SingleReader(s, next.Outputs[0]);
            return IsSixth(s, div, next.Outputs[0]) ? Match([add, anchor, next, div!], input) : null;
        }
        if (IsSixth(s, next, anchor.Outputs[0]))
        {
            var mul = SingleReader(s, next.Outputs[0]);
            return Is(mul, "Mul", 2) && Other(mul!, next.Outputs[0]) == input ? Match([add, anchor, next, mul!], input) : null;
        }
        return null;
    }

    /// <summary>v / 6 or v * (1/6).</summary>
    private static bool IsSixth(PassState s, Node? n, string v) =>
        Is(n, "Div", 2) && n!.Inputs[0] == v && Near(Scalar(s, n.Inputs[1]), 6)
        || Is(n, "Mul", 2) && Near(ScalarOperand(s, n!, v), 1.0 / 6);

    private static CompositeMatch Match(List<Node> nodes, string x) =>
        new("HardSwish", nodes, [x], nodes[^1].Outputs[0], [], [], 14);
}
