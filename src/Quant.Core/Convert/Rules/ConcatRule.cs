namespace Quant.Core.Conversion;

/// <summary>
/// Concat (spec §7): per output format, each input already in that format is used as is and every other input is
/// requantized into it first (one QRequantize per input and format), then the standard Concat joins the integers.
/// </summary>
public sealed class ConcatRule : IIntegerRule
{
    public IReadOnlyList<string> OpTypes { get; } = ["Concat"];

    public string? Lower(LoweringRequest r)
    {
        if (RuleParts.CheckInputs(r) is { } reason) return reason;
        for (int k = 0; k < r.Outputs.Count; k++)
        {
            var y = r.Outputs[k];
            var hint = RuleParts.Hint(r.Node, k, r.Outputs.Count);
            var parts = new List<string>();
            for (int i = 0; i < r.Node.Inputs.Count; i++)
            {
                var x = RuleParts.In(r, i);
                if (x.Format.SameAs(y.Format)) { parts.Add(x.Tensor); continue; }
                var t = r.Emit.NewTensorName($"{x.Tensor}_as_{y.Tensor}");
                RuleParts.EmitRequantize(r.Emit, $"{hint}_input{i}", x.Tensor, x.Format, new IntegerOutput(t, y.Format));
                parts.Add(t);
            }
            RuleParts.Add(r.Emit, hint, "Concat", "", parts, [y.Tensor], RuleParts.SameAttributes(r.Node));
        }
        return null;
    }
}
