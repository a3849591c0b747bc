using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>Nodes none of whose outputs reach a graph output are removed (and listed by the model check).</summary>
internal static class DeadNodeRemoval
{
    public static void Run(PassState s, IReadOnlyList<Node> deadInOriginal)
    {
        var deadNow = new HashSet<Node>(s.Graph.DeadNodes(), ReferenceEqualityComparer.Instance);
        var original = new HashSet<Node>(deadInOriginal, ReferenceEqualityComparer.Instance);
        foreach (var n in s.Graph.Nodes.ToList())
        {
            if (!deadNow.Contains(n)) continue;
            s.Remove(n, original.Contains(n)
                ? "dead: none of its outputs reaches a graph output"
                : "dead after preparation: its only readers were removed");
            foreach (var o in n.Outputs) if (o.Length > 0) s.Vanish(o, $"output of the dead node {n.Describe()}");
        }
    }
}
