using System.Diagnostics.CodeAnalysis;
using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>What the pattern matchers ask of the graph: constant scalars, Clip bounds, the one reader of a value.</summary>
internal static class PatternValues
{
    /// <summary>The value of a constant float tensor holding one element (any rank), or null.</summary>
    public static float? Scalar(PassState s, string name) =>
        s.Constant(name) is { Type: ElementType.Float, ElementCount: 1 } t ? t.As<float>()[0] : null;

    /// <summary>Whether <paramref name="v"/> is within float-constant rounding (1e-4 relative) of <paramref name="target"/>.</summary>
    public static bool Near(float? v, double target) => v is { } x && Math.Abs(x - target) <= 1e-4 * Math.Max(1, Math.Abs(target));

    /// <summary>The other input of a two-input node, when one of them is <paramref name="known"/>.</summary>
    public static string? Other(Node n, string known) =>
        n.Inputs.Count != 2 ? null : n.Inputs[0] == known ? n.Inputs[1] : n.Inputs[1] == known ? n.Inputs[0] : null;

    /// <summary>The constant scalar operand of a two-input node whose other operand is <paramref name="x"/>.</summary>
    public static float? ScalarOperand(PassState s, Node n, string x) => Other(n, x) is { } c ? Scalar(s, c) : null;

    /// <summary>The only node reading <paramref name="value"/>, when exactly one does and it is not a graph output.</summary>
    public static Node? SingleReader(PassState s, string value) =>
        s.ConsumersOf(value) is [var only] && !s.IsGraphOutput(value) ? only : null;

    public static bool Is([NotNullWhen(true)] Node? n, string opType, int inputs) => n is { IsDefaultDomain: true } && n.OpType == opType && n.Inputs.Count == inputs;

    /// <summary>The Clip node's (min, max) when known at preparation time (attributes before opset 11, constant inputs after).</summary>
    public static (float Min, float Max)? ClipBounds(PassState s, Node clip)
    {
        if (s.Model.OpsetFor(clip.Domain) < 11)
            return (clip.GetFloat("min", float.MinValue), clip.GetFloat("max", float.MaxValue));
        float lo = float.MinValue, hi = float.MaxValue;
        if (clip.InputOrNull(1) is { } a) { if (Scalar(s, a) is { } v) lo = v; else return null; }
        if (clip.InputOrNull(2) is { } b) { if (Scalar(s, b) is { } v) hi = v; else return null; }
        return (lo, hi);
    }
}
