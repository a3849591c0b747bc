namespace Quant.Core.Tuning;

/// <summary>What the search may change: each candidate node's ladder (most sensitive first) and the branches where
/// sensitive nodes cluster (Tuning/TuneSubgraphs) with the subgraph changes to try on them.</summary>
public sealed record TuneMoves(IReadOnlyList<(string Node, IReadOnlyList<TuneChange> Ladder)> Nodes, IReadOnlyList<TuneSubgraph> Branches, IReadOnlyList<TuneChange> BranchChanges)
{
    public static readonly TuneMoves None = new([], [], []);
}

/// <summary>
/// The search: greedy steps that are each measured and kept only when they bring the targets closer, then pruning.
/// <list type="number">
/// <item>Branches first (when subgraph candidates are configured): each branch where sensitive nodes cluster, most
/// sensitive first, then the spans of the sensitive nodes, narrowest first; each subgraph change of a branch is measured
/// and the cheapest that meets the targets, else the best that raises the score (the worst target's relative slack)
/// above the configuration kept so far, is kept.</item>
/// <item>Nodes, level by level: level 1 gives nodes their first applicable change, most sensitive first, in batches:
/// a batch that raises the score is kept and the next batch is twice as large; one that does not is halved and retried,
/// and a single node that does not help is skipped. Level 2 tries each node's next change the same way, and so on.
/// Every step is measured from the configuration kept so far, so an effect that does not add up (det: 4 int16 nodes
/// worse than 2) is rejected instead of carried along.</item>
/// <item>Pruning, once the targets are met: each change, costliest first, is removed (or stepped back one level) when
/// the targets are still met without it.</item>
/// </list>
/// Every evaluation is recorded; the search stops when the budget would be exceeded by one more evaluation.
/// </summary>
public sealed class TuneSearch(Func<IReadOnlyDictionary<string, TuneChange>, TunePoint> evaluate, Func<bool> outOfTime, CancellationToken cancel)
{
    private readonly List<TunePoint> _visited = [];
    private readonly Dictionary<string, TunePoint> _seen = new(StringComparer.Ordinal);

    public IReadOnlyList<TunePoint> Visited => _visited;
    /// <summary>True when the search stopped because of the budget.</summary>
    public bool StoppedByBudget { get; private set; }

    /// <summary>
    /// Runs the search. <paramref name="rank"/> gives the moves (nodes in ranking order with their applicable changes in
    /// the order to try, and the branches); it is called after the baseline, only when that misses.
    /// </summary>
    public TunePoint Run(Func<TuneMoves> rank)
    {
        var baseline = Eval(new Dictionary<string, TuneChange>(StringComparer.Ordinal), force: true)!;
        if (baseline.Meets) return Best();
        if (outOfTime()) { StoppedByBudget = true; return Best(); }
        var moves = rank();
        var branches = moves.Branches.ToDictionary(b => b.Name, StringComparer.Ordinal);
        var current = new Dictionary<string, TuneChange>(StringComparer.Ordinal);
        var currentPoint = baseline;

        // Applies a set of changes to the kept configuration; a branch promotion drops the node changes it covers.
        Dictionary<string, TuneChange> With(IEnumerable<(string Key, TuneChange Change)> changes)
        {
            var c = new Dictionary<string, TuneChange>(current, StringComparer.Ordinal);
            foreach (var (key, change) in changes)
            {
                c[key] = change;
                if (!TuneCandidates.IsSubgraph(change)) continue;
                foreach (var (other, otherChange) in c.Where(x => x.Key != key).ToList())
                {
                    // A node change the branch covers, or a branch inside this one at no higher precision, is dropped.
                    bool covered = TuneCandidates.IsSubgraph(otherChange)
                        ? branches[other].Nodes.All(n => branches[key].Nodes.Contains(n, StringComparer.Ordinal)) && TuneCandidates.Covers(change, otherChange)
                        : branches[key].Covers(change, other, otherChange);
                    if (covered) c.Remove(other);
                }
            }
            return c;
        }
        bool CoveredNow(string node, TuneChange change) =>
            current.Any(x => TuneCandidates.IsSubgraph(x.Value) && branches[x.Key].Covers(x.Value, node, change));

        // 1. Branches: each subgraph change of a branch is measured; the cheapest that meets the targets, else the best
        // that raises the score, is kept.
        foreach (var branch in moves.Branches)
        {
            (Dictionary<string, TuneChange> Config, TunePoint Point)? pick = null;
            foreach (var change in moves.BranchChanges)
            {
                var trial = With([(branch.Name, change)]);
                var p = Eval(trial);
                if (p is null) return Best();
                if (p.Score > currentPoint.Score && (pick is null || p.Beats(pick.Value.Point))) pick = (trial, p);
            }
            if (pick is not { } kept) continue;
            (current, currentPoint) = kept;
            if (currentPoint.Meets) return Prune(current, currentPoint, moves, branches);
        }

        // 2. Nodes, level by level, in batches that double while they help.
        int levels = moves.Nodes.Count == 0 ? 0 : moves.Nodes.Max(l => l.Ladder.Count);
        for (int level = 0; level < levels; level++)
        {
            var items = moves.Nodes.Where(l => l.Ladder.Count > level).Select(l => (l.Node, Change: l.Ladder[level])).ToList();
            int i = 0, batch = 1;
            while (i < items.Count)
            {
                var take = items.Skip(i).Take(batch).Where(x => !CoveredNow(x.Node, x.Change) && !(current.TryGetValue(x.Node, out var had) && had == x.Change)).ToList();
                if (take.Count == 0) { i += batch; continue; }
                var trial = With(take.Select(x => (x.Node, x.Change)));
                var p = Eval(trial);
                if (p is null) return Best();
                if (p.Score > currentPoint.Score)
                {
                    current = trial;
                    currentPoint = p;
                    if (p.Meets) return Prune(current, p, moves, branches);
                    i += batch;
                    batch *= 2;
                }
                else if (batch > 1) batch /= 2;
                else i++;
            }
        }
        return Best();
    }

    /// <summary>
    /// Pruning, the costliest change first (the largest saving), ties least sensitive first: drop it, or step it back to
    /// the previous change of its ladder; kept only when every target is still met.
    /// </summary>
    private TunePoint Prune(Dictionary<string, TuneChange> meeting, TunePoint meetingPoint, TuneMoves moves, IReadOnlyDictionary<string, TuneSubgraph> branches)
    {
        var ladders = moves.Nodes.ToDictionary(l => l.Node, l => l.Ladder, StringComparer.Ordinal);
        foreach (var b in branches.Keys) ladders[b] = moves.BranchChanges;
        var position = moves.Nodes.Select((l, i) => (l.Node, i)).ToDictionary(x => x.Node, x => x.i, StringComparer.Ordinal);
        var order = meetingPoint.Changes.OrderByDescending(c => c.Cost).ThenByDescending(c => position.TryGetValue(c.Node, out var p) ? p : -1).Select(c => c.Node).ToList();
        foreach (var node in order)
        {
            if (!meeting.TryGetValue(node, out var change)) continue;
            var ladder = ladders[node];
            int at = IndexOf(ladder, change);
            for (int back = at - 1; back >= -1; back--)
            {
                var trial = new Dictionary<string, TuneChange>(meeting, StringComparer.Ordinal);
                if (back < 0) trial.Remove(node); else trial[node] = ladder[back];
                var p = Eval(trial);
                if (p is null) return Best();
                if (!p.Meets) break;
                meeting = trial;
            }
        }
        return Best();
    }

    private static int IndexOf(IReadOnlyList<TuneChange> ladder, TuneChange c)
    {
        for (int i = 0; i < ladder.Count; i++) if (ladder[i] == c) return i;
        return 0;
    }

    /// <summary>Evaluates a configuration once (repeats come from memory); null when the budget is spent.</summary>
    private TunePoint? Eval(IReadOnlyDictionary<string, TuneChange> changes, bool force = false)
    {
        cancel.ThrowIfCancellationRequested();
        var key = string.Join(";", changes.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key}={c.Value}"));
        if (_seen.TryGetValue(key, out var known)) return known;
        if (!force && outOfTime()) { StoppedByBudget = true; return null; }
        var p = evaluate(changes) with { Step = _visited.Count };
        _visited.Add(p);
        _seen[key] = p;
        return p;
    }

    /// <summary>The best point visited (<see cref="TunePoint.Beats"/>), after marking the Pareto points.</summary>
    private TunePoint Best()
    {
        foreach (var p in _visited)
            p.Pareto = !_visited.Any(q => q != p && q.Cost <= p.Cost && q.Score >= p.Score && (q.Cost < p.Cost || q.Score > p.Score));
        var best = _visited[0];
        foreach (var p in _visited) if (p.Beats(best)) best = p;
        return best;
    }
}
