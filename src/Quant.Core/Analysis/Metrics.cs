using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Analysis;

/// <summary>
/// How close an output is to its reference, as the check tables report it. All sums run in double
/// over the elements in order, so values are deterministic.
/// <list type="bullet">
/// <item>Cosine: Σab / √(Σa²·Σb²); 1 when both are all zero, 0 when exactly one is.</item>
/// <item>L1: mean |a−b|. L2: √(mean (a−b)²) (root mean square error). Chebyshev: max |a−b|.</item>
/// <item>MSE: mean (a−b)². MRE: mean |a−b| / mean |b| (relative to the reference's magnitude).</item>
/// <item>SQNR: 10·log10(Σb² / Σ(a−b)²) dB; +∞ when identical.</item>
/// </list>
/// </summary>
public readonly record struct Similarity(double Cosine, double L1, double L2, double Chebyshev, double Mse, double Mre, double Sqnr)
{
    /// <summary>Compares <paramref name="actual"/> with <paramref name="reference"/> (same shape, float types).</summary>
    public static Similarity Of(Tensor actual, Tensor reference)
    {
        if (!actual.Shape.AsSpan().SequenceEqual(reference.Shape))
            throw new ArgumentException($"shapes differ: [{string.Join(",", actual.Shape)}] vs reference [{string.Join(",", reference.Shape)}]");
        var sums = new SimilaritySums();
        sums.Add(AsFloat(actual), AsFloat(reference));
        return sums.Result();
    }

    private static float[] AsFloat(Tensor t) => t.Type switch
    {
        ElementType.Float => t.ReadOnlySpan<float>().ToArray(),
        ElementType.Float16 => t.ReadOnlySpan<Half>().ToArray().Select(h => (float)h).ToArray(),
        ElementType.Double => t.ReadOnlySpan<double>().ToArray().Select(d => (float)d).ToArray(),
        _ => throw new ArgumentException($"similarity of {t.Type.OnnxName()} tensors is not defined"),
    };
}

/// <summary>
/// The running sums behind <see cref="Similarity"/>: one comparison, or several pooled as one long vector (layer-wise
/// comparison over samples). Doubles, elements in order, so the same values give the same bits.
/// </summary>
public sealed class SimilaritySums
{
    private double _dot, _aa, _bb, _abs, _sq, _max, _refAbs;
    private long _n;

    public void Add(ReadOnlySpan<float> actual, ReadOnlySpan<float> reference)
    {
        if (actual.Length != reference.Length) throw new ArgumentException($"lengths differ: {actual.Length} vs reference {reference.Length}");
        for (int i = 0; i < actual.Length; i++)
        {
            double x = actual[i], y = reference[i], d = x - y;
            _dot += x * y; _aa += x * x; _bb += y * y;
            _abs += Math.Abs(d); _sq += d * d; _refAbs += Math.Abs(y);
            if (Math.Abs(d) > _max || double.IsNaN(d)) _max = Math.Abs(d);
        }
        _n += actual.Length;
    }

    public Similarity Result()
    {
        double n = Math.Max(1, _n);
        double cos = _aa == 0 && _bb == 0 ? 1 : _aa == 0 || _bb == 0 ? 0 : _dot / Math.Sqrt(_aa * _bb);
        double mre = _refAbs == 0 ? (_abs == 0 ? 0 : double.PositiveInfinity) : _abs / _refAbs;
        double sqnr = _sq == 0 ? double.PositiveInfinity : 10 * Math.Log10(_bb / _sq);
        return new Similarity(cos, _abs / n, Math.Sqrt(_sq / n), _max, _sq / n, mre, sqnr);
    }
}

/// <summary>min / avg / max of one metric over samples.</summary>
public readonly record struct Spread(double Min, double Avg, double Max)
{
    public static Spread Of(IEnumerable<double> values)
    {
        var v = values.ToList();
        return v.Count == 0 ? new(double.NaN, double.NaN, double.NaN) : new(v.Min(), v.Average(), v.Max());
    }
}

/// <summary>Per-output similarity over a set of samples (the hmct-info style table).</summary>
public sealed class SimilarityTable
{
    private readonly Dictionary<string, List<Similarity>> _byOutput = new(StringComparer.Ordinal);
    private readonly List<string> _order = [];

    public void Add(string output, Similarity s)
    {
        if (!_byOutput.TryGetValue(output, out var l)) { _byOutput[output] = l = []; _order.Add(output); }
        l.Add(s);
    }

    public IReadOnlyList<string> Outputs => _order;
    public IReadOnlyList<Similarity> Samples(string output) => _byOutput[output];
    public Spread Of(string output, Func<Similarity, double> metric) => Spread.Of(_byOutput[output].Select(metric));
}
