namespace Quant.Core.Conversion;

/// <summary>Mul (spec §6.2): the exact product (q_a − z_a)(q_b − z_b) requantized once with Mult(s_a·s_b / s_y).</summary>
public sealed class MulRule : IIntegerRule
{
    public IReadOnlyList<string> OpTypes { get; } = ["Mul"];

    public string? Lower(LoweringRequest r)
    {
        if (RuleParts.CheckInputs(r) is { } reason) return reason;
        var (a, b) = (RuleParts.In(r, 0).Format, RuleParts.In(r, 1).Format);
        for (int k = 0; k < r.Outputs.Count; k++)
        {
            // s_a·s_b is exact in double (two float32 significands); the quotient is the one rounding.
            var (m, n) = RuleParts.Mult((double)a.Scale * b.Scale / r.Outputs[k].Format.Scale);
            RuleParts.EmitBinary(r, k, "QMul", [m], [n]);
        }
        return null;
    }
}
