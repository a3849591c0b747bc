namespace Quant.Core.Conversion;

/// <summary>
/// Softmax (spec §10): the exp table E[d] = rne(2^30·exp(−s_x·d)) in double, cut after its last non-zero entry, and the
/// output multiplier Mult(2^−31 / s_y). QSoftmax normalizes along one axis (Softmax-13 semantics): every qat model our
/// export writes is opset 13 or later (the exporter upgrades older models); a foreign model of an older opset is
/// lowered only when its axis is the last one (then the two semantics agree), else it stays a float island.
/// </summary>
public sealed class SoftmaxRule : IIntegerRule
{
    public IReadOnlyList<string> OpTypes { get; } = ["Softmax"];

    public string? Lower(LoweringRequest r)
    {
        if (RuleParts.CheckInputs(r) is { } reason) return reason;
        var x = RuleParts.In(r, 0);
        long axis = r.Node.GetInt("axis", r.Opset < 13 ? 1 : -1);
        // Before opset 13 Softmax normalizes over the flattened dims [axis, rank): the same as one axis only when that
        // axis is the last. Otherwise it stays the qat model's float node (spec §3.5).
        if (r.Opset < 13)
        {
            int? rank = r.Shape(r.Node.Inputs[0])?.Length;
            if (rank is null || (axis < 0 ? axis + rank : axis) != rank - 1)
                return $"Softmax of opset {r.Opset} normalizes over every axis from {axis} on{(rank is null ? " (input rank unknown)" : "")}; QSoftmax normalizes along one axis";
        }
        for (int k = 0; k < r.Outputs.Count; k++)
        {
            var y = r.Outputs[k];
            var hint = RuleParts.Hint(r.Node, k, r.Outputs.Count);
            var (m, n) = RuleParts.Mult(Math.ScaleB(1.0, -31) / y.Format.Scale);
            RuleParts.Add(r.Emit, hint, "QSoftmax", LoweringEmitter.Domain,
                [x.Tensor, RuleParts.Int32s(r.Emit, hint + "_exp", ExpTable(x.Format)),
                 RuleParts.Int32s(r.Emit, hint + "_multiplier", [m]), RuleParts.Int32s(r.Emit, hint + "_shift", [n])], [y.Tensor],
                RuleParts.Int("axis", axis), RuleParts.Int("to", RuleParts.To(y.Format)), RuleParts.Int("y_zero_point", y.Format.ZeroPoint));
        }
        return null;
    }

    /// <summary>E[d] for d = 0 … 2^bits − 1, stopping before the first entry that rounds to 0 (all later ones do too).</summary>
    internal static int[] ExpTable(IntFormat x)
    {
        int span = x.QMax - x.QMin + 1;
        var e = new List<int>();
        for (int d = 0; d < span; d++)
        {
            long v = (long)Math.Round(Math.ScaleB(Math.Exp(-(double)x.Scale * d), 30), MidpointRounding.ToEven);
            if (v == 0) break;
            e.Add((int)v);
        }
        return [.. e];
    }
}
