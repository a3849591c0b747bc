namespace Quant.Core.Analysis.Compare;

/// <summary>What one later stage computed for a tensor, against the float reference.</summary>
public sealed class StageResult
{
    public required string Value { get; init; }
    public SimilaritySums Pair { get; } = new();
    public ValueStatistics Actual { get; } = new();
    /// <summary>Samples where the stage's value had another element count than the float one (not compared).</summary>
    public int ShapeMismatches { get; set; }
    public Similarity Similarity => Pair.Result();
}

/// <summary>The pooled measurements of one matched tensor: the float reference, the qat value and the later stages'.</summary>
public sealed class TensorResult
{
    public ValueStatistics Reference { get; } = new();
    /// <summary>The float tensor quantized alone at the qat scale; null when the qat model does not quantize it per tensor.</summary>
    public QuantizationNoise? Quantization { get; init; }
    /// <summary>Share of float values outside the qat integer range at the qat scale; 0 when not quantized.</summary>
    public double Clipped => Quantization?.ClippedShare ?? 0;
    public required StageResult Qat { get; init; }
    public Dictionary<CompareStage, StageResult> Later { get; } = [];
    /// <summary>Samples in which the float model produced this tensor (a value the engine folds as a constant is never produced).</summary>
    public int Observed { get; set; }
    public Similarity Similarity => Qat.Similarity;
}
