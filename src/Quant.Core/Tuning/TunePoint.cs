namespace Quant.Core.Tuning;

/// <summary>
/// One node's change in a configuration, with what it adds to the cost. A branch promotion has the branch's name as
/// <see cref="Node"/>, <c>subgraph</c> as op type and the branch in <see cref="Subgraph"/>.
/// </summary>
public sealed record NodeChange(string Node, string OpType, TuneChange Change, double Cost, TuneSubgraph? Subgraph = null);

/// <summary>One evaluated configuration: its changes, cost and measured values (keyed like <see cref="TuneTarget.Key"/>).</summary>
public sealed record TunePoint(int Step, double Cost, IReadOnlyDictionary<string, double> Values, IReadOnlyList<NodeChange> Changes, bool Meets, double Score)
{
    /// <summary>True when no other point is at most as costly and at least as good, one of them strictly (set after the search).</summary>
    public bool Pareto { get; set; }

    /// <summary>
    /// The better of two points for the user: one meeting the targets beats one missing them; among those meeting,
    /// the cheaper; among those missing, the closer to the targets (then the cheaper).
    /// </summary>
    public bool Beats(TunePoint other) =>
        Meets != other.Meets ? Meets
        : Meets ? Cost < other.Cost || (Cost == other.Cost && Score > other.Score)
        : Score > other.Score || (Score == other.Score && Cost < other.Cost);
}
