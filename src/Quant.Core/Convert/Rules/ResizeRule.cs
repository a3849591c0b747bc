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
        RuleParts.EmitWithScales(r, "QResize");
        return null;
    }
}
