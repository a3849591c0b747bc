using Quant.Core.Calibration;
using Quant.Core.Config;

namespace Quant.Core.Analysis.Compare;

/// <summary>
/// How a later stage holds a float tensor: the value to read and, for an integer value (the quantized and compiled
/// models' <c>T_q</c>), the scale and zero point that turn it back into the real number it stands for.
/// </summary>
public sealed record StageValue(string Name, float Scale = 1f, int ZeroPoint = 0);

/// <summary>A node that reads the quantized form of a tensor, and at which input (what a node_config fix names).</summary>
public readonly record struct TensorReader(string Node, string OpType, int Input);

/// <summary>
/// One float tensor of the reference model and what represents it in the qat model (and, when given, the quantized
/// and compiled ones). <see cref="Qat"/> is the value the qat model's consumers read: the DequantizeLinear output for
/// a quantized tensor, the float16 round trip's Cast output for a float16 one, the tensor itself otherwise.
/// </summary>
public sealed class MatchedTensor
{
    public required string Tensor { get; init; }
    /// <summary>The float node producing it; null for a model input.</summary>
    public string? Node { get; init; }
    public string? OpType { get; init; }
    public bool IsModelInput => Node is null;
    /// <summary>int8, int16 or float16 as the qat model reads it (the lowest precision when readers differ); null: float32.</summary>
    public QType? QType { get; init; }
    /// <summary>The qat QuantizeLinear's per-tensor scale and zero point (null when not quantized or quantized per channel).</summary>
    public float? Scale { get; init; }
    public int ZeroPoint { get; init; }
    /// <summary>The qat model's value standing for this tensor.</summary>
    public required string Qat { get; init; }
    /// <summary>The name of the qat QuantizeLinear output (the integer tensor the convert stage keeps), or null.</summary>
    public string? QatInteger { get; init; }
    /// <summary>Nodes that read the quantized value (the fix for too little resolution names them).</summary>
    public IReadOnlyList<TensorReader> Readers { get; init; } = [];
    /// <summary>The qat model rounds it to float16 (a Cast to float16 reads it): a float16 region of the plan.</summary>
    public bool Float16Region { get; init; }
    /// <summary>Per later stage (quantized, compiled), the value standing for it there; missing: not found in that model.</summary>
    public Dictionary<CompareStage, StageValue> Later { get; } = [];

    public (int Min, int Max) IntegerRange => QuantParams.Range(QType ?? Config.QType.Int8);
}
