using Quant.Onnx;

namespace Quant.Core.Conversion;

/// <summary>
/// Standalone Relu and Clip (spec §6.4): <c>clamp(Rq(q − z_x; Mult(s_x/s_y), z_y), Q_T(lo), Q_T(hi))</c> as one
/// QRequantize. Exact because Q is monotone; with equal input and output formats the multiplier is exactly 1
/// (m = 2^30, n = 30) and only the clamp remains. Clip's bounds must be constants (inputs from opset 11, attributes before).
/// </summary>
public sealed class ClipReluRule : IIntegerRule
{
    public IReadOnlyList<string> OpTypes { get; } = ["Clip", "Relu"];

    public string? Lower(LoweringRequest r)
    {
        if (RuleParts.CheckInputs(r) is { } reason) return reason;
        var x = RuleParts.In(r, 0);
        float lo = float.NegativeInfinity, hi = float.PositiveInfinity;
        if (r.Node.OpType == "Relu") lo = 0;
        else
        {
            lo = r.Node.GetFloat("min", lo);
            hi = r.Node.GetFloat("max", hi);
            for (int i = 1; i <= 2; i++)
            {
                if (r.Node.InputOrNull(i) is not { } name) continue;
                var c = r.Constant(name);
                if (c is null || c.Type != ElementType.Float || c.ElementCount != 1) return $"Clip bound '{name}' is not a float constant";
                if (i == 1) lo = c.As<float>()[0]; else hi = c.As<float>()[0];
            }
            if (!(lo <= hi)) return $"Clip bounds [{lo}, {hi}] are empty or NaN";
        }
        for (int k = 0; k < r.Outputs.Count; k++)
        {
            var y = r.Outputs[k];
            RuleParts.EmitRequantize(r.Emit, RuleParts.Hint(r.Node, k, r.Outputs.Count), x.Tensor, x.Format, y,
                RuleParts.Quantize(lo, y.Format), RuleParts.Quantize(hi, y.Format));
        }
        return null;
    }
}
