using Quant.Core.Data;
using Quant.Core.Diagnostics;
using Quant.Core.Stages;
using Quant.Engine;

namespace Quant.Core.Calibration;

/// <summary>The statistics of one histogram size: over every sample, and over the samples candidates are fitted on.</summary>
public sealed record StatisticsPair(int NumBins, CalibrationStatistics All, CalibrationStatistics Fit);

/// <summary>What the calibration pass produced.</summary>
public sealed class CalibrationRun
{
    /// <summary>One entry per num_bin candidate, in the config's order (the first is the primary).</summary>
    public required IReadOnlyList<StatisticsPair> Statistics { get; init; }
    public required HeldOutSplit Split { get; init; }
    /// <summary>The inputs of <see cref="HeldOutSplit.ScoredBatches"/>, in that order.</summary>
    public required IReadOnlyList<IReadOnlyDictionary<string, Tensor>> ScoredInputs { get; init; }
    /// <summary>Where the primary (all-sample) statistics are cached.</summary>
    public required string CachePath { get; init; }
    public required bool FromCache { get; init; }
    /// <summary>Canonical warnings: a cache file that exists but is damaged (QB4003).</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    public StatisticsPair Of(int numBins) => Statistics.First(s => s.NumBins == numBins);
}

/// <summary>
/// The calibration pass: one streamed run of the float model over the data, observed by one
/// <see cref="CalibrationCollector"/> per num_bin candidate. Held-out batches (<see cref="HeldOutSplit"/>) run last, so
/// the statistics are snapshotted once without them (what candidates are derived from before being scored on them)
/// and once with them (what the exported scales come from). Both are cached on disk under keys that name the
/// model, the data, the statistics settings and the split, so a changed precision setting re-derives scales
/// without running calibration again.
/// </summary>
public static class CalibrationPass
{
    public static CalibrationRun Run(InferenceSession floatSession, string modelPath, CalibrationDataSet data, string cacheDirectory, string name,
        string baseKey, IReadOnlyList<int> numBins, bool perChannel, int maxScored, int threads, Action<int, int>? progress, CancellationToken cancel)
    {
        var split = HeldOutSplit.Choose(data.BatchSamples, maxScored);
        var bins = numBins.Distinct().ToList();
        string AllKey(int b) => $"{baseKey};num_bin={b};per_channel={perChannel}";
        string FitKey(int b) => AllKey(b) + ";" + split.Describe();
        string PathOf(int b, bool fit) =>
            Path.Combine(cacheDirectory, name + ".calibration" + (b == bins[0] ? "" : $".bin{b}") + (fit ? ".fit" : "") + ".qcs");

        var cached = new List<StatisticsPair>();
        var warnings = new List<string>();
        foreach (var b in bins)
        {
            var all = LoadCache(PathOf(b, false), AllKey(b), warnings);
            var fit = split.IsHeldOut ? LoadCache(PathOf(b, true), FitKey(b), warnings) : all;
            if (all is null || fit is null) break;
            cached.Add(new StatisticsPair(b, all, fit));
        }
        bool fromCache = cached.Count == bins.Count;
        var scoredSet = new HashSet<int>(split.ScoredBatches);
        var scored = new SortedDictionary<int, IReadOnlyDictionary<string, Tensor>>();
        var order = ValueOrder(floatSession);
        var collectors = fromCache ? [] : bins.Select(b => new CalibrationCollector(numBins: b, perChannel: perChannel, threads: threads, valueOrder: order)).ToList();
        var observer = new FanOut(collectors);
        int done = 0, count = data.BatchSamples.Count, index = 0;
        progress?.Invoke(0, count);
        foreach (var batch in data.Batches())
        {
            cancel.ThrowIfCancellationRequested();
            int i = index++;
            if (scoredSet.Contains(i)) scored[i] = batch;
            if (fromCache || (split.IsHeldOut && scoredSet.Contains(i))) continue;
            StageModels.Run(floatSession, batch, modelPath, new RunOptions { Observer = observer });
            progress?.Invoke(++done, count);
        }
        if (fromCache)
            return new CalibrationRun { Statistics = cached, Split = split, ScoredInputs = scored.Values.ToList(), CachePath = PathOf(bins[0], false), FromCache = true, Warnings = warnings };

        var fits = split.IsHeldOut ? collectors.Select((c, k) => c.ToStatistics(FitKey(bins[k]))).ToList() : null;
        if (split.IsHeldOut)
            foreach (var batch in scored.Values)
            {
                cancel.ThrowIfCancellationRequested();
                StageModels.Run(floatSession, batch, modelPath, new RunOptions { Observer = observer });
                progress?.Invoke(++done, count);
            }
        var pairs = new List<StatisticsPair>();
        for (int k = 0; k < bins.Count; k++)
        {
            var all = collectors[k].ToStatistics(AllKey(bins[k]));
            all.Save(PathOf(bins[k], false));
            var fit = fits?[k] ?? all;
            if (fits is not null) fit.Save(PathOf(bins[k], true));
            pairs.Add(new StatisticsPair(bins[k], all, fit));
        }
        return new CalibrationRun { Statistics = pairs, Split = split, ScoredInputs = scored.Values.ToList(), CachePath = PathOf(bins[0], false), FromCache = false, Warnings = warnings };
    }

    /// <summary>
    /// A cache file's statistics under <paramref name="key"/>, else null; a file that exists but cannot be read at all
    /// (cut short by a kill or a full disk, damaged) adds a QB4003 warning naming it: calibration runs again and
    /// rewrites it, so the next build reads it silently.
    /// </summary>
    private static CalibrationStatistics? LoadCache(string path, string key, List<string> warnings)
    {
        var stats = CalibrationStatistics.TryLoad(path, key, out var damage);
        if (damage is not null)
            warnings.Add($"{SourcePosition.InFile(path)}: warning {ErrorCode.CalibrationCacheDamaged.Text()}: the calibration cache '{Path.GetFileName(path)}' " +
                $"cannot be read: {damage}; calibrating again and rewriting it");
        return stats;
    }

    /// <summary>
    /// The order an unfused run observes values in (graph inputs, then every node's outputs in plan order): the
    /// statistics keep it whether or not the run fuses elementwise chains.
    /// </summary>
    public static IReadOnlyList<string> ValueOrder(InferenceSession session) =>
        session.Inputs.Select(i => i.Name).Concat(session.PlannedNodes.SelectMany(n => n.Outputs)).Where(n => n.Length > 0).ToList();

    /// <summary>Hands every observed value (and every piece of one inside a fused chain) to each collector (one per num_bin candidate).</summary>
    private sealed class FanOut(IReadOnlyList<CalibrationCollector> collectors) : ITileObserver
    {
        public bool TakesTiles => collectors.All(c => c.TakesTiles);

        public Tensor? OnValue(in ObservedValue value)
        {
            foreach (var c in collectors) c.OnValue(value);
            return null;
        }

        public int TileLanes => collectors.Count == 0 ? 1 : collectors.Min(c => c.TileLanes);

        public void OnTile(string name, ReadOnlySpan<float> tile, int lane)
        {
            foreach (var c in collectors) c.OnTile(name, tile, lane);
        }
    }
}
