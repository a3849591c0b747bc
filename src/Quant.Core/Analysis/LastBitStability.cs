using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Analysis;

/// <summary>
/// How far a model's outputs move when its float ops differ the way two correct runtimes differ (ONNX Runtime, this
/// engine, a target's float units): sums taken in a different order, exp/sigmoid approximated differently, biases
/// rounded to int32 by integer kernels. A float model shrugs that off; a quantized model may not: a small difference
/// in front of a QuantizeLinear flips a rounding now and then, the flipped step feeds the next layer, and through
/// dozens of requantized layers the flips multiply. Measured by running the model again with every rounding-dependent
/// op's output disturbed (a fixed pseudo-random pattern per run, see <see cref="Noise"/>) and comparing the outputs
/// with a clean run. The result is what to expect when two runtimes run the same qat model: if this is 0.97, they
/// will disagree at about 0.97 too, and no kernel can fix that — only a more robust quantization can.
/// </summary>
public static class LastBitStability
{
    /// <summary>
    /// Ops whose float result depends on summation order or on how a transcendental function is approximated.
    /// All other ops (QuantizeLinear, DequantizeLinear, Cast, elementwise arithmetic, Clip, data movement) are
    /// exactly defined by IEEE arithmetic and must agree bit for bit between correct runtimes.
    /// </summary>
    public static readonly IReadOnlySet<string> RoundingDependentOps = new HashSet<string>(StringComparer.Ordinal)
    {
        "Conv", "ConvTranspose", "MatMul", "Gemm", "GlobalAveragePool", "AveragePool", "ReduceMean", "ReduceSum",
        "ReduceL2", "Softmax", "LogSoftmax", "Sigmoid", "Exp", "Log", "Tanh", "Erf", "LayerNormalization",
    };

    /// <summary>
    /// Runs per measurement. The effect of the noise is heavy-tailed — most runs move a fragile model a little, an
    /// occasional one flips an argmax — so a few runs understate it.
    /// </summary>
    public const int DefaultRuns = 8;

    /// <summary>Per output: cosine of each nudged run against the clean run (min and mean over the runs).</summary>
    public sealed record OutputStability(string Output, double MinCosine, double AvgCosine, int Runs);

    public static IReadOnlyList<OutputStability> Measure(InferenceSession session, IReadOnlyDictionary<string, Tensor> inputs, int runs = DefaultRuns)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(runs, 1);
        return Compare(session, inputs, runs, run => new Noise(run));
    }

    /// <summary>Runs the model clean, then once per run with the run's disturbance, and compares the float outputs.</summary>
    private static List<OutputStability> Compare(InferenceSession session, IReadOnlyDictionary<string, Tensor> inputs, int runs, Func<uint, IValueObserver> disturbance)
    {
        // Float outputs only: the others (integer, string) have no cosine.
        var clean = session.Run(inputs).Where(o => o.Value.Type is ElementType.Float or ElementType.Float16 or ElementType.Double)
            .ToDictionary(o => o.Key, o => o.Value, StringComparer.Ordinal);
        var cosines = clean.Keys.ToDictionary(k => k, _ => new List<double>(), StringComparer.Ordinal);
        for (int run = 1; run <= runs; run++)
        {
            var disturbed = session.Run(inputs, new RunOptions { Observer = disturbance((uint)run) });
            foreach (var (name, reference) in clean) cosines[name].Add(Similarity.Of(disturbed[name], reference).Cosine);
        }
        return clean.Keys.Select(k => new OutputStability(k, cosines[k].Min(), cosines[k].Average(), runs)).ToList();
    }

    /// <summary>
    /// Share of requantized integers the quantized model computes 1 LSB away from the qat run when fed the qat run's
    /// own integers (spec §2.4 predicts ~2η ≈ 1e-4 for int8; node by node on det performance, 640x640 photos, it is
    /// 1.1e-4..1.8e-4 over all integers, up to 3.5e-3 on single Convs where the int32 bias rounding of §4.5 adds to
    /// the ties). Injecting 10 times that (2e-3) wrecks det performance (cosine 0.18 where the quantized model
    /// agrees at 0.914): the rate matters, so this is the measured one, not a safe-looking upper end.
    /// </summary>
    public const double RequantizationFlipShare = 2e-4;

    /// <summary>
    /// The most a quantized model's own flip share may raise the injected one. rec's integer nodes, run node by node on
    /// the qat run's integers, break 8.4e-4..9.2e-4 of their ties the other way (symmetric and asymmetric alike; single
    /// Convs up to 1.1e-2), four times det's, so a floor injected at det's rate understates what rec's quantized model
    /// legitimately differs by. Above this share the difference is no longer ties: the floor stays at the cap and the
    /// check judges the model against it.
    /// </summary>
    public const double MaxFlipShare = 5e-3;

    /// <summary>The share a floor injects for a quantized model whose integer nodes flip <paramref name="measured"/> of their outputs.</summary>
    public static double FlipShareFor(double measured) => Math.Clamp(measured, RequantizationFlipShare, MaxFlipShare);

    /// <summary>
    /// Per output: how far the outputs move when a share <paramref name="flipShare"/> of every QuantizeLinear's
    /// integers is 1 LSB off (a fixed pseudo-random pattern per run) — the disturbance the quantized model's integer
    /// kernels are allowed against the qat run. <see cref="Measure"/> disturbs the float ops by ±1 ulp instead, which
    /// is what two float runtimes differ by; a requantization flip is a whole int8 step, far larger, so this is the
    /// floor for quantized_vs_qat and compiled-model checks against qat.
    /// </summary>
    public static IReadOnlyList<OutputStability> MeasureRequantizationFlips(InferenceSession session, IReadOnlyDictionary<string, Tensor> inputs,
        double flipShare = RequantizationFlipShare, int runs = DefaultRuns)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(runs, 1);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(flipShare);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(flipShare, 1.0);
        return Compare(session, inputs, runs, run => new Flips(run, flipShare));
    }

    /// <summary>
    /// Moves a pseudo-random share of each QuantizeLinear output's integers by one step up or down (xorshift seeded
    /// by the run and the value's position in the plan). Integers at the type's ends stay (a saturated value is far
    /// from any tie), and so do zeros: with the export's zero point 0 most are exact zeros (Relu, padding), which every
    /// runtime quantizes exactly.
    /// </summary>
    private sealed class Flips(uint run, double share) : IValueObserver
    {
        private uint _values;

        public Tensor? OnValue(in ObservedValue value)
        {
            if (value.Producer is not { OpType: "QuantizeLinear" } || value.Value.Type is not (ElementType.Int8 or ElementType.Int16)) return null;
            uint state = (run * 0x9E3779B9u) ^ (++_values * 0x85EBCA6Bu) | 1u;
            uint threshold = (uint)Math.Min(uint.MaxValue, share * 2.0 * (1u << 31));
            if (value.Value.Type == ElementType.Int8) Disturb(value.Value.Span<sbyte>(), sbyte.MinValue, sbyte.MaxValue);
            else Disturb(value.Value.Span<short>(), short.MinValue, short.MaxValue);
            return null;

            void Disturb<T>(Span<T> data, int min, int max) where T : struct, System.Numerics.IBinaryInteger<T>
            {
                for (int i = 0; i < data.Length; i++)
                {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    if (state >= threshold) continue;
                    int v = int.CreateTruncating(data[i]);
                    if (v == 0 || v == min || v == max) continue;
                    data[i] = T.CreateTruncating(v + ((state & 1) == 0 ? 1 : -1));
                }
            }
        }
    }

    /// <summary>
    /// Adds to each nonzero finite element of a rounding-dependent op's output a pseudo-random amount, uniform within
    /// ±1 ulp of the largest magnitude in that output (a xorshift sequence seeded by the run and the value's position
    /// in the plan: the same run disturbs the same elements the same way every time). The amplitude is absolute, not
    /// relative to each element, because that is how runtimes differ: a sum's rounding error scales with the size of
    /// its terms, so an output that cancels to near zero differs from ORT's by hundreds of its own ulps, and a
    /// quantized output's flips come from values near a rounding tie whatever their size. Measured against ORT on
    /// PaddleOCR rec performance (docs/implementation-notes.md): ±1 ulp of each element flipped ~1.5 Conv roundings
    /// per run — a value a few quantization steps large moves by ~1e-7 of a step, while ORT's sums differ from ours by
    /// ~1e-6 of a step whatever the value — where ORT's plain kernels flip 12–18 and its fused integer kernels
    /// hundreds; this amplitude flips ~60, between the two. Exact zeros stay (a sum of zero terms is
    /// zero in every runtime), and so do infinities and NaN. The value is changed in place: these ops always write a
    /// fresh buffer that only their consumers read.
    /// </summary>
    private sealed class Noise(uint run) : IValueObserver
    {
        private uint _values;

        public Tensor? OnValue(in ObservedValue value)
        {
            if (value.Producer is null || value.Value.Type != ElementType.Float || !RoundingDependentOps.Contains(value.Producer.OpType))
                return null;
            var data = value.Value.Span<float>();
            float largest = 0;
            foreach (var x in data)
                if (float.IsFinite(x)) largest = MathF.Max(largest, MathF.Abs(x));
            if (largest == 0) return null;
            double ulp = MathF.BitIncrement(largest) - largest;
            uint state = (run * 0x9E3779B9u) ^ (++_values * 0x85EBCA6Bu) | 1u;
            for (int i = 0; i < data.Length; i++)
            {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                if (data[i] == 0 || !float.IsFinite(data[i])) continue;
                // 24 random bits -> [-1, 1)
                double u = (state >> 8) * (2.0 / (1 << 24)) - 1;
                data[i] = (float)(data[i] + u * ulp);
            }
            return null;
        }
    }
}
