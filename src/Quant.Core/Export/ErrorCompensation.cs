using Quant.Core.Calibration;
using Quant.Core.Config;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Export;

/// <summary>
/// Error compensation (node_config <c>inputN: ec</c>, Horizon's <c>Conv_3</c> + <c>Conv_3_split_low</c>): an int8 weight
/// w ≈ s·q_hi is complemented by its residual r = w − s·q_hi quantized on its own, per channel, r ≈ s_lo·q_lo with
/// s_lo = max|r| / 127 ≈ s / 254. Both parts are ordinary int8 weights, so the node becomes two int8 GEMMs over the same
/// input plus an Add, which every QDQ runtime and the convert stage run as they are; the weight then carries about
/// 15 bits (close to an int16 weight) while all arithmetic stays int8.
/// </summary>
public static class ErrorCompensation
{
    /// <summary>The low part of one weight and how much closer the two parts come to the float weight.</summary>
    /// <param name="Residual">r = w − dequantized high part, the float values the low part quantizes.</param>
    /// <param name="Low">The low part's int8 parameters (same axis as the high part).</param>
    /// <param name="HighError">‖w − s·q_hi‖ / ‖w‖.</param>
    /// <param name="SplitError">‖w − s·q_hi − s_lo·q_lo‖ / ‖w‖.</param>
    public sealed record Split(TensorData Residual, QuantParams Low, double HighError, double SplitError);

    /// <summary>Splits <paramref name="weight"/> quantized with <paramref name="high"/> (int8, symmetric, as exported).</summary>
    public static Split Of(TensorData weight, QuantParams high, string residualName)
    {
        if (high.QType != QType.Int8) throw new ArgumentException($"error compensation splits int8 weights, not {high.QType}", nameof(high));
        if (weight.Type != ElementType.Float) throw new InvalidOperationException($"weight '{weight.Name}' is {weight.Type.OnnxName()}, not float");
        var w = weight.As<float>();
        var hi = Dequantized(w, weight.Dims, high);
        var residual = new float[w.Length];
        for (int i = 0; i < w.Length; i++) residual[i] = w[i] - hi[i];
        var r = Tensor.From(residual, weight.Dims.Select(d => (int)d).ToArray());
        var low = high.Axis is int axis ? WeightQuantizer.Params(r, axis, QType.Int8) : WeightQuantizer.PerTensor(r, QType.Int8);
        low = low with { Method = "ec residual of " + high.Method };
        var lo = Dequantized(residual, weight.Dims, low);
        double norm = 0, eHigh = 0, eSplit = 0;
        for (int i = 0; i < w.Length; i++)
        {
            norm += (double)w[i] * w[i];
            eHigh += (double)residual[i] * residual[i];
            double d = (double)residual[i] - lo[i];
            eSplit += d * d;
        }
        norm = Math.Sqrt(norm);
        return new Split(TensorData.FromFloats(residualName, weight.Dims, residual), low,
            norm > 0 ? Math.Sqrt(eHigh) / norm : 0, norm > 0 ? Math.Sqrt(eSplit) / norm : 0);
    }

    /// <summary>DequantizeLinear(QuantizeLinear(w)) in float, as ONNX defines them (round half to even, saturate).</summary>
    internal static float[] Dequantized(ReadOnlySpan<float> w, long[] dims, QuantParams p)
    {
        var (qmin, qmax) = QuantParams.Range(p.QType);
        var channel = new ChannelIndex(dims, p.Axis);
        var result = new float[w.Length];
        for (int i = 0; i < w.Length; i++)
        {
            int c = channel.Of(i);
            int zp = p.ZeroPoints.Length == 0 ? 0 : p.ZeroPoints[p.ZeroPoints.Length == 1 ? 0 : c];
            float q = Math.Clamp(MathF.Round(w[i] / p.Scales[c], MidpointRounding.ToEven) + zp, qmin, qmax);
            result[i] = (q - zp) * p.Scales[c];
        }
        return result;
    }
}
