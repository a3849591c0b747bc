namespace Quant.Core.Conversion;

/// <summary>
/// AveragePool, GlobalAveragePool and ReduceMean (spec §8.1): the exact integer sum of the window, requantized once
/// with 1/c folded into the multiplier. The count depends on the run's shape, so the node stores the two float32
/// scales and the kernel derives (m, n) per count. The ONNX op's own attributes and non-data inputs (ReduceMean's
/// axes) are kept.
/// </summary>
public sealed class AveragingRule : IIntegerRule
{
    public IReadOnlyList<string> OpTypes { get; } = ["AveragePool", "GlobalAveragePool", "ReduceMean"];

    public string? Lower(LoweringRequest r)
    {
        if (RuleParts.CheckInputs(r) is { } reason) return reason;
        RuleParts.EmitWithScales(r, "Q" + r.Node.OpType);
        return null;
    }
}
