using Quant.Core.Calibration;
using Quant.Core.Config;
using Quant.Engine;

namespace Quant.Core.Tests.Calibration;

/// <summary>The pieces of the calibration choice: which samples are held out, which candidates the lists describe, how outputs are scored.</summary>
public class CalibrationChoiceTests
{
    private static IReadOnlyList<IReadOnlyList<int>> Batches(int samples, int perBatch) =>
        Enumerable.Range(0, (samples + perBatch - 1) / perBatch)
            .Select(b => (IReadOnlyList<int>)Enumerable.Range(b * perBatch, Math.Min(perBatch, samples - b * perBatch)).ToList()).ToList();

    [Fact]
    public void A_quarter_of_the_samples_at_most_sixteen_is_held_out_spread_over_the_data()
    {
        var split = HeldOutSplit.Choose(Batches(64, 1));
        Assert.True(split.IsHeldOut);
        Assert.Equal(Enumerable.Range(0, 16).Select(j => 2 + 4 * j), split.ScoredBatches);
        Assert.Equal([5, 15, 25, 35, 45, 55, 65, 75, 85, 95, 105, 115, 125, 135, 145, 155], HeldOutSplit.Choose(Batches(160, 1)).ScoredBatches);
        var small = HeldOutSplit.Choose(Batches(16, 1));
        Assert.Equal([1, 5, 8], HeldOutSplit.Choose(Batches(20, 2)).ScoredBatches); // 5 samples wanted: 3 batches of 2
        Assert.Equal(4, small.ScoredBatches.Count);
        Assert.Equal("held_out=2,6,10,14", small.Describe());
    }

    [Fact]
    public void Too_few_samples_are_all_kept_for_the_statistics_and_the_first_ones_are_scored()
    {
        var split = HeldOutSplit.Choose(Batches(12, 1));
        Assert.False(split.IsHeldOut);
        Assert.Equal(Enumerable.Range(0, 12), split.ScoredBatches);
        // Batches larger than the scored budget: still one batch is scored.
        Assert.Equal([0], HeldOutSplit.Choose(Batches(12, 10), maxScored: 4).ScoredBatches);
        Assert.Equal([0, 1], HeldOutSplit.Choose(Batches(12, 1), maxScored: 2).ScoredBatches);
    }

    [Fact]
    public void Search_lists_cross_every_method_with_every_sign_channel_and_bin_entry()
    {
        var plain = CalibrationCandidates.Of(new ActivationConfig());
        Assert.Equal(["max", "percentile(0.99995)", "kl", "mse"], plain.Select(c => c.Label));

        var lists = CalibrationCandidates.Of(new ActivationConfig
        {
            CalibrationTypes = [CalibrationMethod.Max, CalibrationMethod.Kl],
            Asymmetric = [false, true],
            PerChannel = [false, true],
            NumBins = 1024,
            NumBinCandidates = [1024, 2048],
        });
        Assert.Equal(2 * 2 * 2 * 2, lists.Count);
        Assert.Equal("max symmetric per_tensor num_bin=1024", lists[0].Label);
        Assert.Contains(lists, c => c.Label == "kl asymmetric per_channel num_bin=2048" && c.Options.Asymmetric && c.Options.PerChannel
            && c.NumBins == 2048 && c.Options.Method == CalibrationMethod.Kl);
        Assert.Equal(lists.Count, lists.Select(c => c.Label).Distinct().Count());

        // A single true entry is named, a single false one is the default and is not.
        var asym = CalibrationCandidates.Of(new ActivationConfig { CalibrationTypes = [CalibrationMethod.Mse], Asymmetric = [true] });
        Assert.Equal(["mse asymmetric"], asym.Select(c => c.Label));
    }

    [Fact]
    public void The_score_is_the_worst_outputs_pooled_cosine()
    {
        var a = new OutputAgreement();
        // Output "good" is exact; output "bad" is off on the second sample. A near-zero sample barely counts.
        a.Add(Outputs(good: [1, 2], bad: [1, 0]), Outputs(good: [1, 2], bad: [1, 0]));
        a.Add(Outputs(good: [3, 4], bad: [0, 1]), Outputs(good: [3, 4], bad: [1, 0]));
        a.Add(Outputs(good: [1e-6f, 0], bad: [0, 1e-6f]), Outputs(good: [1e-6f, 0], bad: [1e-6f, 0]));
        var cos = a.Cosines.ToDictionary(c => c.Output, c => c.Cosine);
        Assert.Equal(1.0, cos["good"], 12);
        // Pooled: Σab = 1, Σa² = 2, Σb² = 2 (+1e-12) -> 0.5.
        Assert.Equal(0.5, cos["bad"], 6);
        Assert.Equal(cos["bad"], a.Score);
        Assert.Equal((cos["good"] + cos["bad"]) / 2, a.Mean, 12);

        var better = new OutputAgreement();
        better.Add(Outputs(good: [1, 2], bad: [1, 1]), Outputs(good: [1, 2], bad: [1, 0]));
        Assert.True(better.Beats(a));
        Assert.False(a.Beats(better));
        Assert.False(a.Beats(a));
    }

    private static Dictionary<string, Tensor> Outputs(float[] good, float[] bad) => new()
    {
        ["good"] = Tensor.From(good, good.Length),
        ["bad"] = Tensor.From(bad, bad.Length),
    };
}
