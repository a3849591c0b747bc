using Quant.Onnx;

namespace Quant.Core.Conversion;

/// <summary>Conv → <c>QConv</c> (docs/quantization-spec.md §4): exact accumulator, int32 bias, per-channel requantization, fused Relu/Clip (integer clamps) or HardSwish (float epilogue).</summary>
public sealed class ConvRule : IFloatOutputRule
{
    public IReadOnlyList<string> OpTypes { get; } = ["Conv"];

    public string? Lower(LoweringRequest r)
    {
        if (GemmLowering.ActivationMissing(r, 0, "input X") is { } why) return why;
        if (r.Inputs.Count < 2 || r.Inputs[1] is not { IsConstant: true } wIn) return "the weights W are not a quantized initializer";
        var x = r.Inputs[0]!;
        var w = GemmLowering.CheckWeights(r, wIn, 0, "Conv weights [M, C/group, k...]");
        if (w.Dims.Length is not (3 or 4)) return $"a {w.Dims.Length - 2}-D Conv has no integer kernel (1-D and 2-D have)";
        int m = (int)w.Dims[0], k = w.Values.Length / Math.Max(1, m);
        var s = new double[m];
        for (int c = 0; c < m; c++) s[c] = (double)x.Format.Scale * wIn.Scales[wIn.Scales.Count == 1 ? 0 : c];
        var qb = GemmLowering.Bias(r, 2, s, 1.0, out var island);
        if (island is not null) return island;
        long maxX = GemmLowering.MaxAbs(x.Format);
        var bounds = Enumerable.Range(0, m).Select(c =>
        {
            long sum = 0;
            for (int t = 0; t < k; t++) sum += Math.Abs(w.Values[c * k + t]);
            return maxX * sum + (qb is null ? 0 : Math.Abs((long)qb[c]));
        });
        int accBits = GemmLowering.AccBits(bounds);
        string bias = qb is null ? "" : GemmLowering.AddInts(r, $"{r.Node.Name}_bias_int32", qb);
        var attrs = GemmLowering.Copy(r.Node, "auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
            .Append(AttributeValue.Of("x_zero_point", (long)x.Format.ZeroPoint))
            .Append(AttributeValue.Of("axis", 1L));
        if (GemmLowering.FloatActivation(r) is { } activation)
            GemmLowering.EmitActivated(r, "QConv", [x.Tensor, wIn.Tensor, bias], attrs, s, activation, accBits);
        else
            GemmLowering.Emit(r, "QConv", [x.Tensor, wIn.Tensor, bias], attrs, y => s.Select(v => v / y.Scale).ToArray(), accBits);
        GemmLowering.EmitFloat(r, "QConv", [x.Tensor, wIn.Tensor, bias], attrs, s, accBits);
        return null;
    }
}
