namespace Quant.Core.Conversion;

/// <summary>
/// Ops that move or select integers (spec §7): the standard ONNX op runs on the integer tensor, with its own attributes
/// and non-data inputs (shapes, axes, indices). Output formats equal to the input's get the op's integers directly;
/// the others are requantized once from them (selection commutes with the monotone requantization). Split has several
/// outputs, which this rule interface (output 0's formats) cannot describe, so it stays a float island; so does a
/// MaxPool whose Indices output is used.
/// </summary>
public sealed class DataMovementRule : IIntegerRule
{
    public IReadOnlyList<string> OpTypes { get; } =
        ["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Split", "Gather", "MaxPool", "GlobalMaxPool", "ReduceMax"];

    public string? Lower(LoweringRequest r)
    {
        if (RuleParts.CheckInputs(r) is { } reason) return reason;
        if (r.Node.OpType == "Split") return "Split has several outputs; convert lowers single-output data movement only";
        if (r.Node.Outputs.Count > 1 && r.Node.Outputs.Skip(1).Any(o => o.Length > 0))
            return $"{r.Node.OpType}'s second output is used";
        return Select(r);
    }

    /// <summary>The standard op on integers writing every output format (shared with Resize nearest).</summary>
    internal static string? Select(LoweringRequest r)
    {
        var x = RuleParts.In(r, 0);
        var inputs = r.Node.Inputs.ToList();
        inputs[0] = x.Tensor;
        string? moved = null;
        for (int k = 0; k < r.Outputs.Count; k++)
        {
            var y = r.Outputs[k];
            var hint = RuleParts.Hint(r.Node, k, r.Outputs.Count);
            if (y.Format.SameAs(x.Format))
            {
                RuleParts.Add(r.Emit, hint, r.Node.OpType, "", inputs, [y.Tensor], RuleParts.SameAttributes(r.Node));
                continue;
            }
            if (moved is null)
            {
                moved = r.Emit.NewTensorName(r.Node.Outputs[0] + "_int");
                RuleParts.Add(r.Emit, hint + "_move", r.Node.OpType, "", inputs, [moved], RuleParts.SameAttributes(r.Node));
            }
            RuleParts.EmitRequantize(r.Emit, hint + "_requantize", moved, x.Format, y);
        }
        return null;
    }
}
