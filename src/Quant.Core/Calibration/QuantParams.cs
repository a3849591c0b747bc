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

/// <summary>
/// Which channel an element of a row-major tensor belongs to when it is quantized per channel along an axis (a
/// negative axis counts from the end); every element is channel 0 when there is no axis. One definition for the
/// exporter's weight quantization, ec's split, convert's weight folding and the QDQ-input reader.
/// </summary>
public readonly struct ChannelIndex
{
    private readonly long _inner, _channels;

    public ChannelIndex(IReadOnlyList<long> dims, int? axis)
    {
        _inner = 1;
        _channels = 1;
        if (axis is not { } a0) return;
        int a = a0 < 0 ? a0 + dims.Count : a0;
        _channels = dims[a];
        for (int d = a + 1; d < dims.Count; d++) _inner *= dims[d];
    }

    /// <summary>The channel of element <paramref name="i"/> (row-major index).</summary>
    public int Of(long i) => (int)(i / _inner % _channels);
}
