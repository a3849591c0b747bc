using System.Numerics.Tensors;
using Tensor = Quant.Engine.Tensor;
using Quant.Core.Config;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Calibration;

/// <summary>
/// Weight quantization straight from the constant tensor (no calibration data): symmetric,
/// scale = max|w| / qmax over each channel along the output-channel axis (or over the whole tensor).
/// An all-zero channel gets <see cref="ActivationScales.MinScale"/>.
/// </summary>
public static class WeightQuantizer
{
    /// <summary>Symmetric per-channel parameters along <paramref name="axis"/> (negative counts from the end).</summary>
    public static QuantParams Params(Tensor w, int axis, QType t)
    {
        if (w.Type != ElementType.Float) throw new ArgumentException($"weights must be float, not {w.Type.OnnxName()}");
        int rank = w.Rank;
        if (axis < 0) axis += rank;
        if (axis < 0 || axis >= rank) throw new ArgumentOutOfRangeException(nameof(axis), $"axis {axis} is outside a rank-{rank} weight");
        int channels = w.Shape[axis];
        int inner = 1;
        for (int d = axis + 1; d < rank; d++) inner *= w.Shape[d];
        int outer = channels == 0 || inner == 0 ? 0 : w.Length / (channels * inner);
        var x = w.ReadOnlySpan<float>();
        var absMax = new double[channels];
        for (int o = 0; o < outer; o++)
            for (int c = 0; c < channels; c++)
            {
                var block = x.Slice((o * channels + c) * inner, inner);
                if (block.IsEmpty) continue;
                absMax[c] = Math.Max(absMax[c], MaxAbs(block));
            }
        return ActivationScales.Symmetric(t, absMax, axis, "weight-max");
    }

    /// <summary>Symmetric per-tensor parameters (scale = max|w| / qmax).</summary>
    public static QuantParams PerTensor(Tensor w, QType t)
    {
        if (w.Type != ElementType.Float) throw new ArgumentException($"weights must be float, not {w.Type.OnnxName()}");
        var x = w.ReadOnlySpan<float>();
        return ActivationScales.Symmetric(t, [x.IsEmpty ? 0 : MaxAbs(x)], null, "weight-max");
    }

    private static double MaxAbs(ReadOnlySpan<float> x)
    {
        float m = MathF.Abs(TensorPrimitives.MaxMagnitude(x));
        if (!float.IsFinite(m)) throw new ArgumentException("weights hold NaN or infinity; they cannot be quantized");
        return m;
    }

    /// <summary>
    /// The output-channel axis of a weight input: Conv W [M, C/g, k...] 0; ConvTranspose W [C, M/g, k...] 1;
    /// Gemm B 0 with transB = 1 ([N, K]) else 1 ([K, N]); MatMul B [.., K, N] its last axis.
    /// Null for inputs that are not weights of those ops.
    /// </summary>
    public static int? OutputChannelAxis(Node node, int inputIndex, int weightRank)
    {
        if (!node.IsDefaultDomain) return null;
        return (node.OpType, inputIndex) switch
        {
            ("Conv", 1) => 0,
            ("ConvTranspose", 1) => 1,
            ("Gemm", 1) => node.GetInt("transB", 0) != 0 ? 0 : 1,
            ("MatMul", 1) => weightRank >= 2 ? weightRank - 1 : null,
            _ => null,
        };
    }
}
