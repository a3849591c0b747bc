using System.Numerics.Tensors;
using Tensor = Quant.Engine.Tensor;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Calibration;

/// <summary>
/// Observes <see cref="InferenceSession"/> runs and folds every observed float tensor into its
/// <see cref="TensorStatistics"/> (min/max, sign-split |x| histogram, optional axis-1 channel min/max).
/// Nothing of the activations is kept: memory is O(tensors x bins) whatever the number of samples,
/// batch size or spatial size. Statistics are over all elements, so batches of any size and samples
/// of different shapes mix freely. Not thread-safe: one run at a time.
/// </summary>
/// <remarks>
/// Without per-channel statistics it is an <see cref="ITileObserver"/>: the run keeps its fused elementwise chains and
/// the values inside them arrive in pieces (<see cref="OnTile"/>), in as many lanes at once as the collector has
/// threads. The statistics are the same numbers either way, because a histogram folded to a wider range is exactly the
/// one binned there directly (<see cref="TensorStatistics"/>): each lane keeps the pending counts of its pieces in its
/// own range (grown, by folding, when a piece does not fit), with their min, max and count, and before anything else is
/// observed or read every lane's pending counts are folded into the value's final range and added. Integer sums and
/// exact min/max do not depend on the order they are taken in. Only the first-observation order could differ (a fused
/// step runs where its first outside reader would); <paramref name="valueOrder"/> restores it.
/// </remarks>
public sealed class CalibrationCollector : ITileObserver
{
    /// <summary>Below this many elements a tensor is binned on the calling thread.</summary>
    private const int ParallelThreshold = 1 << 16;

    private readonly HashSet<string>? _observe;
    private readonly Dictionary<string, TensorStatistics> _stats = new(StringComparer.Ordinal);
    private readonly List<TensorStatistics> _order = [];
    private readonly int _threads;
    private readonly int[][] _scratch;

    /// <param name="observe">Value names to observe (graph inputs and node outputs); null observes every float value.</param>
    /// <param name="numBins">Histogram bins per tensor (HMCT's num_bin).</param>
    /// <param name="perChannel">Also keep min/max per channel along axis 1 (tensors of rank &gt;= 2).</param>
    /// <param name="threads">Most threads used to bin one large tensor.</param>
    /// <param name="valueOrder">
    /// The order the statistics are listed in (value names; the unfused plan's order of graph inputs then node outputs,
    /// which is what an unfused run observes); names not in it follow in first-observation order.
    /// </param>
    public CalibrationCollector(IEnumerable<string>? observe = null, int numBins = 2048, bool perChannel = false, int threads = 0,
        IReadOnlyList<string>? valueOrder = null)
    {
        if (numBins < 2 || numBins > 1 << 20) throw new ArgumentOutOfRangeException(nameof(numBins), numBins, "num_bin must be between 2 and 1048576");
        _observe = observe is null ? null : new HashSet<string>(observe, StringComparer.Ordinal);
        NumBins = numBins;
        PerChannel = perChannel;
        _threads = threads > 0 ? threads : Environment.ProcessorCount;
        _scratch = new int[_threads][];
        _lanes = new Lane[_threads];
        for (int l = 0; l < _lanes.Length; l++) _lanes[l] = new Lane();
        if (valueOrder is not null)
        {
            _rank = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var v in valueOrder) _rank.TryAdd(v, _rank.Count);
        }
    }

    private readonly Dictionary<string, int>? _rank;

    public int NumBins { get; }
    public bool PerChannel { get; }
    /// <summary>The tensors seen so far, in first-observation order (pending pieces added).</summary>
    public IReadOnlyList<TensorStatistics> Tensors { get { FlushPieces(); return _order; } }
    /// <summary>Bytes retained by the statistics and the binning scratch.</summary>
    public long RetainedBytes => _order.Sum(s => s.RetainedBytes) + _scratch.Sum(s => (s?.Length ?? 0) * 4L)
        + _lanes.Sum(l => (l.Idle.Count + l.Pieces.Count) * (long)HistogramKernels.ScratchLength(NumBins) * 4);

    public Tensor? OnValue(in ObservedValue value)
    {
        FlushPieces();
        if (value.Value.Type != ElementType.Float) return null;
        if (_observe is not null && !_observe.Contains(value.Name)) return null;
        Add(value.Name, value.Value);
        return null;
    }

    /// <summary>Folds one float tensor into the statistics of <paramref name="name"/>.</summary>
    public void Add(string name, Tensor t)
    {
        if (t.Type != ElementType.Float) throw new ArgumentException($"'{name}' is {t.Type.OnnxName()}; calibration observes float tensors only");
        FlushPieces();
        var s = StatisticsOf(name);
        var x = t.ReadOnlySpan<float>();
        if (x.Length == 0) return;

        var array = (float[])t.Buffer;
        if (PerChannel && t.Rank < 2) DropChannels(s);
        if (s.RangeExponent is int && !(PerChannel && t.Rank >= 2))
        {
            // The common case: bin into the current range while finding min/max in the same pass;
            // only when the data did not fit is the batch binned again into the grown range.
            var (smin, smax) = BinParallel(s, array, x.Length);
            if (!float.IsFinite(smin) || !float.IsFinite(smax)) { DiscardParts(s.NumBins); AddWithNonFinite(s, x); return; }
            Merge(s, smin, smax, x.Length);
            if (!s.Covers(MathF.Max(-smin, smax)))
            {
                DiscardParts(s.NumBins);
                s.EnsureRange(MathF.Max(-smin, smax));
                BinParallel(s, array, x.Length);
            }
            Accumulate(s, smin, smax);
            return;
        }

        var (min, max) = PerChannel && t.Rank >= 2 ? ChannelMinMax(s, t) : HistogramKernels.MinMax(x);
        if (!float.IsFinite(min) || !float.IsFinite(max))
        {
            AddWithNonFinite(s, x);
            return;
        }
        Merge(s, min, max, x.Length);
        s.EnsureRange(MathF.Max(-min, max));
        if (s.RangeExponent is null) { s.Positive[0] += x.Length; return; } // every element is 0
        BinParallel(s, array, x.Length);
        Accumulate(s, min, max);
    }

    private TensorStatistics StatisticsOf(string name)
    {
        if (!_stats.TryGetValue(name, out var s))
        {
            s = new TensorStatistics(name, NumBins);
            _stats[name] = s;
            _order.Add(s);
        }
        return s;
    }

    /// <summary>Per-channel statistics need whole tensors, so the run then observes the unfused plan.</summary>
    public bool TakesTiles => !PerChannel;

    /// <summary>As many lanes as threads: the pieces of each lane are pending in their own scratch.</summary>
    public int TileLanes => _threads;

    /// <summary>
    /// The counts of one value's pieces in one lane since its pending counts were last added: in the lane's own range
    /// 2^<see cref="Exponent"/> (null while every piece was all zeros, counted in <see cref="Zeros"/>), with min, max and
    /// count of the finite elements and the count of the others.
    /// </summary>
    private sealed class Pending(TensorStatistics stats, int[] scratch)
    {
        public readonly TensorStatistics Stats = stats;
        public readonly int[] Scratch = scratch;
        public int? Exponent;
        public float Min = float.PositiveInfinity, Max = float.NegativeInfinity;
        public long Count, NonFinite, Zeros;
        /// <summary>Elements binned into the scratch since it was last emptied (the int counts must not overflow).</summary>
        public long Binned;
        public float BinFactor => TensorStatistics.FactorFor(Stats.NumBins, Exponent!.Value);
    }

    /// <summary>One lane's pending values (a chain has a few) and its idle scratch, touched by one thread at a time.</summary>
    private sealed class Lane
    {
        public readonly List<Pending> Pieces = [];
        public readonly Stack<int[]> Idle = new();
    }

    private readonly Lane[] _lanes;

    /// <summary>Folds the next piece of a value inside a fused chain (in lane <paramref name="lane"/>) into its statistics.</summary>
    public void OnTile(string name, ReadOnlySpan<float> x, int lane)
    {
        if (_observe is not null && !_observe.Contains(name)) return;
        if (x.Length == 0) return;
        var l = _lanes[lane];
        Pending? p = null;
        foreach (var e in l.Pieces)
            if (ReferenceEquals(e.Stats.Name, name) || e.Stats.Name == name) { p = e; break; }
        if (p is null)
        {
            TensorStatistics s;
            lock (_stats) s = StatisticsOf(name);
            p = new Pending(s, l.Idle.Count > 0 ? l.Idle.Pop() : new int[HistogramKernels.ScratchLength(NumBins)]);
            l.Pieces.Add(p);
        }
        // The scratch's int counts stay below 2^31; the value's statistics are shared by the lanes, hence the lock.
        if (p.Binned + x.Length > int.MaxValue) lock (_stats) Empty(p);
        float min, max;
        if (p.Exponent is int)
        {
            // The common case: bin into the lane's range while finding min/max in the same pass; a piece that did not
            // fit (or held NaN or infinities) is taken back, exactly, and binned again below.
            float factor = p.BinFactor;
            (min, max) = HistogramKernels.Bin(x, factor, NumBins, p.Scratch);
            if (float.IsFinite(min) && float.IsFinite(max) && Fits(p, MathF.Max(-min, max)))
            {
                Pend(p, min, max, x.Length);
                p.Binned += x.Length;
                return;
            }
            HistogramKernels.Unbin(x, factor, NumBins, p.Scratch);
        }
        else (min, max) = HistogramKernels.MinMax(x);
        if (!float.IsFinite(min) || !float.IsFinite(max))
        {
            PendNonFinite(p, x);
            return;
        }
        Pend(p, min, max, x.Length);
        float absMax = MathF.Max(-min, max);
        if (!(absMax > 0) && p.Exponent is null) { p.Zeros += x.Length; return; } // every element so far is 0
        Widen(p, absMax);
        HistogramKernels.Bin(x, p.BinFactor, NumBins, p.Scratch);
        p.Binned += x.Length;
    }

    private static void Pend(Pending p, float min, float max, long count)
    {
        p.Min = MathF.Min(p.Min, min);
        p.Max = MathF.Max(p.Max, max);
        p.Count += count;
    }

    /// <summary>True when |x| &lt;= absMax falls inside the lane's range.</summary>
    private static bool Fits(Pending p, float absMax) =>
        !(absMax > 0) || TensorStatistics.ExponentFor(absMax) <= p.Exponent!.Value;

    /// <summary>Makes a lane's pending range cover |x| &lt;= absMax (starting from the value's range), folding its counts.</summary>
    private static void Widen(Pending p, float absMax)
    {
        int needed = absMax > 0 ? TensorStatistics.ExponentFor(absMax) : TensorStatistics.MinRangeExponent;
        if (p.Exponent is not int e)
        {
            p.Exponent = Math.Max(needed, p.Stats.RangeExponent ?? needed);
            return;
        }
        if (needed <= e) return;
        FoldScratch(p.Scratch, p.Stats.NumBins, needed - e);
        p.Exponent = needed;
    }

    /// <summary>Folds a scratch in place into a range 2^k times wider: bin i's counts move to bin i &gt;&gt; k of the same half and copy.</summary>
    private static void FoldScratch(int[] h, int bins, int k)
    {
        int shift = Math.Min(k, 31);
        for (int half = 0; half < h.Length; half += bins)
            for (int i = 1; i < bins; i++)
            {
                int c = h[half + i];
                if (c == 0) continue;
                h[half + i] = 0;
                h[half + (i >> shift)] += c;
            }
    }

    /// <summary>A piece holding NaN or infinities: those are counted, the finite elements binned one at a time.</summary>
    private static void PendNonFinite(Pending p, ReadOnlySpan<float> x)
    {
        var (min, max, finite) = FiniteSummary(x);
        p.NonFinite += x.Length - finite;
        if (finite == 0) return;
        Pend(p, min, max, finite);
        float absMax = MathF.Max(-min, max);
        if (!(absMax > 0) && p.Exponent is null) { p.Zeros += finite; return; }
        Widen(p, absMax);
        int bins = p.Stats.NumBins, last = bins - 1;
        float factor = p.BinFactor;
        foreach (var v in x)
        {
            if (!float.IsFinite(v)) continue;
            p.Scratch[Math.Min((int)(MathF.Abs(v) * factor), last) + (v < 0 ? bins : 0)]++;
        }
        p.Binned += finite;
    }

    /// <summary>Adds a lane's pending counts to its value's statistics, in the wider of the two ranges; the scratch is left empty.</summary>
    private static void Empty(Pending p)
    {
        var s = p.Stats;
        if (p.Count > 0) Merge(s, p.Min, p.Max, p.Count);
        s.NonFinite += p.NonFinite;
        s.Positive[0] += p.Zeros;
        if (p.Exponent is int e)
        {
            s.EnsureExponent(e);
            var (positive, negative) = HistogramKernels.Reach(p.Min, p.Max, p.BinFactor, s.NumBins);
            HistogramKernels.Drain(p.Scratch, s.NumBins, s.Positive, s.Negative, positive, negative, s.RangeExponent!.Value - e);
        }
        p.Min = float.PositiveInfinity;
        p.Max = float.NegativeInfinity;
        p.Count = p.NonFinite = p.Zeros = p.Binned = 0;
        p.Exponent = null;
    }

    /// <summary>Adds the pending counts of every value seen in pieces: called before anything else is observed or read.</summary>
    private void FlushPieces()
    {
        foreach (var l in _lanes)
        {
            foreach (var p in l.Pieces)
            {
                Empty(p);
                l.Idle.Push(p.Scratch);
            }
            l.Pieces.Clear();
        }
    }

    private static void Merge(TensorStatistics s, float min, float max, long count)
    {
        if (s.Count == 0) { s.Min = min; s.Max = max; }
        else { s.Min = MathF.Min(s.Min, min); s.Max = MathF.Max(s.Max, max); }
        s.Count += count;
    }

    private (float Min, float Max) ChannelMinMax(TensorStatistics s, Tensor t)
    {
        var x = t.ReadOnlySpan<float>();
        int channels = t.Shape[1];
        int inner = x.Length / (t.Shape[0] * channels);
        if (s.ChannelsDropped) return (TensorPrimitives.Min(x), TensorPrimitives.Max(x));
        bool fresh = s.ChannelMin is null;
        if (!fresh && s.ChannelMin!.Length != channels)
        {
            DropChannels(s);
            return (TensorPrimitives.Min(x), TensorPrimitives.Max(x));
        }
        var cmin = s.ChannelMin ?? new float[channels];
        var cmax = s.ChannelMax ?? new float[channels];
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        bool nonFinite = false;
        for (int c = 0; c < channels; c++)
        {
            float lo = float.PositiveInfinity, hi = float.NegativeInfinity;
            for (int n = 0; n < t.Shape[0]; n++)
            {
                var block = x.Slice((n * channels + c) * inner, inner);
                float bl = TensorPrimitives.Min(block), bh = TensorPrimitives.Max(block);
                if (!float.IsFinite(bl) || !float.IsFinite(bh)) { nonFinite = true; bl = FiniteMin(block); bh = FiniteMax(block); }
                lo = MathF.Min(lo, bl);
                hi = MathF.Max(hi, bh);
            }
            cmin[c] = fresh ? lo : MathF.Min(cmin[c], lo);
            cmax[c] = fresh ? hi : MathF.Max(cmax[c], hi);
            min = MathF.Min(min, lo);
            max = MathF.Max(max, hi);
        }
        s.ChannelMin = cmin;
        s.ChannelMax = cmax;
        return nonFinite ? (float.NaN, float.NaN) : (min, max);
    }

    private static void DropChannels(TensorStatistics s)
    {
        s.ChannelsDropped = true;
        s.ChannelMin = null;
        s.ChannelMax = null;
    }

    private static float FiniteMin(ReadOnlySpan<float> x)
    {
        float m = float.PositiveInfinity;
        foreach (var v in x) if (float.IsFinite(v) && v < m) m = v;
        return m;
    }

    private static float FiniteMax(ReadOnlySpan<float> x)
    {
        float m = float.NegativeInfinity;
        foreach (var v in x) if (float.IsFinite(v) && v > m) m = v;
        return m;
    }

    /// <summary>Min, max and count of the finite elements (the slow paths' first step).</summary>
    private static (float Min, float Max, long Finite) FiniteSummary(ReadOnlySpan<float> x)
    {
        long finite = 0;
        foreach (var v in x) if (float.IsFinite(v)) finite++;
        return (FiniteMin(x), FiniteMax(x), finite);
    }

    /// <summary>The slow path for tensors holding NaN or infinities: those are counted and skipped.</summary>
    private static void AddWithNonFinite(TensorStatistics s, ReadOnlySpan<float> x)
    {
        var (min, max, finite) = FiniteSummary(x);
        s.NonFinite += x.Length - finite;
        if (finite == 0) return;
        Merge(s, min, max, finite);
        s.EnsureRange(MathF.Max(-min, max));
        if (s.RangeExponent is null) { s.Positive[0] += finite; return; }
        HistogramKernels.BinScalar(x, s.BinFactor, s.NumBins, s.Positive, s.Negative);
    }

    private int _parts;
    /// <summary>The histogram copies the last <see cref="BinParallel"/> counted in.</summary>
    private int _copies = HistogramKernels.Copies;

    /// <summary>
    /// Below this many elements a tensor is counted in one copy of the histogram: emptying four copies over the bins
    /// its range reaches (up to 4 x 2 x num_bin counters) would cost more than spreading its few increments saves.
    /// </summary>
    private const int OneCopyThreshold = 1 << 14;

    /// <summary>Bins the tensor into the per-thread scratch histograms (empty before); returns its min and max.</summary>
    private (float Min, float Max) BinParallel(TensorStatistics s, float[] array, int length)
    {
        int bins = s.NumBins;
        float factor = s.BinFactor;
        int parts = length >= ParallelThreshold ? Math.Min(_threads, length / (ParallelThreshold / 2)) : 1;
        _parts = parts;
        for (int p = 0; p < parts; p++)
            if (_scratch[p] is not { } h || h.Length != HistogramKernels.ScratchLength(bins)) _scratch[p] = new int[HistogramKernels.ScratchLength(bins)];
        _copies = length < OneCopyThreshold ? 1 : HistogramKernels.Copies;
        if (parts == 1)
            return _copies == 1 ? HistogramKernels.BinOneCopy(array.AsSpan(0, length), factor, bins, _scratch[0])
                : HistogramKernels.Bin(array.AsSpan(0, length), factor, bins, _scratch[0]);
        var mins = new float[parts];
        var maxs = new float[parts];
        int chunk = (length + parts - 1) / parts;
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, p =>
        {
            int start = p * chunk, end = Math.Min(length, start + chunk);
            (mins[p], maxs[p]) = start < end
                ? HistogramKernels.Bin(array.AsSpan(start, end - start), factor, bins, _scratch[p])
                : (float.PositiveInfinity, float.NegativeInfinity);
        });
        float min = mins[0], max = maxs[0];
        for (int p = 1; p < parts; p++) { min = MathF.Min(min, mins[p]); max = MathF.Max(max, maxs[p]); }
        return (min, max);
    }

    /// <summary>
    /// Adds the scratch histograms of the last <see cref="BinParallel"/> (whose data, between <paramref name="min"/> and
    /// <paramref name="max"/>, fit the range) to the statistics and empties them: only the bins that data can reach are read.
    /// </summary>
    private void Accumulate(TensorStatistics s, float min, float max)
    {
        var (positive, negative) = HistogramKernels.Reach(min, max, s.BinFactor, s.NumBins);
        for (int p = 0; p < _parts; p++) HistogramKernels.Drain(_scratch[p], s.NumBins, s.Positive, s.Negative, positive, negative, 0, _copies);
    }

    /// <summary>Empties the scratch of a binning whose data did not fit the range (clamped indices can be anywhere).</summary>
    private void DiscardParts(int bins)
    {
        for (int p = 0; p < _parts; p++) Array.Clear(_scratch[p], 0, HistogramKernels.ScratchLength(bins));
    }

    /// <summary>A snapshot of the statistics (deep copy), tagged with the caller's cache key.</summary>
    public CalibrationStatistics ToStatistics(string cacheKey)
    {
        FlushPieces();
        var ordered = _rank is null ? _order
            : _order.Select((s, i) => (s, i)).OrderBy(e => _rank.TryGetValue(e.s.Name, out var r) ? r : int.MaxValue).ThenBy(e => e.i).Select(e => e.s);
        return new(cacheKey, NumBins, ordered.Select(Copy).ToList());
    }

    private static TensorStatistics Copy(TensorStatistics s)
    {
        var c = new TensorStatistics(s.Name, s.NumBins)
        {
            Count = s.Count, NonFinite = s.NonFinite, Min = s.Min, Max = s.Max, RangeExponent = s.RangeExponent,
            ChannelMin = (float[]?)s.ChannelMin?.Clone(), ChannelMax = (float[]?)s.ChannelMax?.Clone(),
        };
        c.SetHistograms((long[])s.Positive.Clone(), (long[])s.Negative.Clone());
        return c;
    }
}
