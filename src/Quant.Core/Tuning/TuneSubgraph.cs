using Quant.Core.Config;
using Quant.Core.Precision;
using Quant.Onnx;

namespace Quant.Core.Tuning;

/// <summary>
/// A branch the tuner may promote as a whole through one <c>subgraph_config</c> entry: the nodes between
/// <see cref="Inputs"/> and <see cref="Outputs"/> (as the planner resolves them, PrecisionPlanner.SubgraphNodes).
/// </summary>
public sealed record TuneSubgraph(string Name, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs, IReadOnlyList<string> Nodes)
{
    /// <summary>True for a span of the sensitive nodes, false for a cluster (<see cref="TuneSubgraphs"/>).</summary>
    public bool IsSpan { get; init; }

    /// <summary>True when promoting this subgraph with <paramref name="subgraphChange"/> already gives <paramref name="node"/>
    /// at least what <paramref name="nodeChange"/> would (so the node change is not tried, or is dropped).</summary>
    public bool Covers(TuneChange subgraphChange, string node, TuneChange nodeChange) =>
        Nodes.Contains(node, StringComparer.Ordinal) && TuneCandidates.Covers(subgraphChange, nodeChange);
}

/// <summary>
/// Finds the branches where the most sensitive nodes cluster. The top of the ranking (an eighth of the ranked nodes,
/// 4 to 24) is placed in graph order; runs of at least <see cref="MinimumMembers"/> of them with gaps of at most half the
/// average spacing (node count / top count / 2: twice as dense as the top spread evenly) form a cluster, and the
/// graph-order range from its first to its last member is the branch. Done at two depths of the ranking (the top and twice as many), so both a tight and a wider branch are
/// offered, followed by the spans of the sensitive nodes (below). A range's inputs are the values its nodes read from outside it, its outputs the values read after it (or
/// model outputs); the node set is then resolved exactly as the planner will resolve the written entry.
/// </summary>
public static class TuneSubgraphs
{
    public const int MinimumMembers = 3;
    /// <summary>At most this many clusters are offered (each costs at least one evaluation per subgraph candidate), then at most 3 spans.</summary>
    public const int MaximumBranches = 6;

    public static IReadOnlyList<TuneSubgraph> Find(PrecisionPlan plan, IReadOnlyList<string> ranked, ISet<string> reservedNames)
    {
        var position = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < plan.Nodes.Count; i++)
            if (plan.Nodes[i].Name.Length > 0) position.TryAdd(plan.Nodes[i].Name, i);
        int top = Math.Clamp(ranked.Count / 8, 4, 24);
        var ranges = new List<(int First, int Last, int BestRank)>();
        foreach (int depth in new[] { top, 2 * top })
        {
            var members = ranked.Take(depth).Select((n, rank) => (Rank: rank, At: position.TryGetValue(n, out var p) ? p : -1))
                .Where(m => m.At >= 0).OrderBy(m => m.At).ToList();
            int gap = Math.Max(3, plan.Nodes.Count / (2 * Math.Max(1, depth)));
            int start = 0;
            for (int i = 1; i <= members.Count; i++)
            {
                if (i < members.Count && members[i].At - members[i - 1].At <= gap) continue;
                if (i - start >= MinimumMembers)
                    ranges.Add((members[start].At, members[i - 1].At, members.Skip(start).Take(i - start).Min(m => m.Rank)));
                start = i;
            }
        }
        // Spans: the shortest graph-order range holding three quarters of the top 2, 4 and 8 eighths of the ranking (a
        // few sensitive nodes elsewhere, e.g. in a head, do not stretch it over the whole model), when that is not
        // nearly the whole model (then the preset or all_node_type is the change to make). They come after the
        // clusters, narrowest first: where sensitivity is spread along a backbone (det: every layer loses a little),
        // no cluster is dense enough, but the sensitive part of the graph still is one region.
        var spans = new List<(int First, int Last)>();
        int computing = plan.Nodes.Count(n => !n.ShapeOnly);
        foreach (int depth in new[] { 2 * top, 4 * top, 8 * top })
        {
            var at = ranked.Take(depth).Select(n => position.TryGetValue(n, out var p) ? p : -1).Where(p => p >= 0).Order().ToList();
            int m = (at.Count * 3 + 3) / 4;
            if (m < MinimumMembers) continue;
            int best = Enumerable.Range(0, at.Count - m + 1).MinBy(i => at[i + m - 1] - at[i]);
            int first = at[best], last = at[best + m - 1];
            if (plan.Nodes.Skip(first).Take(last - first + 1).Count(n => !n.ShapeOnly) <= computing * 3 / 4) spans.Add((first, last));
        }
        // Each span also from the model's first node: the stem and the quantized model input belong to the backbone
        // whose errors the later layers carry (det: float16 from the input to the backbone's end meets 0.99 where the
        // same span without the stem does not).
        int head = plan.Nodes.ToList().FindIndex(n => !n.ShapeOnly);
        foreach (var (first, last) in spans.ToList())
            if (first > head && plan.Nodes.Skip(head).Take(last - head + 1).Count(n => !n.ShapeOnly) <= computing * 3 / 4 && !spans.Contains((head, last)))
                spans.Add((head, last));
        var graph = plan.Model.Graph;
        var result = new List<TuneSubgraph>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var ordered = ranges.OrderBy(r => r.BestRank).ThenBy(r => r.Last - r.First).Select(r => (r.First, r.Last, Span: false)).Take(MaximumBranches)
            .Concat(spans.OrderBy(r => r.Last - r.First).Select(r => (r.First, r.Last, Span: true)));
        foreach (var (first, last, span) in ordered)
        {
            var branch = Branch(plan, graph, first, last, reservedNames, result.Count + 1);
            if (branch is not null && seen.Add(string.Join(";", branch.Nodes))) result.Add(branch with { IsSpan = span });
        }
        return result;
    }

    private static TuneSubgraph? Branch(PrecisionPlan plan, Graph graph, int first, int last, ISet<string> reservedNames, int number)
    {
        var inside = plan.Nodes.Skip(first).Take(last - first + 1).Select(n => n.Node).ToHashSet(ReferenceEqualityComparer.Instance);
        var produced = inside.Cast<Node>().SelectMany(n => n.Outputs).Where(o => o.Length > 0).ToHashSet(StringComparer.Ordinal);
        var inputs = inside.Cast<Node>().SelectMany(n => n.Inputs)
            .Where(i => i.Length > 0 && !produced.Contains(i) && !graph.Initializers.ContainsKey(i)).Distinct(StringComparer.Ordinal).ToList();
        var graphOutputs = graph.Outputs.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        var readOutside = plan.Nodes.Where(n => !inside.Contains(n.Node)).SelectMany(n => n.Node.Inputs).ToHashSet(StringComparer.Ordinal);
        var outputs = inside.Cast<Node>().SelectMany(n => n.Outputs)
            .Where(o => o.Length > 0 && (readOutside.Contains(o) || graphOutputs.Contains(o))).Distinct(StringComparer.Ordinal).ToList();
        if (inputs.Count == 0 || outputs.Count == 0) return null;
        string name = $"tuner_branch_{number}";
        while (reservedNames.Contains(name)) name += "_";
        var config = new SubgraphConfig { Name = name, Inputs = inputs, Outputs = outputs };
        HashSet<Node> nodes;
        try { nodes = PrecisionPlanner.SubgraphNodes(graph, config); }
        catch (Diagnostics.QuantException) { return null; }
        // Only computing nodes count; in graph order.
        var names = plan.Nodes.Where(n => nodes.Contains(n.Node) && !n.ShapeOnly && n.Name.Length > 0).Select(n => n.Name).ToList();
        return names.Count < MinimumMembers ? null : new TuneSubgraph(name, inputs, outputs, names);
    }
}
