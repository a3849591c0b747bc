using Quant.Core.Config;

namespace Quant.Core.Calibration;

/// <summary>One way to derive every activation's parameters: a method with its settings and the histogram size it reads.</summary>
public sealed record CalibrationCandidate(string Label, ActivationOptions Options, int NumBins)
{
    /// <summary>Parameters for every tensor of <paramref name="tensors"/> from <paramref name="stats"/>; <paramref name="fixedParams"/> win.</summary>
    public IReadOnlyDictionary<string, QuantParams> Derive(CalibrationStatistics stats, IReadOnlyDictionary<string, QType> tensors,
        IReadOnlyDictionary<string, QuantParams> fixedParams) =>
        ActivationScales.DeriveAll(stats, tensors, Options.Method == CalibrationMethod.Fixed ? Options with { Method = CalibrationMethod.Max } : Options, fixedParams);
}

/// <summary>
/// The candidates HMCT's search lists describe: every calibration method (<c>default</c>: max, each max_percentile,
/// kl, mse) crossed with every <c>asymmetric</c>, <c>per_channel</c> and <c>num_bin</c> entry. Labels name the method
/// and, for each list with more than one entry, the value this candidate takes (e.g. <c>kl asymmetric num_bin=1024</c>),
/// so the export report says which combination won.
/// </summary>
public static class CalibrationCandidates
{
    public static IReadOnlyList<CalibrationCandidate> Of(ActivationConfig activation)
    {
        var methods = new List<(CalibrationMethod Method, double Percentile)>();
        var listed = activation.CalibrationTypes.Distinct().ToList();
        double firstPercentile = activation.MaxPercentiles.Count > 0 ? activation.MaxPercentiles[0] : 0.99995;
        if (listed.Contains(CalibrationMethod.Default))
        {
            methods.Add((CalibrationMethod.Max, firstPercentile));
            foreach (var p in activation.MaxPercentiles.Distinct()) methods.Add((CalibrationMethod.Percentile, p));
            methods.Add((CalibrationMethod.Kl, firstPercentile));
            methods.Add((CalibrationMethod.Mse, firstPercentile));
        }
        else
        {
            foreach (var m in listed)
            {
                if (m == CalibrationMethod.Percentile)
                    foreach (var p in activation.MaxPercentiles.Distinct()) methods.Add((m, p));
                else methods.Add((m, firstPercentile));
            }
        }
        var asymmetric = Distinct(activation.Asymmetric, false);
        var perChannel = Distinct(activation.PerChannel, false);
        var bins = activation.NumBinCandidates.Count > 0 ? activation.NumBinCandidates.Distinct().ToList() : [activation.NumBins];
        var result = new List<CalibrationCandidate>();
        foreach (var b in bins)
            foreach (var pc in perChannel)
                foreach (var asym in asymmetric)
                    foreach (var (m, p) in methods)
                    {
                        var o = new ActivationOptions { Method = m, MaxPercentile = p, PerChannel = pc, Asymmetric = asym };
                        string label = ActivationScales.MethodName(o)
                            + (asymmetric.Count > 1 || asym ? asym ? " asymmetric" : " symmetric" : "")
                            + (perChannel.Count > 1 || pc ? pc ? " per_channel" : " per_tensor" : "")
                            + (bins.Count > 1 ? $" num_bin={b}" : "");
                        result.Add(new CalibrationCandidate(label, o, b));
                    }
        return result;
    }

    private static List<bool> Distinct(IReadOnlyList<bool> values, bool fallback) => values.Count == 0 ? [fallback] : values.Distinct().ToList();
}
