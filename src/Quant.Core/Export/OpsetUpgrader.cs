using Quant.Onnx;

namespace Quant.Core.Export;

/// <summary>
/// Rewrites default-domain nodes written for opset <c>from</c> so that they mean the same under opset <c>to</c>
/// (QDQ needs opset 13, int16 QDQ opset 21, and PaddleOCR exports are opset 9/11). Only the schema changes
/// between opset 7 and 21 that alter how a node is written are handled; an op whose schema changed in a way
/// not handled here is refused by name rather than silently reinterpreted.
/// </summary>
internal sealed class OpsetUpgrader(long from, long to, Graph graph, Func<string, string> unique, Func<string, int?> rankOf)
{
    /// <summary>Ops whose meaning (as written in a file) did not change between opset 7 and 21.</summary>
    private static readonly HashSet<string> Stable = new(StringComparer.Ordinal)
    {
        "Abs", "Acos", "Acosh", "Add", "And", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan", "Atanh", "AveragePool",
        "Cast", "Ceil", "Concat", "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "Cos", "Cosh", "CumSum",
        "DepthToSpace", "DequantizeLinear", "Div", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand", "Flatten", "Floor",
        "Gather", "GatherElements", "GatherND", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Greater", "GreaterOrEqual",
        "HardSigmoid", "HardSwish", "Identity", "InstanceNormalization", "IsInf", "IsNaN", "LayerNormalization", "LeakyRelu",
        "Less", "LessOrEqual", "Log", "LRN", "MatMul", "Max", "MaxPool", "Mean", "Min", "Mod", "Mul", "Neg", "NonZero", "Not",
        "OneHot", "Or", "Pow", "PRelu", "QuantizeLinear", "Range", "Reciprocal", "Relu", "Reshape", "Resize", "Round",
        "ScatterND", "Selu", "Shape", "Sigmoid", "Sign", "Sin", "Sinh", "Size", "Softplus", "Softsign", "SpaceToDepth",
        "Sqrt", "Sub", "Sum", "Tan", "Tanh", "Tile", "Transpose", "Where", "Xor",
    };

    private static readonly HashSet<string> ReduceOps = new(StringComparer.Ordinal)
    {
        "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSumSquare",
    };

    private bool Crossing(long version) => from < version && to >= version;

    private Exception Refuse(Node n, string why) =>
        new InvalidOperationException($"cannot raise {n.Describe()} from opset {from} to {to}: {why}");

    /// <summary>The nodes that replace <paramref name="n"/> (usually just <paramref name="n"/>, rewritten in place).</summary>
    /// <exception cref="InvalidOperationException">an op or attribute form this upgrader does not handle</exception>
    public IReadOnlyList<Node> Upgrade(Node n)
    {
        if (!n.IsDefaultDomain || from >= to) return [n];
        if (from < 7) throw Refuse(n, "models below opset 7 (legacy broadcasting) are not supported");
        string op = n.OpType;
        switch (op)
        {
            case "Clip" when Crossing(11):
                AttributesToInputs(n, ("min", TensorFromFloatAttr), ("max", TensorFromFloatAttr));
                return [n];
            case "Slice" when Crossing(10):
                AttributesToInputs(n, ("starts", TensorFromInts), ("ends", TensorFromInts), ("axes", TensorFromInts));
                return [n];
            case "Squeeze" or "Unsqueeze" when Crossing(13):
                AttributesToInputs(n, ("axes", TensorFromInts));
                return [n];
            case "ReduceSum" when Crossing(13):
                AttributesToInputs(n, ("axes", TensorFromInts));
                return [n];
            case var _ when ReduceOps.Contains(op) && Crossing(18):
                AttributesToInputs(n, ("axes", TensorFromInts));
                return [n];
            case "Split":
                if (Crossing(13)) AttributesToInputs(n, ("split", TensorFromInts));
                if (Crossing(18) && n.InputOrNull(1) is null) n.Set(AttributeValue.Of("num_outputs", (long)n.Outputs.Count));
                return [n];
            case "Pad" when Crossing(11):
                if (n.Has("paddings")) throw Refuse(n, "the opset 1 'paddings' form is not supported");
                AttributesToInputs(n, ("pads", TensorFromInts), ("value", TensorFromFloatAttr));
                return [n];
            case "TopK" when Crossing(10):
                AttributesToInputs(n, ("k", (name, a) => TensorData.FromInt64s(name, [1], [a.Int])));
                return [n];
            case "Softmax" or "LogSoftmax" or "Hardmax" when Crossing(13):
                return Softmax(n);
            case "Dropout":
                if (n.Outputs.Count > 1 && n.Outputs[1].Length > 0) throw Refuse(n, "its mask output is used");
                return [new Node(n.Name, "Identity", n.Domain, [n.Inputs[0]], [n.Outputs[0]])];
            case "BatchNormalization":
                if (n.Has("spatial") && n.GetInt("spatial", 1) != 1) throw Refuse(n, "spatial=0 has no later equivalent");
                n.Attributes.Remove("spatial");
                if (Crossing(14) && n.Outputs.Skip(1).Any(o => o.Length > 0)) throw Refuse(n, "its training-mode outputs are used");
                return [n];
            case "Upsample":
                throw Refuse(n, "Upsample is deprecated; graph preparation should turn it into Resize first");
            case "Resize" when from < 11:
                throw Refuse(n, "the opset 10 Resize form is not supported");
        }
        if (Stable.Contains(op) || ReduceOps.Contains(op) || op is "Clip" or "Slice" or "Squeeze" or "Unsqueeze" or "ReduceSum" or "Softmax" or "LogSoftmax" or "Hardmax" or "Pad" or "TopK")
            return [n];
        throw Refuse(n, $"no rule for {op}; supported ops are listed in Quant.Core/Export/OpsetUpgrader.cs");
    }

    /// <summary>Before opset 13 Softmax flattened to 2-D at the axis; from 13 it normalizes along one axis.</summary>
    private IReadOnlyList<Node> Softmax(Node n)
    {
        long axis = n.GetInt("axis", 1);
        var rank = rankOf(n.Inputs[0]) ?? throw Refuse(n, $"the rank of '{n.Inputs[0]}' is unknown");
        if (axis < 0) axis += rank;
        if (axis == rank - 1)
        {
            n.Set(AttributeValue.Of("axis", axis));
            return [n];
        }
        var baseName = n.Outputs[0];
        string shape = unique(baseName + "_shape"), flat = unique(baseName + "_2d"), y2d = unique(baseName + "_2d_out");
        var shapeNode = new Node(shape, "Shape", "", [n.Inputs[0]], [shape]);
        var flatten = new Node(flat, "Flatten", "", [n.Inputs[0]], [flat]);
        flatten.Set(AttributeValue.Of("axis", axis));
        var soft = new Node(n.Name, n.OpType, n.Domain, [flat], [y2d]);
        soft.Set(AttributeValue.Of("axis", 1L));
        var reshape = new Node(unique(baseName + "_reshape"), "Reshape", "", [y2d, shape], [n.Outputs[0]]);
        return [shapeNode, flatten, soft, reshape];
    }

    /// <summary>Moves attributes to inputs 1..k in order, leaving omitted ones empty and dropping trailing empties.</summary>
    private void AttributesToInputs(Node n, params (string Attribute, Func<string, AttributeValue, TensorData> Make)[] specs)
    {
        if (n.Inputs.Count > 1) throw Refuse(n, "it has both the attribute form and extra inputs");
        var added = new List<string>();
        foreach (var (attr, make) in specs)
        {
            if (!n.Attributes.TryGetValue(attr, out var a)) { added.Add(""); continue; }
            var name = unique($"{n.Outputs[0]}_{attr}");
            graph.Initializers[name] = make(name, a);
            n.Attributes.Remove(attr);
            added.Add(name);
        }
        while (added.Count > 0 && added[^1].Length == 0) added.RemoveAt(added.Count - 1);
        n.Inputs.AddRange(added);
    }

    private static TensorData TensorFromInts(string name, AttributeValue a) => TensorData.FromInt64s(name, [a.Ints.Length], a.Ints);

    private static TensorData TensorFromFloatAttr(string name, AttributeValue a) => TensorData.FromFloats(name, [], [a.Float]);
}
