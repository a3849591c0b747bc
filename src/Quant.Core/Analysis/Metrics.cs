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
        var a = AsFloat(actual);
        var b = AsFloat(reference);
        double dot = 0, aa = 0, bb = 0, abs = 0, sq = 0, max = 0, refAbs = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double x = a[i], y = b[i], d = x - y;
            dot += x * y; aa += x * x; bb += y * y;
            abs += Math.Abs(d); sq += d * d; refAbs += Math.Abs(y);
            if (Math.Abs(d) > max || double.IsNaN(d)) max = Math.Abs(d);
        }
        int n = Math.Max(1, a.Length);
        double cos = aa == 0 && bb == 0 ? 1 : aa == 0 || bb == 0 ? 0 : dot / Math.Sqrt(aa * bb);
        double mre = refAbs == 0 ? (abs == 0 ? 0 : double.PositiveInfinity) : abs / refAbs;
        double sqnr = sq == 0 ? double.PositiveInfinity : 10 * Math.Log10(bb / sq);
        return new Similarity(cos, abs / n, Math.Sqrt(sq / n), max, sq / n, mre, sqnr);
    }

    private static float[] AsFloat(Tensor t) => t.Type switch
    {
        ElementType.Float => t.ReadOnlySpan<float>().ToArray(),
        ElementType.Float16 => t.ReadOnlySpan<Half>().ToArray().Select(h => (float)h).ToArray(),
        ElementType.Double => t.ReadOnlySpan<double>().ToArray().Select(d => (float)d).ToArray(),
        _ => throw new ArgumentException($"similarity of {t.Type.OnnxName()} tensors is not defined"),
    };
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
