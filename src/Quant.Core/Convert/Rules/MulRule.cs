namespace Quant.Core.Conversion;

/// <summary>Mul (spec §6.2): the exact product (q_a − z_a)(q_b − z_b) requantized once with Mult(s_a·s_b / s_y).</summary>
public sealed class MulRule : IIntegerRule
{
    public IReadOnlyList<string> OpTypes { get; } = ["Mul"];

    public string? Lower(LoweringRequest r)
    {
        if (RuleParts.CheckInputs(r) is { } reason) return reason;
        var a = RuleParts.In(r, 0);
        var b = RuleParts.In(r, 1);
        for (int k = 0; k < r.Outputs.Count; k++)
        {
            var y = r.Outputs[k];
            // s_a·s_b is exact in double (two float32 significands); the quotient is the one rounding.
            var (m, n) = RuleParts.Mult((double)a.Format.Scale * b.Format.Scale / y.Format.Scale);
            var hint = RuleParts.Hint(r.Node, k, r.Outputs.Count);
            RuleParts.Add(r.Emit, hint, "QMul", LoweringEmitter.Domain,
                [a.Tensor, b.Tensor, RuleParts.Int32s(r.Emit, hint + "_multiplier", [m]), RuleParts.Int32s(r.Emit, hint + "_shift", [n])], [y.Tensor],
                RuleParts.Int("a_zero_point", a.Format.ZeroPoint), RuleParts.Int("b_zero_point", b.Format.ZeroPoint),
                RuleParts.Int("to", RuleParts.To(y.Format)), RuleParts.Int("y_zero_point", y.Format.ZeroPoint));
        }
        return null;
    }
}
