using Quant.Onnx;

namespace Quant.Core.Conversion;

/// <summary>
/// ConvTranspose → <c>QConvTranspose</c> (docs/quantization-spec.md §4). Weights [C, M/group, k...] are per channel
/// along axis 1; output channel m reads weight channel m mod (M/group) (§3.2).
/// </summary>
public sealed class ConvTransposeRule : IFloatOutputRule
{
    public IReadOnlyList<string> OpTypes { get; } = ["ConvTranspose"];

    public string? Lower(LoweringRequest r)
    {
        if (GemmLowering.ActivationMissing(r, 0, "input X") is { } why) return why;
        if (r.Inputs.Count < 2 || r.Inputs[1] is not { IsConstant: true } wIn) return "the weights W are not a quantized initializer";
        var x = r.Inputs[0]!;
        var w = GemmLowering.CheckWeights(r, wIn, 1, "ConvTranspose weights [C, M/group, k...]");
        if (w.Dims.Length is not (3 or 4)) return $"a {w.Dims.Length - 2}-D ConvTranspose has no integer kernel (1-D and 2-D have)";
        int group = (int)r.Node.GetInt("group", 1);
        int c = (int)w.Dims[0], mg = (int)w.Dims[1], m = mg * group;
        if (group < 1 || c % group != 0) return $"{c} input channels do not divide into {group} groups";
        int taps = w.Values.Length / Math.Max(1, c * mg), cg = c / group;
        var s = new double[m];
        for (int o = 0; o < m; o++) s[o] = (double)x.Format.Scale * wIn.Scales[wIn.Scales.Count == 1 ? 0 : o % mg];
        var qb = GemmLowering.Bias(r, 2, s, 1.0, out var island);
        if (island is not null) return island;
        long maxX = GemmLowering.MaxAbs(x.Format);
        var bounds = Enumerable.Range(0, m).Select(o =>
        {
            // Every tap of the group's input channels may land on one output: the conservative Σ|w| of §4.3.
            int grp = o / mg, j = o % mg;
            long sum = 0;
            for (int ci = grp * cg; ci < (grp + 1) * cg; ci++)
                for (int t = 0; t < taps; t++) sum += Math.Abs(w.Values[(ci * mg + j) * taps + t]);
            return maxX * sum + (qb is null ? 0 : Math.Abs((long)qb[o]));
        });
        int accBits = GemmLowering.AccBits(bounds);
        string bias = qb is null ? "" : GemmLowering.AddInts(r, $"{r.Node.Name}_bias_int32", qb);
        var attrs = GemmLowering.Copy(r.Node, "auto_pad", "dilations", "group", "kernel_shape", "output_padding", "output_shape", "pads", "strides")
            .Append(AttributeValue.Of("x_zero_point", (long)x.Format.ZeroPoint))
            .Append(AttributeValue.Of("axis", 1L));
        GemmLowering.Emit(r, "QConvTranspose", [x.Tensor, wIn.Tensor, bias], attrs, y => s.Select(v => v / y.Scale).ToArray(), accBits);
        GemmLowering.EmitFloat(r, "QConvTranspose", [x.Tensor, wIn.Tensor, bias], attrs, s, accBits);
        return null;
    }
}
