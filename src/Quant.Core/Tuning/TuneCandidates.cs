using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Core.Precision;

namespace Quant.Core.Tuning;

/// <summary>A change the tuner may make to one node, written into its <c>node_config</c> entry.</summary>
public enum TuneChange
{
    /// <summary><c>qtype: int16</c>: int16 activations (a GEMM keeps int8 weights).</summary>
    Int16,
    /// <summary><c>input1: ec</c>: the GEMM weight with error compensation (two int8 GEMMs).</summary>
    Ec,
    /// <summary><c>qtype: int16, input1: int16</c>: int16 activations and weights ("dual int16").</summary>
    DualInt16,
    /// <summary><c>qtype: float16</c>.</summary>
    Float16,
    /// <summary><c>qtype: float32</c>.</summary>
    Float32,
    /// <summary>A whole branch where sensitive nodes cluster to int16 (<c>subgraph_config</c>, Tuning/TuneSubgraphs).</summary>
    SubgraphInt16,
    /// <summary>A whole branch where sensitive nodes cluster to float16 (<c>subgraph_config</c>).</summary>
    SubgraphFloat16,
}

/// <summary>The candidate changes: their names, which node each applies to, and what each writes into node_config.</summary>
public static class TuneCandidates
{
    public static readonly IReadOnlyList<(string Name, TuneChange Value)> Names =
        [("int16", TuneChange.Int16), ("ec", TuneChange.Ec), ("dual_int16", TuneChange.DualInt16), ("float16", TuneChange.Float16), ("float32", TuneChange.Float32),
         ("subgraph_int16", TuneChange.SubgraphInt16), ("subgraph_float16", TuneChange.SubgraphFloat16)];

    /// <summary>What the search tries when nothing is configured: the integer changes, cheapest first.</summary>
    public static readonly IReadOnlyList<TuneChange> Default = [TuneChange.Int16, TuneChange.Ec, TuneChange.DualInt16];

    public static string Of(TuneChange c) => Names.First(n => n.Value == c).Name;

    /// <summary>True for the changes that promote a whole branch (a <c>subgraph_config</c> entry) instead of one node.</summary>
    public static bool IsSubgraph(TuneChange c) => c is TuneChange.SubgraphInt16 or TuneChange.SubgraphFloat16;

    /// <summary>The qtype a subgraph change writes.</summary>
    public static string SubgraphQType(TuneChange c) => c == TuneChange.SubgraphFloat16 ? "float16" : "int16";

    /// <summary>
    /// True when a node inside a branch promoted with <paramref name="subgraph"/> already has what
    /// <paramref name="node"/> would give it, or more: a float16 branch covers every integer change and float16 (an
    /// integer per-input setting such as ec would even contradict it); an int16 branch covers int16. For a branch inside
    /// another, <paramref name="node"/> is that branch's change.
    /// </summary>
    public static bool Covers(TuneChange subgraph, TuneChange node) => subgraph switch
    {
        TuneChange.SubgraphFloat16 => node is not TuneChange.Float32,
        TuneChange.SubgraphInt16 => node is TuneChange.Int16 or TuneChange.SubgraphInt16,
        _ => false,
    };

    public static TuneChange Parse(string name, SourcePosition at)
    {
        foreach (var (n, v) in Names) if (n == name.Trim()) return v;
        throw new QuantException(ErrorCode.TuneInvalidSetting, at,
            $"candidate '{name}' is not a change the tuner knows; use {string.Join(", ", Names.Select(n => n.Name))}");
    }

    /// <summary>A comma-separated list (the command line's <c>--candidates</c>).</summary>
    public static IReadOnlyList<TuneChange> ParseList(string text, SourcePosition at) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(n => Parse(n, at)).Distinct().ToList() is { Count: > 0 } l
            ? l : throw new QuantException(ErrorCode.TuneInvalidSetting, at, "--candidates lists no change; give e.g. int16,ec");

    /// <summary>
    /// True when <paramref name="change"/> would raise <paramref name="node"/>'s precision as the baseline plan has it:
    /// int16 on int8 nodes whose op has an int16 kernel, ec and dual int16 on int8/int16 GEMMs with an int8 weight,
    /// float on integer nodes. A node fused into its producer follows the producer and is never a candidate.
    /// </summary>
    public static bool Applies(TuneChange change, NodePrecision node)
    {
        if (node.ShapeOnly || node.FusedInto is not null || node.Name.Length == 0 || IsSubgraph(change)) return false;
        bool integer = node.Compute is QType.Int8 or QType.Int16;
        var weight = node.Inputs.FirstOrDefault(i => i.Index == 1 && i.Role == InputRole.Weight);
        bool gemm = TargetRules.GemmOps.Contains(node.OpType) && node.Node.IsDefaultDomain && weight is not null;
        return change switch
        {
            TuneChange.Int16 => node.Compute == QType.Int8 && TargetRules.For(node.OpType).Int16,
            TuneChange.Ec => gemm && integer && weight!.QType == QType.Int8 && !weight.ErrorCompensation,
            TuneChange.DualInt16 => gemm && integer && weight!.QType == QType.Int8,
            TuneChange.Float16 => integer,
            TuneChange.Float32 => integer || node.Compute == QType.Float16,
            _ => false,
        };
    }

    /// <summary>The node_config keys <paramref name="change"/> sets (a value of null removes the key).</summary>
    public static IReadOnlyList<(string Key, string? Value)> Keys(TuneChange change) => change switch
    {
        TuneChange.Int16 => [("qtype", "int16")],
        TuneChange.Ec => [("input1", "ec")],
        TuneChange.DualInt16 => [("qtype", "int16"), ("input1", "int16")],
        // A float node has no integer inputs: per-input integer settings (and ec) would be rejected.
        TuneChange.Float16 => [("qtype", "float16"), ("input0", null), ("input1", null), ("input2", null)],
        _ => [("qtype", "float32"), ("input0", null), ("input1", null), ("input2", null)],
    };
}
