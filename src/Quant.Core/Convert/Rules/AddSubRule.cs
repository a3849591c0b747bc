using Quant.Onnx;

namespace Quant.Core.Conversion;

/// <summary>
/// Add and Sub (spec §6.1): one rounding on a shared exponent. n comes from the larger of M_a = s_a/s_y and
/// M_b = s_b/s_y; A = rne(M_a·2^n), B = rne(M_b·2^n) in double. A multiplier ≥ 2^31 (an all-zero calibrated output)
/// leaves the node a float island.
/// </summary>
public sealed class AddSubRule : IIntegerRule
{
    public IReadOnlyList<string> OpTypes { get; } = ["Add", "Sub"];

    public string? Lower(LoweringRequest r)
    {
        if (RuleParts.CheckInputs(r) is { } reason) return reason;
        var a = RuleParts.In(r, 0).Format;
        var b = RuleParts.In(r, 1).Format;
        var plan = new List<(IntegerOutput Out, long A, long B, int N)>();
        foreach (var y in r.Outputs)
        {
            var p = Parameters(a, b, y.Format);
            if (p is null) return $"{r.Node.OpType} output scale {y.Format.Scale:R} is so small that the input multiplier reaches 2^31";
            plan.Add((y, p.Value.A, p.Value.B, p.Value.N));
        }
        string op = r.Node.OpType == "Add" ? "QAdd" : "QSub";
        for (int k = 0; k < plan.Count; k++)
        {
            var (y, am, bm, n) = plan[k];
            RuleParts.Add(r.Emit, RuleParts.Hint(r.Node, k, plan.Count), op, LoweringEmitter.Domain,
                [RuleParts.In(r, 0).Tensor, RuleParts.In(r, 1).Tensor], [y.Tensor],
                RuleParts.Int("a_multiplier", am), RuleParts.Int("b_multiplier", bm), RuleParts.Int("shift", n),
                RuleParts.Int("a_zero_point", a.ZeroPoint), RuleParts.Int("b_zero_point", b.ZeroPoint),
                RuleParts.Int("to", RuleParts.To(y.Format)), RuleParts.Int("y_zero_point", y.Format.ZeroPoint));
        }
        return null;
    }

    /// <summary>(A, B, n) of spec §6.1, or null when max(M_a, M_b) ≥ 2^31.</summary>
    internal static (long A, long B, int N)? Parameters(IntFormat a, IntFormat b, IntFormat y)
    {
        double ma = (double)a.Scale / y.Scale, mb = (double)b.Scale / y.Scale;
        double max = Math.Max(ma, mb);
        if (max >= 2147483648.0) return null;
        var (_, n) = RuleParts.Mult(max);
        // Scaling by 2^n is exact in double; the one rounding is rne.
        long am = (long)Math.Round(Math.ScaleB(ma, n), MidpointRounding.ToEven);
        long bm = (long)Math.Round(Math.ScaleB(mb, n), MidpointRounding.ToEven);
        return (am, bm, n);
    }
}
