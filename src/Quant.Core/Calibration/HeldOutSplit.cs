namespace Quant.Core.Calibration;

/// <summary>
/// Which calibration batches feed the statistics and which are held out to judge calibration candidates.
/// Scoring a method on the samples its ranges were measured on favours the methods that clip least (they fit
/// those very samples); held-out samples show how the ranges carry over to data the model has not seen.
/// </summary>
/// <remarks>
/// With at least <see cref="MinSamplesToHoldOut"/> samples, about a quarter of them, at most
/// <see cref="MaxHeldOutSamples"/>, are held out: whole batches spread evenly over the (sorted) data, so the held-out
/// part covers the set instead of its end. The statistics the exported scales come from still cover every sample
/// (the held-out batches are added after the candidates' statistics are snapshotted). With fewer samples nothing
/// is held out and candidates are scored on the first <see cref="MaxHeldOutSamples"/> samples, which are also in
/// the statistics. Deterministic: it depends only on the batch layout.
/// </remarks>
public sealed class HeldOutSplit
{
    public const int MinSamplesToHoldOut = 16;
    public const int MaxHeldOutSamples = 16;

    private HeldOutSplit(IReadOnlyList<int> scored, bool heldOut)
    {
        ScoredBatches = scored;
        IsHeldOut = heldOut;
    }

    /// <summary>The batches candidates are scored on, in data order.</summary>
    public IReadOnlyList<int> ScoredBatches { get; }
    /// <summary>True when <see cref="ScoredBatches"/> are excluded from the statistics candidates are derived from.</summary>
    public bool IsHeldOut { get; }

    /// <summary>The split for a data set laid out as <paramref name="batchSamples"/> (sample indices per batch), scoring at most <paramref name="maxScored"/> samples (whole batches, at least one).</summary>
    public static HeldOutSplit Choose(IReadOnlyList<IReadOnlyList<int>> batchSamples, int maxScored = MaxHeldOutSamples)
    {
        int samples = batchSamples.Sum(b => b.Count);
        if (samples < MinSamplesToHoldOut)
        {
            // Too few to spare any: score on the first batches (at most maxScored samples, at least one batch).
            var first = new List<int>();
            int taken = 0;
            for (int b = 0; b < batchSamples.Count && (first.Count == 0 || taken + batchSamples[b].Count <= maxScored); b++)
            {
                first.Add(b);
                taken += batchSamples[b].Count;
            }
            return new HeldOutSplit(first, heldOut: false);
        }
        int want = Math.Max(1, Math.Min(maxScored, samples / 4));
        int perBatch = Math.Max(1, batchSamples.Max(b => b.Count));
        int batches = Math.Clamp((want + perBatch - 1) / perBatch, 1, batchSamples.Count - 1);
        var chosen = new SortedSet<int>();
        for (int j = 0; j < batches; j++) chosen.Add((int)((j + 0.5) * batchSamples.Count / batches));
        return new HeldOutSplit(chosen.ToList(), heldOut: true);
    }

    /// <summary>A stable description for cache keys and reports, e.g. <c>held_out=3,11,19</c>.</summary>
    public string Describe() => (IsHeldOut ? "held_out=" : "first=") + string.Join(",", ScoredBatches);
}
