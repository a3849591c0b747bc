namespace Quant.Core.Conversion;

/// <summary>
/// Resize (spec §8.3, §8.4): mode nearest selects integers, so it stays the standard Resize on integers (plus a
/// QRequantize when the output format differs, §7); mode linear becomes QResize with Q20 weights, when it has no
/// antialias and no tf_crop_and_resize extrapolation; cubic and those cases stay float islands.
/// </summary>
public sealed class ResizeRule : IIntegerRule
{
    public IReadOnlyList<string> OpTypes { get; } = ["Resize"];

    public string? Lower(LoweringRequest r)
    {
        if (RuleParts.CheckInputs(r) is { } reason) return reason;
        var mode = r.Node.GetString("mode", "nearest");
        if (mode == "nearest") return DataMovementRule.Select(r);
        if (mode != "linear") return $"Resize mode {mode} has no integer rule";
        if (r.Node.GetInt("antialias", 0) != 0) return "Resize linear with antialias has no integer rule";
        if (r.Node.GetString("coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize")
            return "Resize with tf_crop_and_resize has no integer rule";
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
            RuleParts.Add(r.Emit, RuleParts.Hint(r.Node, k, r.Outputs.Count), "QResize", LoweringEmitter.Domain, inputs, [y.Tensor], attrs);
        }
        return null;
    }
}
