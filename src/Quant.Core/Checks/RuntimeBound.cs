using Quant.Core.Analysis;

namespace Quant.Core.Checks;

/// <summary>
/// The bound runtime_vs_qat applies to an output no rule bounds: how closely ONNX Runtime may be expected to agree
/// with the engine on the same qat model, given how far the model's own outputs move under last-bit float noise
/// (<see cref="LastBitStability"/>). A model stable under that noise must agree at <see cref="StableCosine"/>; a
/// fragile one within <see cref="NoiseFactor"/> times its floor's distance from 1 — the floor is the worst of a few
/// nudged runs, a sample of a heavy-tailed spread, and another runtime is one more draw from it: it may land below
/// the sampled worst, but not twice as far (the criterion the export tests hold the engine to against ORT).
/// </summary>
public static class RuntimeBound
{
    public const double StableCosine = 0.9999;
    public const double NoiseFactor = 2.0;

    /// <summary>The minimum cosine over samples for an output whose last-bit floor (min cosine) is <paramref name="floor"/>.</summary>
    public static (double MinCosine, bool Stable) For(LastBitStability.OutputStability floor) =>
        floor.MinCosine >= StableCosine ? (StableCosine, true) : (1 - NoiseFactor * (1 - floor.MinCosine), false);
}
