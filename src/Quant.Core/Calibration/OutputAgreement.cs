using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Calibration;

/// <summary>
/// How well a quantized model's outputs agree with the float model's over a set of samples: per float output,
/// the cosine of all its samples taken together (Σab / √(Σa²·Σb²) over every element of every sample). Pooling
/// weights each sample by its energy, so a sample whose output is all but zero (a det map of a photo without text)
/// cannot drag the score to 0 the way a per-sample cosine does. The score is the worst output's cosine: a model with
/// a good and a bad output is judged by the bad one, not by a mean that the good one dominates. Ties (equal minima)
/// are broken by the mean over outputs. Sums run in double in element order: deterministic.
/// </summary>
public sealed class OutputAgreement
{
    private readonly SortedDictionary<string, (double Dot, double Aa, double Bb)> _sums = new(StringComparer.Ordinal);

    /// <summary>Adds one sample: the quantized model's outputs against the float model's.</summary>
    public void Add(IReadOnlyDictionary<string, Tensor> reference, IReadOnlyDictionary<string, Tensor> actual)
    {
        foreach (var (name, r) in reference)
        {
            if (r.Type != ElementType.Float || !actual.TryGetValue(name, out var a) || a.Type != ElementType.Float) continue;
            var x = a.ReadOnlySpan<float>();
            var y = r.ReadOnlySpan<float>();
            if (x.Length != y.Length) throw new ArgumentException($"output '{name}' has {x.Length} elements, the float model's {y.Length}");
            _sums.TryGetValue(name, out var s);
            for (int i = 0; i < x.Length; i++)
            {
                double p = x[i], q = y[i];
                if (double.IsNaN(p)) p = 0; // a NaN in the quantized output counts as a miss, not as a NaN score
                s.Dot += p * q; s.Aa += p * p; s.Bb += q * q;
            }
            _sums[name] = s;
        }
    }

    /// <summary>Pooled cosine per output, in output-name order.</summary>
    public IReadOnlyList<(string Output, double Cosine)> Cosines =>
        _sums.Select(kv => (kv.Key, Cosine(kv.Value.Dot, kv.Value.Aa, kv.Value.Bb))).ToList();

    /// <summary>The worst output's pooled cosine (1 when there are no float outputs).</summary>
    public double Score => _sums.Count == 0 ? 1 : Cosines.Min(c => c.Cosine);
    /// <summary>The mean over outputs of the pooled cosine: the tie-break.</summary>
    public double Mean => _sums.Count == 0 ? 1 : Cosines.Average(c => c.Cosine);

    /// <summary>True when this agreement beats <paramref name="other"/> (higher score, then higher mean).</summary>
    public bool Beats(OutputAgreement other) => Score > other.Score || (Score == other.Score && Mean > other.Mean);

    private static double Cosine(double dot, double aa, double bb) => aa == 0 && bb == 0 ? 1 : aa == 0 || bb == 0 ? 0 : dot / Math.Sqrt(aa * bb);
}
