using Quant.Core.Config;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Data;

/// <summary>
/// Turns a stored sample into the model's float input, in this order (all in float32, one rounding per step):
/// <list type="number">
/// <item>v = (float)x * scale / scale_divisor (each factor skipped when 1, so <c>scale: 1/255</c> is exactly x / 255f);</item>
/// <item>channel order: bgr_to_rgb / rgb_to_bgr reverse the 3 channels (output channel k takes stored channel 2-k);</item>
/// <item>v = (v - mean[k]) / std[k] with k the output channel (mean and std are in the model's channel order);</item>
/// <item>NHWC data is written transposed to NCHW (the channel axis moves from last to second).</item>
/// </list>
/// </summary>
internal static class Preprocessor
{
    /// <param name="stored">The array as read from the file (any numeric type, stored layout).</param>
    /// <param name="ic">The input's settings.</param>
    /// <param name="shape">The model-side (NCHW, batch-prefixed) shape of the sample.</param>
    /// <param name="dst">Receives shape's element count of floats.</param>
    public static void Apply(Tensor stored, InputConfig ic, int[] shape, Span<float> dst)
    {
        var src = ToFloat(stored);
        int batch = shape[0];
        int channels = shape.Length > 1 ? shape[1] : 1;
        int spatial = batch * channels == 0 ? 0 : src.Length / (batch * channels);
        bool nhwc = ic.Layout == DataLayout.NHWC;
        bool reverse = ic.ChannelOrder != ChannelOrder.Keep;
        float scale = ic.Scale, divisor = ic.ScaleDivisor;
        for (int n = 0; n < batch; n++)
            for (int k = 0; k < channels; k++)
            {
                int c = reverse ? channels - 1 - k : k;
                float mean = ic.Mean is null ? 0f : ic.Mean[ic.Mean.Length == 1 ? 0 : k];
                float std = ic.Std is null ? 1f : ic.Std[ic.Std.Length == 1 ? 0 : k];
                var outRow = dst.Slice((n * channels + k) * spatial, spatial);
                for (int s = 0; s < spatial; s++)
                {
                    float v = src[nhwc ? (n * spatial + s) * channels + c : (n * channels + c) * spatial + s];
                    if (scale != 1f) v *= scale;
                    if (divisor != 1f) v /= divisor;
                    if (ic.Mean is not null) v -= mean;
                    if (ic.Std is not null) v /= std;
                    outRow[s] = v;
                }
            }
    }

    /// <summary>The stored values as float32 (integers convert exactly up to 2^24, wider values round to nearest).</summary>
    private static float[] ToFloat(Tensor t)
    {
        var r = new float[t.Length];
        switch (t.Type)
        {
            case ElementType.Float: t.ReadOnlySpan<float>().CopyTo(r); break;
            case ElementType.Float16: Convert(t.ReadOnlySpan<Half>(), r, v => (float)v); break;
            case ElementType.Double: Convert(t.ReadOnlySpan<double>(), r, v => (float)v); break;
            case ElementType.Int8: Convert(t.ReadOnlySpan<sbyte>(), r, v => v); break;
            case ElementType.UInt8: Convert(t.ReadOnlySpan<byte>(), r, v => v); break;
            case ElementType.Int16: Convert(t.ReadOnlySpan<short>(), r, v => v); break;
            case ElementType.UInt16: Convert(t.ReadOnlySpan<ushort>(), r, v => v); break;
            case ElementType.Int32: Convert(t.ReadOnlySpan<int>(), r, v => v); break;
            case ElementType.UInt32: Convert(t.ReadOnlySpan<uint>(), r, v => v); break;
            case ElementType.Int64: Convert(t.ReadOnlySpan<long>(), r, v => v); break;
            case ElementType.UInt64: Convert(t.ReadOnlySpan<ulong>(), r, v => v); break;
            default: throw new NotSupportedException($"{t.Type.OnnxName()} samples cannot become float inputs");
        }
        return r;
    }

    private static void Convert<T>(ReadOnlySpan<T> src, float[] dst, Func<T, float> f)
    {
        for (int i = 0; i < src.Length; i++) dst[i] = f(src[i]);
    }
}
