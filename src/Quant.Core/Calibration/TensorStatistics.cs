namespace Quant.Core.Calibration;

/// <summary>
/// What calibration retained about one float tensor over every observed batch: exact min/max of the
/// finite elements, and two histograms (x &gt;= 0 and x &lt; 0) of |x| with <see cref="NumBins"/> equal
/// bins over [0, 2^<see cref="RangeExponent"/>). Optionally exact min/max per channel along axis 1.
/// Its size depends only on the bin count and channel count, never on how much data was seen.
/// </summary>
/// <remarks>
/// The histogram range is always a power of two strictly greater than the absolute maximum seen so
/// far (and at least 2^<see cref="MinRangeExponent"/>). When a later batch exceeds it, the range doubles
/// k times and old bin i folds into bin i &gt;&gt; k. Because the bin index is floor(|x| * NumBins * 2^-e)
/// and scaling by a power of two is exact in floating point, the folded histogram is exactly the one
/// that binning every element directly into the final range would give: the statistics do not depend
/// on batch size or sample order. The price is resolution: the data's absmax uses between half and
/// all of the bins.
/// </remarks>
public sealed class TensorStatistics
{
    /// <summary>The smallest histogram range is 2^-100: magnitudes below that all land in bin 0.</summary>
    public const int MinRangeExponent = -100;

    internal TensorStatistics(string name, int numBins)
    {
        if (numBins < 2 || numBins > 1 << 20) throw new ArgumentOutOfRangeException(nameof(numBins), numBins, "num_bin must be between 2 and 1048576");
        Name = name;
        NumBins = numBins;
        Positive = new long[numBins];
        Negative = new long[numBins];
    }

    public string Name { get; }
    public int NumBins { get; }
    /// <summary>Finite elements seen.</summary>
    public long Count { get; internal set; }
    /// <summary>NaN and infinite elements seen (excluded from everything else).</summary>
    public long NonFinite { get; internal set; }
    /// <summary>Smallest finite element (0 when none was seen).</summary>
    public float Min { get; internal set; }
    /// <summary>Largest finite element (0 when none was seen).</summary>
    public float Max { get; internal set; }
    public float AbsMax => MathF.Max(MathF.Abs(Min), MathF.Abs(Max));
    /// <summary>The histogram covers [0, 2^e); null while every element seen was 0.</summary>
    public int? RangeExponent { get; internal set; }
    public double Range => RangeExponent is int e ? Math.ScaleB(1.0, e) : 0;
    public double BinWidth => Range / NumBins;

    internal long[] Positive { get; private set; }
    internal long[] Negative { get; private set; }
    /// <summary>Counts of |x| per bin for x &gt;= 0.</summary>
    public ReadOnlySpan<long> PositiveHistogram => Positive;
    /// <summary>Counts of |x| per bin for x &lt; 0.</summary>
    public ReadOnlySpan<long> NegativeHistogram => Negative;

    /// <summary>Counts of |x| per bin, both signs together.</summary>
    public long[] AbsHistogram()
    {
        var h = new long[NumBins];
        for (int i = 0; i < h.Length; i++) h[i] = Positive[i] + Negative[i];
        return h;
    }

    /// <summary>Per-channel (axis 1) minimum, or null when not collected or the channel count varied between batches.</summary>
    public float[]? ChannelMin { get; internal set; }
    public float[]? ChannelMax { get; internal set; }
    /// <summary>Set when per-channel collection was asked for but batches disagreed on the axis-1 size.</summary>
    internal bool ChannelsDropped { get; set; }

    /// <summary>Bytes this object keeps (arrays only), for memory accounting.</summary>
    public long RetainedBytes => (Positive.Length + Negative.Length) * 8L + (ChannelMin?.Length ?? 0) * 8L;

    /// <summary>True when |x| &lt;= absMax already falls inside the histogram range.</summary>
    internal bool Covers(float absMax) =>
        !(absMax > 0) || RangeExponent is int e && ExponentFor(absMax) <= e;

    /// <summary>The exponent of the smallest histogram range 2^e that holds |x| &lt;= absMax (absMax &gt; 0).</summary>
    internal static int ExponentFor(float absMax) => Math.Max(MinRangeExponent, float.ILogB(absMax) + 1);

    /// <summary>The float multiplier that maps |x| to its bin in the range 2^e: numBins * 2^-e (exact, a power of two apart).</summary>
    internal static float FactorFor(int numBins, int e) => (float)Math.ScaleB(numBins, -e);

    /// <summary>Makes the histogram cover |x| &lt; absMax, folding existing counts when the range must grow.</summary>
    internal void EnsureRange(float absMax)
    {
        if (!(absMax > 0)) return;
        EnsureExponent(ExponentFor(absMax));
    }

    /// <summary>Makes the histogram range at least 2^<paramref name="needed"/>, folding existing counts when it must grow.</summary>
    internal void EnsureExponent(int needed)
    {
        if (RangeExponent is not int e) { RangeExponent = needed; return; }
        if (needed <= e) return;
        int k = needed - e;
        Fold(Positive, k);
        Fold(Negative, k);
        RangeExponent = needed;
    }

    private static void Fold(long[] h, int k)
    {
        if (k >= 31) { long total = 0; foreach (var c in h) total += c; Array.Clear(h); h[0] = total; return; }
        var folded = new long[h.Length];
        for (int i = 0; i < h.Length; i++) folded[i >> k] += h[i];
        folded.CopyTo(h, 0);
    }

    /// <summary>The float multiplier that maps |x| to its bin: NumBins * 2^-e.</summary>
    internal float BinFactor => RangeExponent is int e ? FactorFor(NumBins, e) : 0f;

    internal void SetHistograms(long[] positive, long[] negative)
    {
        Positive = positive;
        Negative = negative;
    }

    /// <summary>True when both hold exactly the same numbers (for tests and cache checks).</summary>
    public bool ContentEquals(TensorStatistics o) =>
        Name == o.Name && NumBins == o.NumBins && Count == o.Count && NonFinite == o.NonFinite
        && Min.Equals(o.Min) && Max.Equals(o.Max) && RangeExponent == o.RangeExponent
        && Positive.AsSpan().SequenceEqual(o.Positive) && Negative.AsSpan().SequenceEqual(o.Negative)
        && SameArray(ChannelMin, o.ChannelMin) && SameArray(ChannelMax, o.ChannelMax);

    private static bool SameArray(float[]? a, float[]? b) => a is null ? b is null : b is not null && a.AsSpan().SequenceEqual(b);
}
