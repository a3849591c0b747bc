using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>
/// Constant nodes become initializers of the same name. Paddle's exporter keeps every weight in a Constant
/// node; calibration, weight quantization and BatchNormalization folding all look for initializers.
/// </summary>
internal static class ConstantNodesToInitializers
{
    public static int Run(PassState s)
    {
        int converted = 0;
        foreach (var n in s.Graph.Nodes.ToList())
        {
            if (n.OpType != "Constant" || !n.IsDefaultDomain || n.Outputs.Count != 1) continue;
            var name = n.Outputs[0];
            // A graph output or an existing initializer of that name would change meaning; such nodes stay.
            if (name.Length == 0 || s.IsGraphOutput(name) || s.Graph.Initializers.ContainsKey(name)) continue;
            var value = ValueOf(n, name);
            if (value is null) continue;
            s.Graph.Initializers[name] = value;
            s.Remove(n, $"Constant node: its value became initializer '{name}'");
            converted++;
        }
        return converted;
    }

    /// <summary>The node's value as a tensor, or null for forms we leave alone (sparse tensors, strings).</summary>
    private static TensorData? ValueOf(Node n, string name)
    {
        if (n.Attributes.Count != 1) return null;
        var a = n.Attributes.Values.First();
        switch (a.Name)
        {
            case "value" when a.Tensor is { } t && t.Type != ElementType.String:
                return new TensorData(name, t.Type, t.Dims, t.Raw);
            case "value_float": return TensorData.FromFloats(name, [], [a.Float]);
            case "value_floats": return TensorData.FromFloats(name, [a.Floats.Length], a.Floats);
            case "value_int": return TensorData.FromInt64s(name, [], [a.Int]);
            case "value_ints": return TensorData.FromInt64s(name, [a.Ints.Length], a.Ints);
            default: return null;
        }
    }
}
