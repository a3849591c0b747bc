using Quant.Engine.Kernels.Integer;
using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.Integer.QGemmReference;

namespace Quant.Engine.Tests.Kernels.Integer;

/// <summary>
/// QConv with <c>activation = "HardSwish"</c> (docs/quantized-model.md): on every convolution path (dense int8 VNNI,
/// depthwise, int16, int64 accumulators) and both output types, the scalar path and the vector epilogue equal an
/// independent computation from the exact accumulator: q = sat(rne(HardSwish(fl32(acc·S_m)) / s_y) + z_y) with
/// HardSwish in float32, product and sum rounded separately; with to = float, HardSwish(fl32(acc·S_m)) bit for bit.
/// </summary>
public class QConvActivationTests
{
    private static float HardSwish(float x)
    {
        float gate = x * (1f / 6f);
        gate += 0.5f;
        return x * MathF.Min(1f, MathF.Max(0f, gate));
    }

    private static void Check(ElementType xType, ElementType to, int c, int m, int group, int k, bool perChannel, bool wide, int seed)
    {
        var rng = new Random(seed);
        int cg = c / group, h = 13, w = 37;
        var x = Random(rng, c * h * w, xType);
        var wt = Random(rng, m * cg * k * k, ElementType.Int8);
        var b = Enumerable.Range(0, m).Select(_ => rng.Next(-1 << 14, 1 << 14)).ToArray();
        float ys = to == ElementType.Int8 ? 0.05f : 0.0003f;
        int zy = to == ElementType.Int8 ? -37 : 1200;
        var consts = new Dictionary<string, Tensor> { ["w"] = Ints(ElementType.Int8, wt, m, cg, k, k), ["b"] = Tensor.From(b, m) };
        (string, object)[] conv = [("group", group), ("pads", new long[] { k / 2, k / 2, k / 2, k / 2 }), ("kernel_shape", new long[] { k, k }), ("x_zero_point", 3)];
        var accPlan = new QConvPlan(Setup(Node("QConv", ["x", "w", "b"], [.. conv, ("to", (int)ElementType.Int64), ("acc_bits", 64)]), consts));
        var xt = Ints(xType, x, 1, c, h, w);
        var shape = accPlan.OutputShape(xt, msg => new Exception(msg));
        var acc = Tensor.Zeros(ElementType.Int64, shape);
        accPlan.Run(xt, acc, false, Sequential);
        var a = acc.ReadOnlySpan<long>();
        // S_m so that fl32(acc·S_m) has an RMS of about 3: both bends of HardSwish (−3, +3), its negative lobe and beyond.
        double rms = Math.Sqrt(a.ToArray().Average(v => (double)v * v));
        var s = Enumerable.Range(0, perChannel ? m : 1).Select(_ => 3 / rms * (0.5 + rng.NextDouble())).ToArray();
        consts["s"] = Tensor.From(s, s.Length);
        var plan = new QConvPlan(Setup(Node("QConv", ["x", "w", "b", "s"],
            [.. conv, ("to", (int)to), ("y_scale", ys), ("y_zero_point", zy), ("activation", "HardSwish"), ("acc_bits", wide ? 64 : 32)]), consts));
        Assert.Equal(shape, plan.OutputShape(xt, msg => new Exception(msg)));
        var (qmin, qmax) = to == ElementType.Int8 ? (-128, 127) : (-32768, 32767);
        int plane = shape[2] * shape[3];
        var expected = new int[a.Length];
        int negative = 0;
        for (int i = 0; i < a.Length; i++)
        {
            float v = HardSwish((float)(a[i] * s[perChannel ? i / plane : 0]));
            if (v < 0) negative++;
            expected[i] = (int)Math.Clamp(Math.Round((double)(v / ys), MidpointRounding.ToEven) + zy, qmin, qmax);
        }
        Assert.True(negative > a.Length / 50, $"only {negative} of {a.Length} values in HardSwish's negative lobe");
        // The float output (a float reader of the HardSwish): HardSwish(fl32(acc·S_m)) itself, bit for bit.
        var floatPlan = new QConvPlan(Setup(Node("QConv", ["x", "w", "b", "s"],
            [.. conv, ("to", (int)ElementType.Float), ("activation", "HardSwish"), ("acc_bits", wide ? 64 : 32)]), consts));
        var yf = Tensor.Zeros(ElementType.Float, shape);
        floatPlan.Run(xt, yf, true, Sequential);
        var f = yf.ReadOnlySpan<float>();
        for (int i = 0; i < a.Length; i++)
        {
            float v = HardSwish((float)(a[i] * s[perChannel ? i / plane : 0]));
            Assert.True(BitConverter.SingleToInt32Bits(v) == BitConverter.SingleToInt32Bits(f[i]), $"float output {i}: expected {v}, got {f[i]}");
        }
        foreach (var vector in new[] { false, true })
        {
            var y = Tensor.Zeros(to, shape);
            plan.Run(xt, y, vector, Sequential);
            var got = Values(y);
            int at = Enumerable.Range(0, got.Length).FirstOrDefault(i => got[i] != expected[i], -1);
            Assert.True(at < 0, $"{xType}→{to} group {group} k {k} wide {wide} vector={vector}: index {at} expected {(at < 0 ? 0 : expected[at])}, got {(at < 0 ? 0 : got[at])}");
        }
    }

    [Fact]
    public void Dense_int8_convolutions_with_hardswish_equal_the_float_chain_on_both_paths()
    {
        Check(ElementType.Int8, ElementType.Int8, c: 8, m: 11, group: 1, k: 1, perChannel: true, wide: false, seed: 1);
        Check(ElementType.Int8, ElementType.Int8, c: 5, m: 9, group: 1, k: 3, perChannel: false, wide: false, seed: 2);
        Check(ElementType.Int8, ElementType.Int16, c: 6, m: 7, group: 1, k: 3, perChannel: true, wide: false, seed: 3);
    }

    [Fact]
    public void Depthwise_int16_and_wide_convolutions_with_hardswish_equal_the_float_chain_on_both_paths()
    {
        Check(ElementType.Int8, ElementType.Int8, c: 12, m: 12, group: 12, k: 3, perChannel: true, wide: false, seed: 4);
        Check(ElementType.Int16, ElementType.Int8, c: 4, m: 6, group: 1, k: 3, perChannel: true, wide: false, seed: 5);
        Check(ElementType.Int8, ElementType.Int8, c: 5, m: 6, group: 1, k: 3, perChannel: true, wide: true, seed: 6);
    }

    /// <summary>
    /// The epilogue's float steps bit for bit (a last-bit slip rarely flips a quantized value, so the integer checks
    /// above would miss it): fl32(acc·S) with AVX against the scalar double product, and the vector HardSwish
    /// against the scalar formula, on values dense around the bends and spread over the int32 range.
    /// </summary>
    [Fact]
    public void Epilogue_float_steps_equal_their_scalar_forms_bit_for_bit()
    {
        var rng = new Random(7);
        var acc = Enumerable.Range(0, 4099).Select(i => i % 3 == 0 ? rng.Next() - (1 << 30) : rng.Next(-40000, 40000)).ToArray();
        var y = new float[acc.Length];
        foreach (var s in new[] { 1e-4, 7.3e-5 * Math.PI, 1.0 / 3, 2.5e-9 })
        {
            FusedActivation.ScaleToFloat(acc, s, y);
            for (int i = 0; i < acc.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(y[i]) == BitConverter.SingleToInt32Bits((float)(acc[i] * s)), $"acc {acc[i]} · {s}: {y[i]}");
        }
        var x = Enumerable.Range(0, 1 << 16).Select(i => i % 2 == 0 ? (float)(rng.NextDouble() * 8 - 4) : (float)(rng.NextDouble() * 2e3 - 1e3))
            .Concat([-3f, 3f, 0f, -0f, BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(3f) + 1), BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(-3f) + 1)]).ToArray();
        var mapped = x.ToArray();
        var hs = FusedActivation.Parse(Setup(Node("QConv", [], ("activation", "HardSwish")), []))!;
        hs.Map(mapped);
        for (int i = 0; i < x.Length; i++)
        {
            Assert.True(BitConverter.SingleToInt32Bits(mapped[i]) == BitConverter.SingleToInt32Bits(HardSwish(x[i])), $"HardSwish({x[i]}): vector {mapped[i]}, reference {HardSwish(x[i])}");
            Assert.True(BitConverter.SingleToInt32Bits(hs.Scalar(x[i])) == BitConverter.SingleToInt32Bits(HardSwish(x[i])), $"HardSwish({x[i]}): scalar {hs.Scalar(x[i])}");
        }
    }
}
