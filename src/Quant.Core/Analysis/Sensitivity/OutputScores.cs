using Quant.Core.Config;
using Quant.Engine;

namespace Quant.Core.Analysis.Sensitivity;

/// <summary>
/// Per scored output, the mean over samples of each metric of <see cref="Similarity"/> (actual against the float
/// model's output of the same sample), summed in sample order: deterministic.
/// </summary>
public sealed class OutputScores
{
    private readonly IReadOnlyList<string> _outputs;
    private readonly double[,] _sums;
    private int _samples;

    public OutputScores(IReadOnlyList<string> outputs)
    {
        _outputs = outputs;
        _sums = new double[outputs.Count, CheckNames.Metrics.Count];
    }

    public void Add(IReadOnlyDictionary<string, Tensor> reference, IReadOnlyDictionary<string, Tensor> actual)
    {
        for (int o = 0; o < _outputs.Count; o++)
        {
            var s = Similarity.Of(actual[_outputs[o]], reference[_outputs[o]]);
            for (int m = 0; m < CheckNames.Metrics.Count; m++) _sums[o, m] += Value(s, CheckNames.Metrics[m].Value);
        }
        _samples++;
    }

    /// <summary>The mean of <paramref name="metric"/> over the samples for output <paramref name="output"/>.</summary>
    public double Of(string output, CheckMetric metric)
    {
        int o = IndexOf(output);
        return _sums[o, MetricIndex(metric)] / Math.Max(1, _samples);
    }

    /// <summary>The worst scored output's value (lowest cosine/SQNR, highest error).</summary>
    public double Worst(CheckMetric metric)
    {
        var values = _outputs.Select(o => Of(o, metric));
        return CheckNames.HigherIsBetter(metric) ? values.Min() : values.Max();
    }

    public static double Value(Similarity s, CheckMetric m) => m switch
    {
        CheckMetric.Cosine => s.Cosine,
        CheckMetric.L1 => s.L1,
        CheckMetric.L2 => s.L2,
        CheckMetric.Chebyshev => s.Chebyshev,
        CheckMetric.Mse => s.Mse,
        CheckMetric.Mre => s.Mre,
        _ => s.Sqnr,
    };

    private int IndexOf(string output)
    {
        for (int o = 0; o < _outputs.Count; o++) if (_outputs[o] == output) return o;
        throw new ArgumentException($"'{output}' is not a scored output", nameof(output));
    }

    private static int MetricIndex(CheckMetric m)
    {
        for (int k = 0; k < CheckNames.Metrics.Count; k++) if (CheckNames.Metrics[k].Value == m) return k;
        throw new ArgumentOutOfRangeException(nameof(m));
    }
}
