using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Analysis;

/// <summary>
/// How far a model's outputs move when its float ops differ in the last bit — the difference any two correct
/// runtimes show (ONNX Runtime, this engine, a target's float units), because sums are taken in a different
/// order and exp/sigmoid are approximated differently. A float model shrugs that off; a quantized model may
/// not: a last-bit difference in front of a QuantizeLinear flips a rounding now and then, the flipped step
/// feeds the next layer, and through dozens of requantized layers the flips multiply. Measured by running
/// the model again with every rounding-dependent op's output nudged by ±1 ulp (a fixed pseudo-random pattern
/// per run) and comparing the outputs with a clean run. The result is what to expect when two runtimes run
/// the same qat model: if this is 0.97, they will disagree at about 0.97 too, and no kernel can fix that —
/// only a more robust quantization can.
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
    /// Runs per measurement. The effect of last-bit noise is heavy-tailed — most runs move a fragile model a
    /// little, an occasional one flips an argmax (one fragile rec model: 4 runs 0.9975, 8 runs 0.978, 16 runs 0.961) —
    /// so a few runs understate it.
    /// </summary>
    public const int DefaultRuns = 8;

    /// <summary>Per output: cosine of each nudged run against the clean run (min and mean over the runs).</summary>
    public sealed record OutputStability(string Output, double MinCosine, double AvgCosine, int Runs);

    public static IReadOnlyList<OutputStability> Measure(InferenceSession session, IReadOnlyDictionary<string, Tensor> inputs, int runs = DefaultRuns)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(runs, 1);
        // Float outputs only: the others (integer, string) have no cosine.
        var clean = session.Run(inputs).Where(o => o.Value.Type is ElementType.Float or ElementType.Float16 or ElementType.Double)
            .ToDictionary(o => o.Key, o => o.Value, StringComparer.Ordinal);
        var cosines = clean.Keys.ToDictionary(k => k, _ => new List<double>(), StringComparer.Ordinal);
        for (int run = 1; run <= runs; run++)
        {
            var nudged = session.Run(inputs, new RunOptions { Observer = new UlpNudge((uint)run) });
            foreach (var (name, reference) in clean) cosines[name].Add(Similarity.Of(nudged[name], reference).Cosine);
        }
        return clean.Keys.Select(k => new OutputStability(k, cosines[k].Min(), cosines[k].Average(), runs)).ToList();
    }

    /// <summary>
    /// Moves each float element of a rounding-dependent op's output one ulp away from zero (a quarter of them),
    /// one ulp towards zero (a quarter) or leaves it, from a xorshift sequence seeded by the run and the value's
    /// position in the plan: the same run nudges the same elements every time. The value is changed in place:
    /// these ops always write a fresh buffer that only their consumers read.
    /// </summary>
    private sealed class UlpNudge(uint run) : IValueObserver
    {
        private uint _values;

        public Tensor? OnValue(in ObservedValue value)
        {
            if (value.Producer is null || value.Value.Type != ElementType.Float || !RoundingDependentOps.Contains(value.Producer.OpType))
                return null;
            uint state = (run * 0x9E3779B9u) ^ (++_values * 0x85EBCA6Bu) | 1u;
            var bits = System.Runtime.InteropServices.MemoryMarshal.Cast<float, int>(value.Value.Span<float>());
            for (int i = 0; i < bits.Length; i++)
            {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                int magnitude = bits[i] & 0x7FFFFFFF;
                // Zero, infinities and NaN stay: there is no last bit to disagree on.
                if (magnitude == 0 || magnitude >= 0x7F800000) continue;
                switch (state >> 30)
                {
                    case 1: bits[i] += 1; break;
                    case 2: bits[i] -= 1; break;
                }
            }
            return null;
        }
    }
}
