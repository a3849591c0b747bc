using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Analysis.Compare;

/// <summary>
/// min / max / mean / std of one tensor pooled over samples: sums in double, elements in order, samples in order, so
/// the same samples give the same bits. Non-finite values are counted and left out of the sums.
/// </summary>
public sealed class ValueStatistics
{
    public long Count { get; private set; }
    public long NonFinite { get; private set; }
    public double Min { get; private set; } = double.PositiveInfinity;
    public double Max { get; private set; } = double.NegativeInfinity;
    private double _sum, _sumSquares;

    public double Mean => Count == 0 ? double.NaN : _sum / Count;
    /// <summary>Population standard deviation.</summary>
    public double Std => Count == 0 ? double.NaN : Math.Sqrt(Math.Max(0, _sumSquares / Count - Mean * Mean));
    /// <summary>max(|min|, |max|): the range a symmetric quantization has to cover.</summary>
    public double AbsMax => Count == 0 ? 0 : Math.Max(Math.Abs(Min), Math.Abs(Max));

    public void Add(ReadOnlySpan<float> values)
    {
        foreach (var f in values)
        {
            if (!float.IsFinite(f)) { NonFinite++; continue; }
            double x = f;
            Count++;
            _sum += x;
            _sumSquares += x * x;
            if (x < Min) Min = x;
            if (x > Max) Max = x;
        }
    }
}

/// <summary>
/// What quantizing the float tensor alone at the qat scale does to it, without any upstream error: how many values
/// fall outside [qmin, qmax] (clipped), and the SQNR of x against dequantize(quantize(x)) (rounding and clipping).
/// </summary>
public sealed class QuantizationNoise(float scale, int zeroPoint, int qmin, int qmax)
{
    private double _signal, _noise;

    public long Clipped { get; private set; }
    public long Count { get; private set; }
    public double ClippedShare => Count == 0 ? 0 : (double)Clipped / Count;
    /// <summary>10·log10(Σx² / Σ(x − fq(x))²) dB; +∞ when every value is on the grid.</summary>
    public double Sqnr => _noise == 0 ? double.PositiveInfinity : 10 * Math.Log10(_signal / _noise);

    public void Add(ReadOnlySpan<float> values)
    {
        // As QuantizeLinear computes it: round half to even of x / scale in float, plus the zero point, saturated.
        foreach (var x in values)
        {
            if (!float.IsFinite(x)) continue;
            Count++;
            float q = MathF.Round(x / scale, MidpointRounding.ToEven) + zeroPoint;
            if (q < qmin || q > qmax) Clipped++;
            float dq = (Math.Clamp(q, qmin, qmax) - zeroPoint) * scale;
            double d = (double)x - dq;
            _signal += (double)x * x;
            _noise += d * d;
        }
    }
}

/// <summary>Float views of the values the engine produces.</summary>
public static class TensorValues
{
    public static bool IsFloat(Tensor t) => t.Type is ElementType.Float or ElementType.Float16 or ElementType.Double;

    /// <summary>The tensor as float32 (float16 and double converted); integer tensors through <paramref name="dequantize"/>, else null.</summary>
    public static float[]? AsFloat(Tensor t, StageValue? dequantize = null)
    {
        switch (t.Type)
        {
            case ElementType.Float: return t.ReadOnlySpan<float>().ToArray();
            case ElementType.Float16: { var s = t.ReadOnlySpan<Half>(); var r = new float[s.Length]; for (int i = 0; i < r.Length; i++) r[i] = (float)s[i]; return r; }
            case ElementType.Double: { var s = t.ReadOnlySpan<double>(); var r = new float[s.Length]; for (int i = 0; i < r.Length; i++) r[i] = (float)s[i]; return r; }
            case ElementType.Int8 when dequantize is not null: { var s = t.ReadOnlySpan<sbyte>(); var r = new float[s.Length]; for (int i = 0; i < r.Length; i++) r[i] = (s[i] - dequantize.ZeroPoint) * dequantize.Scale; return r; }
            case ElementType.Int16 when dequantize is not null: { var s = t.ReadOnlySpan<short>(); var r = new float[s.Length]; for (int i = 0; i < r.Length; i++) r[i] = (s[i] - dequantize.ZeroPoint) * dequantize.Scale; return r; }
            default: return null;
        }
    }

    /// <summary>Whether a float tensor holds NaN (kind "nan") or ±infinity ("inf"); null when every value is finite or it is not float.</summary>
    public static string? NonFiniteKind(Tensor t)
    {
        bool inf = false;
        switch (t.Type)
        {
            case ElementType.Float: foreach (var x in t.ReadOnlySpan<float>()) { if (float.IsNaN(x)) return "nan"; if (float.IsInfinity(x)) inf = true; } break;
            case ElementType.Float16: foreach (var x in t.ReadOnlySpan<Half>()) { if (Half.IsNaN(x)) return "nan"; if (Half.IsInfinity(x)) inf = true; } break;
            case ElementType.Double: foreach (var x in t.ReadOnlySpan<double>()) { if (double.IsNaN(x)) return "nan"; if (double.IsInfinity(x)) inf = true; } break;
            default: return null;
        }
        return inf ? "inf" : null;
    }
}
