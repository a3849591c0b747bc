using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>
/// Identity and inference-mode Dropout pass their input through; they go, and their readers read the input.
/// When the removed node's output is a graph output, the producer's output takes that name instead, so the
/// model's output names stay. A Dropout whose mask is read, or that may run in training mode, stays.
/// </summary>
internal static class IdentityRemoval
{
    public static void Run(PassState s)
    {
        foreach (var n in s.Graph.Nodes.ToList())
        {
            if (!n.IsDefaultDomain || n.OpType is not ("Identity" or "Dropout")) continue;
            if (n.Inputs.Count == 0 || n.InputOrNull(0) is not { } x || n.Outputs.Count == 0 || n.Outputs[0].Length == 0) continue;
            var y = n.Outputs[0];
            if (n.OpType == "Dropout" && !IsInferenceDropout(s, n)) continue;
            string what = n.OpType == "Identity" ? "Identity" : "Dropout in inference mode";

            if (!s.IsGraphOutput(y))
            {
                s.Remove(n, $"{what}: readers of '{y}' read '{x}'");
                s.Rewire(y, x);
                s.Alias(y, x);
                continue;
            }
            // y is a model output: rename x to y, which needs x to be a node output nobody outside the graph sees.
            var producer = s.ProducerOf(x);
            if (producer is null || s.IsGraphOutput(x) || s.IsGraphInput(x)) continue;
            s.Remove(n, $"{what}: '{x}' renamed to the graph output '{y}'");
            producer.Outputs[producer.Outputs.IndexOf(x)] = y;
            s.Rewire(x, y);
            s.Alias(x, y);
        }
    }

    private static bool IsInferenceDropout(PassState s, Node n)
    {
        if (n.Outputs.Count > 1 && n.Outputs[1].Length > 0 && s.Uses(n.Outputs[1]) > 0) return false;
        long opset = s.Model.OpsetFor(n.Domain);
        if (opset < 7 && n.GetInt("is_test", 0) == 0) return false;
        if (opset >= 12 && n.InputOrNull(2) is { } training)
        {
            var t = s.Constant(training);
            if (t is null || t.Raw.Length == 0 || t.Raw[0] != 0) return false;
        }
        return true;
    }
}
