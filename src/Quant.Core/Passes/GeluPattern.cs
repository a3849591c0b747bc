using static Quant.Core.Passes.PatternValues;
using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>
/// GELU in its exact (erf) form written out: 0.5 · x · (1 + Erf(x / √2)), with x / √2 as Div by √2 or Mul by 1/√2,
/// the halving as Mul by 0.5 or Div by 2, and the three factors multiplied in any order — what PyTorch and Paddle
/// exports write before opset 20 had Gelu.
/// </summary>
internal static class GeluPattern
{
    private static readonly double Sqrt2 = Math.Sqrt(2);

    /// <summary>The written-out GELU around the <paramref name="erf"/> node, or null.</summary>
    public static CompositeMatch? At(PassState s, Node erf)
    {
        if (!Is(erf, "Erf", 1)) return null;
        var scaled = s.ProducerOf(erf.Inputs[0]);
        string? x = scaled switch
        {
            _ when Is(scaled, "Div", 2) && Near(Scalar(s, scaled!.Inputs[1]), Sqrt2) => scaled.Inputs[0],
            _ when Is(scaled, "Mul", 2) => scaled!.Inputs.FirstOrDefault(i => Near(ScalarOperand(s, scaled, i), 1 / Sqrt2)),
            _ => null,
        };
        if (x is null || s.Constant(x) is not null) return null;
        var plusOne = SingleReader(s, erf.Outputs[0]);
        if (!Is(plusOne, "Add", 2) || !Near(ScalarOperand(s, plusOne!, erf.Outputs[0]), 1)) return null;
        string a = plusOne!.Outputs[0];
        var nodes = new List<Node> { scaled!, erf, plusOne };
        var next = SingleReader(s, a);
        if (next is null) return null;

        // (x · a) · ½
        if (Is(next, "Mul", 2) && Other(next, a) == x && SingleReader(s, next.Outputs[0]) is { } h1 && IsHalf(s, h1, next.Outputs[0]))
            return Match(nodes, [next, h1], x);
        // x · (a · ½)
        if (IsHalf(s, next, a) && SingleReader(s, next.Outputs[0]) is { } m2 && Is(m2, "Mul", 2) && Other(m2, next.Outputs[0]) == x)
            return Match(nodes, [next, m2], x);
        // (x · ½) · a
        if (Is(next, "Mul", 2) && Other(next, a) is { } hx && s.ProducerOf(hx) is { } half && IsHalf(s, half, x))
            return Match([half, .. nodes], [next], x);
        return null;
    }

    /// <summary>v · 0.5 or v / 2.</summary>
    private static bool IsHalf(PassState s, Node n, string v) =>
        Is(n, "Mul", 2) && Near(ScalarOperand(s, n, v), 0.5)
        || Is(n, "Div", 2) && n.Inputs[0] == v && Near(Scalar(s, n.Inputs[1]), 2);

    private static CompositeMatch Match(List<Node> nodes, List<Node> tail, string x)
    {
        nodes.AddRange(tail);
        return new("Gelu", nodes, [x], tail[^1].Outputs[0], [], [], 20);
    }
}
