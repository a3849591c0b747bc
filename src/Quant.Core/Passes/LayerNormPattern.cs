using static Quant.Core.Passes.PatternValues;
using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>
/// LayerNormalization written out: d = x − ReduceMean(x), y = d / Sqrt(ReduceMean(d²) + ε) [· γ] [+ β] over the same
/// trailing axes, with d² as Pow(d, 2) or Mul(d, d) and the division as Div or Mul by Reciprocal — the form Paddle,
/// TensorFlow and older PyTorch exports write. γ and β become the fused op's Scale and B in the normalized shape
/// (a missing γ is ones, a missing β is omitted).
/// </summary>
internal static class LayerNormPattern
{
    /// <summary>The written-out LayerNorm whose first ReduceMean (the mean of x) is <paramref name="mean"/>, or null.</summary>
    public static CompositeMatch? At(PassState s, Node mean, Func<string, Dim[]?> shapeOf)
    {
        if (!Is(mean, "ReduceMean", mean.Inputs.Count) || mean.Inputs.Count == 0) return null;
        string x = mean.Inputs[0];
        if (Axes(s, mean) is not { } axes) return null;
        var sub = SingleReader(s, mean.Outputs[0]);
        if (!Is(sub, "Sub", 2) || sub!.Inputs[0] != x || sub.Inputs[1] != mean.Outputs[0]) return null;
        string d = sub.Outputs[0];
        var readers = s.ConsumersOf(d);
        if (readers.Count != 2 || s.IsGraphOutput(d)) return null;

        // d² and the normalization, in either order among d's two readers.
        var square = readers.FirstOrDefault(r => Is(r, "Pow", 2) && r.Inputs[0] == d && Near(Scalar(s, r.Inputs[1]), 2)
                                                 || Is(r, "Mul", 2) && r.Inputs[0] == d && r.Inputs[1] == d);
        if (square is null) return null;
        var normalize = readers.Single(r => !ReferenceEquals(r, square));
        var variance = SingleReader(s, square.Outputs[0]);
        if (!Is(variance, "ReduceMean", variance?.Inputs.Count ?? 0) || variance!.Inputs[0] != square.Outputs[0]) return null;
        if (Axes(s, variance) is not { } axes2 || !axes.SequenceEqual(axes2)) return null;
        var addEps = SingleReader(s, variance.Outputs[0]);
        if (!Is(addEps, "Add", 2) || ScalarOperand(s, addEps!, variance.Outputs[0]) is not { } epsilon || !(epsilon >= 0)) return null;
        var sqrt = SingleReader(s, addEps.Outputs[0]);
        if (!Is(sqrt, "Sqrt", 1)) return null;

        var nodes = new List<Node> { mean, sub, square, variance, addEps, sqrt };
        if (Is(normalize, "Div", 2) && normalize.Inputs[0] == d && normalize.Inputs[1] == sqrt!.Outputs[0]) { }
        else if (Is(normalize, "Mul", 2) && Other(normalize, d) is { } r && s.ProducerOf(r) is { } rec
                 && Is(rec, "Reciprocal", 1) && rec.Inputs[0] == sqrt!.Outputs[0])
            nodes.Add(rec);
        else return null;
        nodes.Add(normalize);

        // Optional γ then β, constants.
        string output = normalize.Outputs[0];
        string? gamma = null, beta = null;
        if (SingleReader(s, output) is { } mul && Is(mul, "Mul", 2) && Other(mul, output) is { } g && s.Constant(g) is not null)
        {
            gamma = g;
            nodes.Add(mul);
            output = mul.Outputs[0];
        }
        if (SingleReader(s, output) is { } add && Is(add, "Add", 2) && Other(add, output) is { } bn && s.Constant(bn) is not null)
        {
            beta = bn;
            nodes.Add(add);
            output = add.Outputs[0];
        }

        // The axes must be the trailing ones and the normalized shape known, so Scale and B can take its shape.
        if (shapeOf(x) is not { } shape) return null;
        int rank = shape.Length;
        var sorted = axes.Select(a => a < 0 ? a + rank : a).Order().ToArray();
        if (sorted.Length == 0 || sorted[0] < 0 || sorted[^1] != rank - 1 || sorted.Distinct().Count() != sorted.Length
            || sorted[^1] - sorted[0] != sorted.Length - 1) return null;
        int axis = (int)sorted[0];
        var norm = shape[axis..];
        if (norm.Any(dim => !dim.IsKnown)) return null;
        long[] normDims = norm.Select(dim => dim.Value).ToArray();

        var constants = new List<TensorData>();
        string? Param(string? given, float fill, string what)
        {
            if (given is null) return fill == 0 ? null : Add(constants, s, $"{output}.{what}", normDims, _ => fill);
            var t = s.Constant(given)!;
            if (t.Type != ElementType.Float || !BroadcastsTo(t.Dims, normDims)) return "!";
            if (t.Dims.SequenceEqual(normDims)) return given;
            var v = t.As<float>().ToArray();
            return Add(constants, s, $"{given}.{what}", normDims, i => v[SourceIndex(i, t.Dims, normDims)]);
        }
        var scale = Param(gamma, 1, "scale");
        var bias = Param(beta, 0, "bias");
        if (scale == "!" || bias == "!") return null;

        List<string> inputs = bias is null ? [x, scale!] : [x, scale!, bias];
        return new("LayerNormalization", nodes, inputs, output,
            [AttributeValue.Of("axis", (long)axis), AttributeValue.Of("epsilon", epsilon)], constants, 17);
    }

    /// <summary>The ReduceMean's axes (attribute before opset 18, constant input from 18), when it keeps the reduced dims.</summary>
    private static long[]? Axes(PassState s, Node reduce)
    {
        if (reduce.GetInt("keepdims", 1) != 1) return null;
        if (reduce.InputOrNull(1) is { } a)
            return s.Constant(a) is { Type: ElementType.Int64 } t ? t.As<long>().ToArray() : null;
        return reduce.GetInts("axes");
    }

    private static bool BroadcastsTo(long[] dims, long[] target)
    {
        if (dims.Length > target.Length && dims.Take(dims.Length - target.Length).Any(d => d != 1)) return false;
        for (int i = 1; i <= Math.Min(dims.Length, target.Length); i++)
            if (dims[^i] != 1 && dims[^i] != target[^i]) return false;
        return true;
    }

    /// <summary>The element of a tensor of shape <paramref name="dims"/> that broadcasts to element <paramref name="i"/> of <paramref name="target"/>.</summary>
    private static int SourceIndex(int i, long[] dims, long[] target)
    {
        int src = 0, stride = 1;
        for (int k = 1; k <= target.Length; k++)
        {
            int coord = (int)(i % target[^k]);
            i /= (int)target[^k];
            if (k <= dims.Length && dims[^k] != 1) src += coord * stride;
            if (k <= dims.Length) stride *= (int)dims[^k];
        }
        return src;
    }

    private static string Add(List<TensorData> constants, PassState s, string wish, long[] dims, Func<int, float> value)
    {
        var name = s.FreshName(wish);
        int n = (int)dims.Aggregate(1L, (a, b) => a * b);
        constants.Add(TensorData.FromFloats(name, dims, Enumerable.Range(0, n).Select(value).ToArray()));
        return name;
    }
}
