namespace Quant.Core.Conversion;

/// <summary>
/// Div (spec §6.3, int8 on the target): a divisor-indexed multiplier table. For every divisor integer q ≠ z_b,
/// M_q = s_a / (DQ(q; s_b, z_b)·s_y) in double with DQ the qat model's float32 value, stored as a signed Mult pair;
/// the zero divisor is the entry (0, −1).
/// </summary>
public sealed class DivRule : IIntegerRule
{
    public IReadOnlyList<string> OpTypes { get; } = ["Div"];

    public string? Lower(LoweringRequest r)
    {
        if (RuleParts.CheckInputs(r) is { } reason) return reason;
        var (a, b) = (RuleParts.In(r, 0).Format, RuleParts.In(r, 1).Format);
        for (int k = 0; k < r.Outputs.Count; k++)
        {
            var (m, n) = Table(a, b, r.Outputs[k].Format);
            RuleParts.EmitBinary(r, k, "QDiv", m, n);
        }
        return null;
    }

    /// <summary>The (signed m, n) table indexed by q_b − qmin.</summary>
    internal static (int[] M, int[] N) Table(IntFormat a, IntFormat b, IntFormat y)
    {
        int count = b.QMax - b.QMin + 1;
        var m = new int[count];
        var n = new int[count];
        for (int q = b.QMin; q <= b.QMax; q++)
        {
            int i = q - b.QMin;
            if (q == b.ZeroPoint) { m[i] = 0; n[i] = -1; continue; }
            // DQ in float32, exactly what the qat run divides by.
            float divisor = (q - b.ZeroPoint) * b.Scale;
            double mq = (double)a.Scale / ((double)divisor * y.Scale);
            var (mm, nn) = RuleParts.Mult(Math.Abs(mq));
            m[i] = mq < 0 ? -mm : mm;
            n[i] = nn;
        }
        return (m, n);
    }
}
