using System.Globalization;
using Quant.Core.Config;

namespace Quant.Core.Calibration;

/// <summary>How activation scales are derived from statistics (one calibration method, HMCT's activation block).</summary>
public sealed record ActivationOptions
{
    /// <summary>Max, Percentile, Kl or Mse (Default is the search over <see cref="CalibrationCandidates"/>; Fixed comes from <see cref="ActivationScales.Fixed"/>).</summary>
    public CalibrationMethod Method { get; init; } = CalibrationMethod.Max;
    /// <summary>max_percentile: the quantile of |x| used by the percentile method.</summary>
    public double MaxPercentile { get; init; } = 0.99995;
    /// <summary>One scale per channel along axis 1 (needs statistics collected with per-channel on).</summary>
    public bool PerChannel { get; init; }
    /// <summary>A zero point: the signed type's full range spans [lo, hi] instead of [-T, T].</summary>
    public bool Asymmetric { get; init; }
}

/// <summary>
/// Activation quantization parameters from <see cref="CalibrationStatistics"/>, without re-running the model.
/// </summary>
/// <remarks>
/// <para>Symmetric: a clipping threshold T on |x|; scale = T / qmax (127 for int8, 32767 for int16), zero point 0.
/// T per method: max = the exact absmax; percentile = the max_percentile quantile of |x| from the
/// histogram (interpolated within its bin); kl = <see cref="HistogramMath.KlBins"/> with 128 target
/// levels for int8 and num_bin/2 for int16 (the histogram cannot resolve a finer grid, so int16 KL
/// only trims far outliers); mse = <see cref="HistogramMath.MseThreshold"/>. Every T is capped at the absmax.</para>
/// <para>Asymmetric keeps the signed type (int8 [-128,127], int16) and adds a zero point:
/// scale = (hi - lo) / (qmax - qmin), zp = round_half_even(qmin - lo / scale) clamped to the type, where
/// [lo, hi] always contains 0. max: lo = min, hi = max; percentile: lo = the (1 - p) and hi = the p
/// quantile of the signed values; kl / mse: each side searched separately on its own half of the
/// histogram as if it were a symmetric tensor.</para>
/// <para>Per-channel (axis 1): channel c gets T_c = min(channel absmax, T) (symmetric) or
/// [max(min_c, lo), min(max_c, hi)] (asymmetric): the per-tensor method decides how much to clip,
/// the channel's own range how little is needed. Statistics without channel data (rank &lt; 2, or the
/// axis-1 size varied between batches) fall back to per-tensor parameters (Axis null).</para>
/// <para>A threshold of 0 (a tensor that was always 0) gives scale <see cref="MinScale"/>, never 0 or NaN.</para>
/// </remarks>
public static class ActivationScales
{
    /// <summary>The smallest scale ever produced: an all-zero tensor or channel gets this.</summary>
    public const float MinScale = 1e-12f;

    public static int QMax(QType t) => QuantParams.Range(t).Max;

    /// <summary>The symmetric clipping threshold on |x| for a method (Max, Percentile, Kl, Mse).</summary>
    public static double Threshold(TensorStatistics s, CalibrationMethod method, QType t, double maxPercentile = 0.99995) =>
        SideThreshold(s.AbsHistogram(), s.BinWidth, s.AbsMax, method, t, maxPercentile);

    private static double SideThreshold(long[] hist, double binWidth, double absMax, CalibrationMethod method, QType t, double maxPercentile)
    {
        double th = method switch
        {
            CalibrationMethod.Max => absMax,
            CalibrationMethod.Percentile => HistogramMath.Quantile(hist, binWidth, maxPercentile),
            CalibrationMethod.Kl => KlThreshold(hist, binWidth, absMax, KlLevels(t, hist.Length)),
            CalibrationMethod.Mse => HistogramMath.MseThreshold(hist, binWidth, QMax(t)),
            _ => throw new ArgumentException($"calibration method {method} does not derive a threshold from statistics"),
        };
        return Math.Min(th, absMax);
    }

    /// <summary>
    /// Fewer observed elements per histogram bin than this and KL's distributions are noise: a tensor
    /// that small (squeeze-excitation vectors: one value per channel per sample) keeps its absmax.
    /// </summary>
    public const int MinKlElementsPerBin = 16;

    /// <summary>
    /// KL over the bins that hold data ([0, absmax], not the histogram's power-of-two range, so the
    /// 128-level floor is relative to the data), falling back to absmax when the tensor is too small
    /// for a distribution or spans no more bins than there are levels.
    /// </summary>
    private static double KlThreshold(long[] hist, double binWidth, double absMax, int levels)
    {
        if (binWidth <= 0) return absMax;
        int used = (int)Math.Min(hist.Length, Math.Ceiling(absMax / binWidth));
        long total = 0;
        foreach (var c in hist) total += c;
        if (used <= levels || total < (long)MinKlElementsPerBin * used) return absMax;
        return HistogramMath.KlBins(hist.AsSpan(0, used), levels) * binWidth;
    }

    /// <summary>KL's target number of quantized levels for one side of the range.</summary>
    public static int KlLevels(QType t, int numBins) => t == QType.Int8 ? 128 : Math.Max(128, numBins / 2);

    /// <summary>Quantization parameters of one activation tensor.</summary>
    public static QuantParams Derive(TensorStatistics s, QType t, ActivationOptions o)
    {
        CheckInteger(t);
        string method = MethodName(o);
        bool perChannel = o.PerChannel && s.ChannelMin is not null && s.ChannelMax is not null;
        if (!o.Asymmetric)
        {
            double th = Threshold(s, o.Method, t, o.MaxPercentile);
            if (!perChannel) return Symmetric(t, [th], null, method);
            var ths = new double[s.ChannelMin!.Length];
            for (int c = 0; c < ths.Length; c++)
                ths[c] = Math.Min(th, Math.Max(Math.Abs((double)s.ChannelMin[c]), Math.Abs((double)s.ChannelMax![c])));
            return Symmetric(t, ths, 1, method);
        }
        var (lo, hi) = AsymmetricRange(s, o.Method, t, o.MaxPercentile);
        if (!perChannel) return Asymmetric(t, [lo], [hi], null, method);
        int channels = s.ChannelMin!.Length;
        var los = new double[channels];
        var his = new double[channels];
        for (int c = 0; c < channels; c++)
        {
            los[c] = Math.Max(s.ChannelMin[c], lo);
            his[c] = Math.Min(s.ChannelMax![c], hi);
        }
        return Asymmetric(t, los, his, 1, method);
    }

    /// <summary>[lo, hi] (containing 0) for the asymmetric variant of a method.</summary>
    public static (double Lo, double Hi) AsymmetricRange(TensorStatistics s, CalibrationMethod method, QType t, double maxPercentile = 0.99995)
    {
        double lo, hi;
        switch (method)
        {
            case CalibrationMethod.Max:
                lo = s.Min; hi = s.Max;
                break;
            case CalibrationMethod.Percentile:
                lo = Math.Max(s.Min, SignedQuantile(s, 1 - maxPercentile));
                hi = Math.Min(s.Max, SignedQuantile(s, maxPercentile));
                break;
            case CalibrationMethod.Kl or CalibrationMethod.Mse:
                lo = -SideThreshold(s.NegativeHistogram.ToArray(), s.BinWidth, Math.Max(0, -s.Min), method, t, maxPercentile);
                hi = SideThreshold(s.PositiveHistogram.ToArray(), s.BinWidth, Math.Max(0, s.Max), method, t, maxPercentile);
                break;
            default:
                throw new ArgumentException($"calibration method {method} does not derive a range from statistics");
        }
        return (Math.Min(lo, 0), Math.Max(hi, 0));
    }

    /// <summary>
    /// The <paramref name="p"/>-quantile of the signed values from the sign-split histogram
    /// (negative bins walked from the most negative up, then positive bins), interpolated within its bin.
    /// </summary>
    public static double SignedQuantile(TensorStatistics s, double p)
    {
        var neg = s.NegativeHistogram;
        var pos = s.PositiveHistogram;
        long total = 0;
        foreach (var c in neg) total += c;
        foreach (var c in pos) total += c;
        if (total == 0) return 0;
        double target = Math.Clamp(p, 0, 1) * total, cum = 0, w = s.BinWidth;
        for (int b = neg.Length - 1; b >= 0; b--)
        {
            long c = neg[b];
            if (c == 0) continue;
            if (cum + c >= target) return -(b + 1 - Math.Clamp((target - cum) / c, 0, 1)) * w;
            cum += c;
        }
        int last = HistogramMath.LastNonZero(pos);
        for (int b = 0; b <= last; b++)
        {
            long c = pos[b];
            if (c == 0) continue;
            if (cum + c >= target || b == last) return (b + Math.Clamp((target - cum) / c, 0, 1)) * w;
            cum += c;
        }
        return 0;
    }

    /// <summary>A caller-given scale (wins) or threshold (scale = threshold / qmax), symmetric, per tensor.</summary>
    public static QuantParams Fixed(QType t, float? scale, float? threshold)
    {
        CheckInteger(t);
        if (scale is float sc)
        {
            if (!(sc > 0) || !float.IsFinite(sc)) throw new ArgumentException($"a fixed scale must be positive and finite, not {sc}");
            return new QuantParams(t, [sc], [0], null, "fixed");
        }
        if (threshold is float th)
        {
            if (!(th > 0) || !float.IsFinite(th)) throw new ArgumentException($"a fixed threshold must be positive and finite, not {th}");
            return Symmetric(t, [th], null, "fixed");
        }
        throw new ArgumentException("a fixed quantization needs a scale or a threshold");
    }

    /// <summary>
    /// Parameters for every tensor in <paramref name="tensors"/> (name -> integer qtype) by one method;
    /// entries of <paramref name="fixedParams"/> (config scale/threshold overrides) win.
    /// </summary>
    public static IReadOnlyDictionary<string, QuantParams> DeriveAll(CalibrationStatistics stats, IReadOnlyDictionary<string, QType> tensors,
        ActivationOptions o, IReadOnlyDictionary<string, QuantParams>? fixedParams = null)
    {
        var result = new Dictionary<string, QuantParams>(StringComparer.Ordinal);
        foreach (var (name, t) in tensors)
        {
            if (fixedParams is not null && fixedParams.TryGetValue(name, out var f)) { result[name] = f; continue; }
            if (!stats.TryGet(name, out var s))
                throw new KeyNotFoundException($"calibration statistics have no tensor '{name}'; it was not observed during calibration");
            result[name] = Derive(s, t, o);
        }
        return result;
    }

    public static string MethodName(ActivationOptions o) => o.Method switch
    {
        CalibrationMethod.Max => "max",
        CalibrationMethod.Percentile => "percentile(" + o.MaxPercentile.ToString("R", CultureInfo.InvariantCulture) + ")",
        CalibrationMethod.Kl => "kl",
        CalibrationMethod.Mse => "mse",
        CalibrationMethod.Fixed => "fixed",
        _ => throw new ArgumentException($"calibration method {o.Method} is a search over CalibrationCandidates, not one method"),
    };

    /// <summary>Symmetric parameters from thresholds: scale = T / qmax (at least <see cref="MinScale"/>).</summary>
    public static QuantParams Symmetric(QType t, IReadOnlyList<double> thresholds, int? axis, string method)
    {
        int qmax = QMax(t);
        var scales = new float[thresholds.Count];
        for (int i = 0; i < scales.Length; i++) scales[i] = SafeScale(thresholds[i] / qmax);
        return new QuantParams(t, scales, new int[scales.Length], axis, method);
    }

    /// <summary>Asymmetric (signed type with zero point) parameters from ranges [lo, hi] (widened to contain 0).</summary>
    public static QuantParams Asymmetric(QType t, IReadOnlyList<double> lo, IReadOnlyList<double> hi, int? axis, string method)
    {
        var (qmin, qmax) = QuantParams.Range(t);
        var scales = new float[lo.Count];
        var zps = new int[lo.Count];
        for (int i = 0; i < scales.Length; i++)
        {
            double l = Math.Min(lo[i], 0), h = Math.Max(hi[i], 0);
            float s = SafeScale((h - l) / (qmax - qmin));
            scales[i] = s;
            zps[i] = (int)Math.Clamp(Math.Round(qmin - l / s, MidpointRounding.ToEven), qmin, qmax);
        }
        return new QuantParams(t, scales, zps, axis, method);
    }

    internal static float SafeScale(double scale)
    {
        float s = (float)scale;
        return s >= MinScale && float.IsFinite(s) ? s : MinScale;
    }

    private static void CheckInteger(QType t)
    {
        if (t is not (QType.Int8 or QType.Int16)) throw new ArgumentException($"{t} is not quantized; only int8 and int16 tensors get scales");
    }
}
