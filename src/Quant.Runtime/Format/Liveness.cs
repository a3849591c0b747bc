namespace Quant.Runtime;

/// <summary>
/// When each intermediate value of a program is live: from the step that produces it to the last step that reads
/// it (inclusive; graph outputs to the last step). The compiler plans the arena from this and the loader checks
/// the plan against it, so both use this one definition.
/// </summary>
public static class Liveness
{
    /// <summary>(first, last) step per value id; (-1, -1) for values no op produces.</summary>
    public static (int First, int Last)[] Of(int valueCount, IReadOnlyList<QbmOp> ops, IEnumerable<int> graphOutputs)
    {
        var span = new (int First, int Last)[valueCount];
        Array.Fill(span, (-1, -1));
        for (int s = 0; s < ops.Count; s++)
        {
            foreach (var o in ops[s].Outputs)
                if (o >= 0 && o < valueCount) span[o] = (s, s);
            foreach (var i in ops[s].Inputs)
                if (i >= 0 && i < valueCount && span[i].First >= 0) span[i] = (span[i].First, Math.Max(span[i].Last, s));
        }
        foreach (var o in graphOutputs)
            if (o >= 0 && o < valueCount && span[o].First >= 0) span[o] = (span[o].First, Math.Max(0, ops.Count - 1));
        return span;
    }

    /// <summary>Whether two inclusive step ranges share a step.</summary>
    public static bool Overlap((int First, int Last) a, (int First, int Last) b) => a.First <= b.Last && b.First <= a.Last;
}
