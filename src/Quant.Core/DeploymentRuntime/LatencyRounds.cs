namespace Quant.Core.DeploymentRuntime;

/// <summary>
/// Times several runs of different things (a model in the engine and in ONNX Runtime, a float and a qat model) in
/// one process by taking turns: each contestant runs a few times, then the next, for several rounds. On a shared
/// machine speed drifts by tens of percent between minutes; back-to-back phases would put that drift into the
/// ratios, while alternating hits every contestant alike, so same-run ratios stay meaningful.
/// </summary>
public static class LatencyRounds
{
    /// <summary>Rounds of turns: enough that a slow minute is shared, few enough that each turn has several runs.</summary>
    public const int DefaultRounds = 4;

    /// <param name="contestants">Each runs once per call and returns that run's wall time in milliseconds.</param>
    /// <param name="repeat">Timed runs per contestant in total, spread over the rounds (at least one per round).</param>
    /// <param name="warmup">Untimed runs per contestant before the first round (first-run allocation, caches).</param>
    /// <param name="warmupMs">
    /// and at least this long per contestant: .NET first runs code unoptimized and recompiles it after ~30 calls and a
    /// quiet 100 ms, so a small model's first hundreds of engine runs are up to 10x slower than its steady state.
    /// </param>
    /// <returns>Per contestant, its timed runs in order.</returns>
    public static IReadOnlyList<double>[] Measure(IReadOnlyList<Func<double>> contestants, int repeat, int warmup = 2, double warmupMs = 1500, int rounds = DefaultRounds)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(repeat, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(rounds, 1);
        foreach (var c in contestants)
        {
            double spent = 0;
            for (int w = 0; w < warmup || spent < warmupMs; w++) spent += c();
        }
        rounds = Math.Min(rounds, repeat);
        var times = contestants.Select(_ => new List<double>(repeat)).ToArray();
        for (int round = 0; round < rounds; round++)
        {
            // Spread evenly: repeat 10 over 4 rounds is 3, 3, 2, 2.
            int inRound = repeat / rounds + (round < repeat % rounds ? 1 : 0);
            for (int c = 0; c < contestants.Count; c++)
                for (int r = 0; r < inRound; r++) times[c].Add(contestants[c]());
        }
        return times;
    }

    /// <summary>The median (lower middle for an even count), the statistic every latency here is reported as.</summary>
    public static double Median(IReadOnlyList<double> times)
    {
        if (times.Count == 0) return double.NaN;
        var sorted = times.Order().ToArray();
        return sorted[(sorted.Length - 1) / 2];
    }
}
