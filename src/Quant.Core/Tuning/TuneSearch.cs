namespace Quant.Core.Tuning;

/// <summary>
/// The search: sensitivity-ranked greedy over prefixes, then pruning.
/// <list type="number">
/// <item>Level 1: every candidate node gets its first applicable change (in the configured candidate order); the
/// shortest prefix of the ranking that meets the targets is found by doubling (1, 2, 4, ... nodes) and then bisection,
/// so a model needing k changes costs about 2·log2(k) evaluations instead of k.</item>
/// <item>If the whole ranking at level 1 misses, level 2 starts from it and upgrades a prefix to each node's next
/// change, and so on.</item>
/// <item>Pruning: each change of the meeting configuration, costliest first, is removed (or stepped back one level)
/// when the targets are still met without it: promotions that turned out useless go.</item>
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
    /// Runs the search. <paramref name="rank"/> gives, for each candidate node in ranking order (most sensitive
    /// first), its applicable changes in the order to try; it is called after the baseline, only when that misses.
    /// </summary>
    public TunePoint Run(Func<IReadOnlyList<(string Node, IReadOnlyList<TuneChange> Ladder)>> rank)
    {
        var baseline = Eval(new Dictionary<string, TuneChange>(StringComparer.Ordinal), force: true)!;
        if (baseline.Meets) return Best();
        if (outOfTime()) { StoppedByBudget = true; return Best(); }
        var ladders = rank();
        if (ladders.Count == 0) return Best();

        // The configuration every level starts from: the previous level's whole ranking.
        var floor = new Dictionary<string, TuneChange>(StringComparer.Ordinal);
        Dictionary<string, TuneChange>? meeting = null;
        TunePoint? meetingPoint = null;
        int levels = ladders.Max(l => l.Ladder.Count);
        for (int level = 0; level < levels && meeting is null; level++)
        {
            var upgradable = ladders.Where(l => l.Ladder.Count > level).ToList();
            if (upgradable.Count == 0) continue;
            Dictionary<string, TuneChange> With(int prefix)
            {
                var c = new Dictionary<string, TuneChange>(floor, StringComparer.Ordinal);
                foreach (var (node, ladder) in upgradable.Take(prefix)) c[node] = ladder[level];
                return c;
            }
            int lo = 0, hi = -1; // lo: a prefix known to miss; hi: the shortest known to meet
            for (int k = 1; ; k = Math.Min(k * 2, upgradable.Count))
            {
                var p = Eval(With(k));
                if (p is null) return Best();
                if (p.Meets) { hi = k; meetingPoint = p; break; }
                lo = k;
                if (k == upgradable.Count) break;
            }
            if (hi < 0) { floor = With(upgradable.Count); continue; }
            while (hi - lo > 1)
            {
                int mid = (lo + hi) / 2;
                var p = Eval(With(mid));
                if (p is null) return Best();
                if (p.Meets) { hi = mid; meetingPoint = p; } else lo = mid;
            }
            meeting = With(hi);
        }
        if (meeting is null) return Best();

        // Pruning, the costliest change first (the largest saving), ties least sensitive first: drop it, or step it back
        // to the previous level's change.
        var position = ladders.Select((l, i) => (l.Node, i)).ToDictionary(x => x.Node, x => x.i, StringComparer.Ordinal);
        var order = meetingPoint!.Changes.OrderByDescending(c => c.Cost).ThenByDescending(c => position[c.Node]).Select(c => c.Node).ToList();
        foreach (var node in order)
        {
            if (!meeting.TryGetValue(node, out var change)) continue;
            var ladder = ladders.First(l => l.Node == node).Ladder;
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
