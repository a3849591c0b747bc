using Quant.Onnx;

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
        var x = RuleParts.In(r, 0);
        var inputs = r.Node.Inputs.ToList();
        inputs[0] = x.Tensor;
        for (int k = 0; k < r.Outputs.Count; k++)
        {
            var y = r.Outputs[k];
            var attrs = RuleParts.SameAttributes(r.Node).Concat(
            [
                RuleParts.Int("x_zero_point", x.Format.ZeroPoint), RuleParts.Float("x_scale", x.Format.Scale),
                RuleParts.Int("to", RuleParts.To(y.Format)), RuleParts.Int("y_zero_point", y.Format.ZeroPoint),
                RuleParts.Float("y_scale", y.Format.Scale),
            ]).ToList();
            RuleParts.Add(r.Emit, RuleParts.Hint(r.Node, k, r.Outputs.Count), "Q" + r.Node.OpType, LoweringEmitter.Domain, inputs, [y.Tensor], attrs);
        }
        return null;
    }
}
