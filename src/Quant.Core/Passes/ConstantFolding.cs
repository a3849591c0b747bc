using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>
/// Nodes whose inputs are all constant are evaluated once by the engine (a session over a one-node graph)
/// and replaced by initializers holding their outputs. Anything reading a runtime value — including shape
/// arithmetic that starts from Shape(x) of a graph input — stays, so the model still accepts every input
/// size. Random ops, Q/DQ pairs (quantized weights must stay recognisable) and control flow are not folded,
/// nor nodes whose outputs would be much larger than their inputs.
/// </summary>
internal static class ConstantFolding
{
    private static readonly HashSet<string> NeverFold = new(StringComparer.Ordinal)
    {
        "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
        "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "If", "Loop", "Scan",
    };

    public static void Run(PassState s, PreparationOptions options)
    {
        foreach (var n in s.Graph.TopologicalOrder())
        {
            if (NeverFold.Contains(n.OpType) || n.OpType == "Constant") continue;
            var inputs = n.Inputs.Where(i => i.Length > 0).ToList();
            if (inputs.Count == 0 || inputs.Any(i => s.Constant(i) is null)) continue;
            if (n.Outputs.Any(o => o.Length > 0 && s.IsGraphOutput(o))) continue;
            var values = Evaluate(s.Model, n, inputs.Distinct().Select(i => s.Constant(i)!).ToList());
            if (values is null) continue;
            long inElements = inputs.Sum(i => s.Constant(i)!.ElementCount);
            long outElements = values.Sum(v => (long)(v?.Length ?? 0));
            if (outElements > options.MaxFoldedElements && outElements > inElements) continue;

            for (int k = 0; k < n.Outputs.Count; k++)
                if (n.Outputs[k].Length > 0 && values[k] is { } v) s.Graph.Initializers[n.Outputs[k]] = v.ToData(n.Outputs[k]);
            s.Graph.Nodes.Remove(n);
            s.ConstantFolded.Add(PassState.Record(n, "all inputs constant: evaluated once, outputs became initializers"));
            s.Removed.Add(s.ConstantFolded[^1]);
        }
    }

    /// <summary>The node's outputs (null entries for omitted optional outputs), or null if the engine cannot run it.</summary>
    private static Tensor?[]? Evaluate(OnnxModel model, Node node, List<TensorData> constants)
    {
        var g = new Graph { Name = "fold" };
        foreach (var c in constants) g.Initializers[c.Name] = c;
        var copy = new Node(node.Name, node.OpType, node.Domain, node.Inputs, node.Outputs);
        foreach (var a in node.Attributes.Values) copy.Set(a);
        g.Nodes.Add(copy);
        foreach (var o in node.Outputs) if (o.Length > 0) g.Outputs.Add(new ValueInfo(o, ElementType.Undefined, null));
        var m = new OnnxModel(g) { IrVersion = Math.Max(model.IrVersion, 4) };
        foreach (var (d, v) in model.Opsets) m.Opsets[d] = v;
        try
        {
            var result = new InferenceSession(m, new SessionOptions { Threads = 1 }).Run(new Dictionary<string, Tensor>());
            return node.Outputs.Select(o => o.Length > 0 ? result[o] : null).ToArray();
        }
        catch (Exception e) when (e is EngineException or OnnxFormatException or NotSupportedException or ArgumentException)
        {
            return null; // the engine lacks the op or refuses it: leave the node to run at inference time
        }
    }
}
