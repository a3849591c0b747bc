using Quant.Core.Export;
using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>
/// Raises the prepared model's default-domain opset so a fused op exists in it (PaddleOCR exports opset 9/11;
/// HardSwish is opset 14, LayerNormalization 17, Gelu 20). Every node is rewritten to mean the same under the new
/// opset by the exporter's <see cref="OpsetUpgrader"/>, the one place that knows the schema changes.
/// </summary>
internal sealed class OpsetRaise(PassState s, Func<string, int?> rankOf)
{
    /// <summary>
    /// The opset to raise to for an op introduced at <paramref name="since"/>: at least 13 (what QDQ export needs
    /// anyway); 21 for Gelu, since the exporter raises int16 models to 21 and its upgrader has no rule for Gelu.
    /// </summary>
    public static long Target(long since) => since >= 20 ? 21 : Math.Max(13, since);

    /// <summary>Why the model cannot be raised to <paramref name="to"/>, or null when it can (the model is not changed).</summary>
    public string? WhyNot(long to)
    {
        var scratch = new Graph();
        var upgrader = Upgrader(to, scratch, name => name);
        try
        {
            foreach (var n in s.Graph.Nodes) upgrader.Upgrade(Copy(n));
            return null;
        }
        catch (InvalidOperationException e) { return e.Message; }
    }

    /// <summary>
    /// Rewrites every node for opset <paramref name="to"/> except <paramref name="written"/> (the fused nodes, already
    /// written for it); <see cref="WhyNot"/> must have returned null.
    /// </summary>
    public void Run(long to, IReadOnlySet<Node> written)
    {
        var upgrader = Upgrader(to, s.Graph, s.FreshName);
        var nodes = s.Graph.Nodes.SelectMany(n => written.Contains(n) ? [n] : upgrader.Upgrade(n)).ToList();
        s.Graph.Nodes.Clear();
        s.Graph.Nodes.AddRange(nodes);
        s.Model.Opsets[""] = to;
        // The IR versions that came with opsets 15 and 21 (ONNX 1.10, 1.16).
        s.Model.IrVersion = Math.Max(s.Model.IrVersion, to >= 21 ? 10 : to >= 15 ? 8 : 7);
    }

    private OpsetUpgrader Upgrader(long to, Graph graph, Func<string, string> unique) =>
        new(s.Model.OpsetFor(""), to, graph, unique, rankOf);

    private static Node Copy(Node n)
    {
        var c = new Node(n.Name, n.OpType, n.Domain, n.Inputs, n.Outputs);
        foreach (var a in n.Attributes.Values) c.Set(a);
        return c;
    }
}
