using Quant.Core.Analysis;
using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Core.Stages;

namespace Quant.Core.Checks;

/// <summary>
/// The checks a stage pair applies without any rule (docs/quantization-spec.md §14), reported at <c>checks:</c> in the
/// yaml (where a rule would go), else at the model file they judge:
/// <list type="bullet">
/// <item>runtime_vs_qat and quantized_vs_qat: on every output no rule of that pair bounds, the worst sample's cosine
/// against the bound from the qat model's last-bit stability (<see cref="RuntimeBound"/>: 0.9999 for a stable model,
/// else twice the floor's distance from 1); for quantized_vs_qat the floor is the lower of the ±1-ulp floor and the
/// ±1-LSB requantization-flip floor;</item>
/// <item>compiled_vs_quantized: identical bytes on every output of every sample, always (rules add bounds, they
/// cannot loosen this one): a difference is a bug, not a tolerance question.</item>
/// </list>
/// </summary>
internal static class DefaultBounds
{
    public static IEnumerable<CheckOutcome> RuntimeVsQat(CheckMeasurements m, SimilarityTable table) =>
        FromStability(m, table, m.Stability, CheckStagePair.RuntimeVsQat, ErrorCode.CheckRuntimeDisagrees,
            (qat, stableAt) => ($"ONNX Runtime {m.Runtime!.Version} with all optimizations against the engine on {qat}", $"runtimes must agree at {stableAt}"),
            "the deployed model does not compute what the qat model simulates (an int32 bias overflow, integer kernels rounding differently)");

    // The integer model may differ from qat by whole-LSB requantization flips (spec §2.4, §14), a larger disturbance than
    // the ±1-ulp float noise runtime_vs_qat is judged by: its floor is the lower of the two.
    public static IEnumerable<CheckOutcome> QuantizedVsQat(CheckMeasurements m, SimilarityTable table) =>
        FromStability(m, table, LowerFloor(m.Stability, m.FlipStability), CheckStagePair.QuantizedVsQat, ErrorCode.CheckQuantizedDisagrees,
            (qat, stableAt) => ($"{Path.GetFileName(m.QuantizedModelPath)} against {qat}, both in the engine",
                                $"only requantization ties may flip (node by node on the first sample, {Format.Number(m.FlipShare)} of the integers did; the flip floor injects that share), and the integer model must agree at {stableAt}"),
            "the integer model does not compute what the qat model simulates beyond rounding ties (a convert rule or an integer " +
            "kernel that rounds or saturates differently from the qat model's Q/DQ arithmetic)");

    private static IReadOnlyList<LastBitStability.OutputStability> LowerFloor(
        IReadOnlyList<LastBitStability.OutputStability> ulp, IReadOnlyList<LastBitStability.OutputStability> flips) =>
        ulp.Select(u => flips.FirstOrDefault(f => f.Output == u.Output) is { } f && f.MinCosine < u.MinCosine ? f : u).ToList();

    private static IEnumerable<CheckOutcome> FromStability(CheckMeasurements m, SimilarityTable table,
        IReadOnlyList<LastBitStability.OutputStability> stability, CheckStagePair stage, ErrorCode code,
        Func<string, string, (string What, string Stable)> describe, string failure)
    {
        var checks = m.Config.CheckRules;
        var at = checks.Position.File is not null ? checks.Position : SourcePosition.InFile(m.QatModelPath);
        var name = CheckNames.Of(stage);
        foreach (var output in table.Outputs)
        {
            if (checks.Rules.Any(r => r.Stage == stage && r.Thresholds.Count > 0 && r.Covers(output))) continue;
            var floor = stability.First(s => s.Output == output);
            var (bound, stable) = RuntimeBound.For(floor);
            var value = table.Of(output, s => s.Cosine).Min;
            bool ok = value >= bound;
            var (v, l) = Format.Pair(value, bound);
            // The floor at the precision that keeps its side of the stable limit visible.
            var (f, stableText) = Format.Pair(floor.MinCosine, RuntimeBound.StableCosine);
            var (what, stableWhy) = describe(Path.GetFileName(m.QatModelPath), stableText);
            var why = stable
                ? $"the model is stable under last-bit noise (floor {f}), so {stableWhy}"
                : $"the model is fragile under last-bit noise (floor {f}), so the bound is 1 - {Format.Number(RuntimeBound.NoiseFactor)} x (1 - floor)";
            yield return new CheckOutcome
            {
                Kind = CheckKind.Default, Rule = null, Stage = stage, Output = output, Metric = CheckNames.Of(CheckMetric.Cosine),
                Aggregate = CheckAggregate.Min, Value = value, Limit = bound, Lower = true, NoiseFloor = floor.MinCosine,
                DefaultBound = stable ? DefaultBoundKind.Stable : DefaultBoundKind.Fragile, Passed = ok, Position = at, Code = code,
                Message = $"{m.Name}: {name} output '{output}' cosine min {v} {CheckStage.Compare(ok, true)} {l} ({what}; default bound: {why})" +
                          (ok ? "" : $"; {failure}; bound it yourself with a 'stage: {name}' rule under checks:"),
            };
        }
    }

    public static IEnumerable<CheckOutcome> CompiledVsQuantized(CheckMeasurements m, BitExactness exactness)
    {
        var checks = m.Config.CheckRules;
        var at = checks.Position.File is not null ? checks.Position : SourcePosition.InFile(m.CompiledModelPath!);
        var qbm = Path.GetFileName(m.CompiledModelPath);
        var quantized = Path.GetFileName(m.QuantizedModelPath);
        foreach (var output in exactness.Outputs)
        {
            var e = exactness.Of(output);
            var (v, _) = Format.Pair(e.MaxAbsDiff, 0);
            var message = e.Exact
                ? $"{m.Name}: compiled_vs_quantized output '{output}' is bit-exact: {qbm} in Quant.Runtime and {quantized} in the engine agree on all {e.Elements} elements of {e.Samples} samples"
                : $"{m.Name}: compiled_vs_quantized output '{output}' is not bit-exact: {e.DifferingElements} of {e.Elements} elements differ in {e.DifferingSamples} of {e.Samples} samples " +
                  $"(max |diff| {v}; first at sample {e.First!.Value.Sample}, element {e.First.Value.Element}: {e.First.Value.Detail}). {qbm} must compute exactly what {quantized} " +
                  "does, so this is a bug in compile or in Quant.Runtime, not an accuracy question: please report it with the model";
            yield return new CheckOutcome
            {
                Kind = CheckKind.Default, Rule = null, Stage = CheckStagePair.CompiledVsQuantized, Output = output, Metric = BitExactMetric,
                Aggregate = CheckAggregate.Max, Value = e.MaxAbsDiff, Limit = 0, Lower = false, DefaultBound = DefaultBoundKind.BitExact,
                Passed = e.Exact, Position = at, Code = ErrorCode.CheckCompiledNotBitExact, Message = message,
            };
        }
    }

    /// <summary>The measured value of the bit-exact check: max |compiled − quantized| (with every differing byte counted as failing).</summary>
    public const string BitExactMetric = "max_abs_diff";
}
