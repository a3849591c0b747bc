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
/// the values inside them arrive in pieces (<see cref="OnTile"/>). The statistics are the same numbers either way,
/// because a histogram folded to a wider range is exactly the one binned there directly (<see cref="TensorStatistics"/>):
/// each piece is binned into the range that covers everything seen so far, and the counts pending in the piece
/// scratch are added and folded whenever the range must grow. Only the first-observation order could differ (a fused
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
        + (_idleScratch.Count + _pieces.Count) * (long)HistogramKernels.ScratchLength(NumBins) * 4;

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
            if (!float.IsFinite(smin) || !float.IsFinite(smax)) { AddWithNonFinite(s, x); return; }
            Merge(s, smin, smax, x.Length);
            if (!s.Covers(MathF.Max(-smin, smax)))
            {
                s.EnsureRange(MathF.Max(-smin, smax));
                BinParallel(s, array, x.Length);
            }
            Accumulate(s);
            return;
        }

        var (min, max) = PerChannel && t.Rank >= 2 ? ChannelMinMax(s, t) : (TensorPrimitives.Min(x), TensorPrimitives.Max(x));
        if (!float.IsFinite(min) || !float.IsFinite(max))
        {
            AddWithNonFinite(s, x);
            return;
        }
        Merge(s, min, max, x.Length);
        s.EnsureRange(MathF.Max(-min, max));
        if (s.RangeExponent is null) { s.Positive[0] += x.Length; return; } // every element is 0
        BinParallel(s, array, x.Length);
        Accumulate(s);
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

    /// <summary>The values whose pieces are being binned, each with its scratch of pending counts (in the current range).</summary>
    private readonly List<(TensorStatistics Stats, int[] Scratch)> _pieces = [];
    private readonly Stack<int[]> _idleScratch = new();

    /// <summary>Folds the next piece of a value inside a fused chain into its statistics.</summary>
    public void OnTile(string name, ReadOnlySpan<float> x)
    {
        if (_observe is not null && !_observe.Contains(name)) return;
        if (x.Length == 0) return;
        int p = _pieces.FindIndex(e => e.Stats.Name == name);
        if (p < 0)
        {
            var scratch = _idleScratch.Count > 0 ? _idleScratch.Pop() : new int[HistogramKernels.ScratchLength(NumBins)];
            _pieces.Add((StatisticsOf(name), scratch));
            p = _pieces.Count - 1;
        }
        var (s, h) = _pieces[p];
        float min = TensorPrimitives.Min(x), max = TensorPrimitives.Max(x);
        if (!float.IsFinite(min) || !float.IsFinite(max))
        {
            AddPending(s, h);
            AddWithNonFinite(s, x);
            return;
        }
        Merge(s, min, max, x.Length);
        float absMax = MathF.Max(-min, max);
        if (!s.Covers(absMax))
        {
            // The pending counts belong to the old range: add them before it grows (EnsureRange folds them exactly).
            AddPending(s, h);
            s.EnsureRange(absMax);
        }
        if (s.RangeExponent is null) { s.Positive[0] += x.Length; return; } // every element so far is 0
        HistogramKernels.Bin(x, s.BinFactor, s.NumBins, h);
    }

    private static void AddPending(TensorStatistics s, int[] scratch)
    {
        HistogramKernels.AddTo(scratch, s.NumBins, s.Positive, s.Negative);
        Array.Clear(scratch);
    }

    /// <summary>Adds the pending counts of every value seen in pieces: called before anything else is observed or read.</summary>
    private void FlushPieces()
    {
        if (_pieces.Count == 0) return;
        foreach (var (s, h) in _pieces)
        {
            AddPending(s, h);
            _idleScratch.Push(h);
        }
        _pieces.Clear();
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

    /// <summary>The slow path for tensors holding NaN or infinities: those are counted and skipped.</summary>
    private static void AddWithNonFinite(TensorStatistics s, ReadOnlySpan<float> x)
    {
        float min = FiniteMin(x), max = FiniteMax(x);
        long finite = 0;
        foreach (var v in x) if (float.IsFinite(v)) finite++;
        s.NonFinite += x.Length - finite;
        if (finite == 0) return;
        Merge(s, min, max, finite);
        s.EnsureRange(MathF.Max(-min, max));
        if (s.RangeExponent is null) { s.Positive[0] += finite; return; }
        HistogramKernels.BinScalar(x, s.BinFactor, s.NumBins, s.Positive, s.Negative);
    }

    private int _parts;

    /// <summary>Bins the tensor into the per-thread scratch histograms; returns its min and max.</summary>
    private (float Min, float Max) BinParallel(TensorStatistics s, float[] array, int length)
    {
        int bins = s.NumBins;
        float factor = s.BinFactor;
        int parts = length >= ParallelThreshold ? Math.Min(_threads, length / (ParallelThreshold / 2)) : 1;
        _parts = parts;
        for (int p = 0; p < parts; p++)
        {
            var h = _scratch[p];
            if (h is null || h.Length != HistogramKernels.ScratchLength(bins)) _scratch[p] = new int[HistogramKernels.ScratchLength(bins)];
            else Array.Clear(h);
        }
        if (parts == 1) return HistogramKernels.Bin(array.AsSpan(0, length), factor, bins, _scratch[0]);
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

    /// <summary>Adds the scratch histograms of the last <see cref="BinParallel"/> to the statistics.</summary>
    private void Accumulate(TensorStatistics s)
    {
        for (int p = 0; p < _parts; p++) HistogramKernels.AddTo(_scratch[p], s.NumBins, s.Positive, s.Negative);
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
