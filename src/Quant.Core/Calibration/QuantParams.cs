using Quant.Core.Config;

namespace Quant.Core.Calibration;

/// <summary>
/// How one tensor is quantized: q = clamp(round(x / scale) + zero_point, qmin, qmax).
/// Per-tensor when <see cref="Axis"/> is null (one scale), per-channel along <see cref="Axis"/> otherwise.
/// </summary>
public sealed record QuantParams(QType QType, float[] Scales, int[] ZeroPoints, int? Axis, string Method)
{
    public bool PerChannel => Axis is not null;

    /// <summary>Symmetric signed ranges: int8 [-128,127], int16 [-32768,32767].</summary>
    public static (int Min, int Max) Range(QType t) => t switch
    {
        QType.Int8 => (-128, 127),
        QType.Int16 => (-32768, 32767),
        _ => throw new ArgumentException($"{t} is not an integer qtype"),
    };
}
