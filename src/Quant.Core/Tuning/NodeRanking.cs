namespace Quant.Core.Tuning;

/// <summary>A node with its sensitivity: how much closer to float the model gets when this node alone is restored.</summary>
public sealed record RankedNode(string Node, double Score);

/// <summary>
/// Orders candidate nodes most sensitive first (the sensitivity analysis, mode <c>restore</c>: everything quantized,
/// one node at higher precision, scored per output). <paramref name="deadline"/> bounds the time spent; nodes not
/// scored by then are left out and the search appends them in graph order.
/// </summary>
public delegate IReadOnlyList<RankedNode> NodeRanking(IReadOnlyList<string> nodes, Func<bool> deadline, CancellationToken cancel);
