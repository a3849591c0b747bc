using System.Numerics;
using Quant.Engine.Kernels.Integer;
using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.Integer.IntegerReference;

namespace Quant.Engine.Tests.Kernels.Integer;

/// <summary>QGlobalAveragePool, QAveragePool, QReduceMean (spec §8.1) and QResize linear (§8.4) against exact sums and Rq.</summary>
public class QAveragingTests
{
    private static AttributeValue A(string name, long v) => AttributeValue.Of(name, v);
    private static AttributeValue F(string name, float v) => AttributeValue.Of(name, v);

    private static long Mean(BigInteger sum, long count, float sx, float sy, int zy, ElementType to)
    {
        var (m, n) = Requantize.Mult((double)sx / (count * (double)sy));
        return Rq(sum, m, n, zy, to);
    }

    [Theory]
    [InlineData(ElementType.Int8, ElementType.Int8)]
    [InlineData(ElementType.Int16, ElementType.Int8)]
    [InlineData(ElementType.Int8, ElementType.Int16)]
    public void QGlobalAveragePool_is_the_exact_mean_rounded_once(ElementType xt, ElementType to)
    {
        var rng = new Random(21);
        int[] shape = [2, 5, 7, 13];
        var x = RandomInts(rng, xt, shape);
        float sx = 0.031f, sy = 0.0173f;
        int zx = 3, zy = -2;
        var y = Run("QGlobalAveragePool", [x], 2, A("to", (long)to), A("x_zero_point", zx), A("y_zero_point", zy), F("x_scale", sx), F("y_scale", sy));
        Assert.Equal(new[] { 2, 5, 1, 1 }, y.Shape);
        for (int p = 0; p < 10; p++)
        {
            BigInteger s = 0;
            for (int i = 0; i < 91; i++) s += At(x, p * 91 + i) - zx;
            Assert.Equal(Mean(s, 91, sx, sy, zy, to), At(y, p));
        }
    }

    [Theory]
    [InlineData(0, "NOTSET")]
    [InlineData(1, "NOTSET")]
    [InlineData(0, "SAME_UPPER")]
    public void QAveragePool_sums_the_window_and_divides_by_its_count(int countIncludePad, string autoPad)
    {
        var rng = new Random(22 + countIncludePad);
        int[] shape = [1, 3, 9, 11];
        var x = RandomInts(rng, ElementType.Int8, shape);
        float sx = 0.05f, sy = 0.04f;
        int zx = -4, zy = 1;
        var y = Run("QAveragePool", [x], 1, A("to", 3), A("x_zero_point", zx), A("y_zero_point", zy), F("x_scale", sx), F("y_scale", sy),
            AttributeValue.Of("kernel_shape", new long[] { 3, 2 }), AttributeValue.Of("strides", new long[] { 2, 1 }),
            AttributeValue.Of("pads", new long[] { 1, 1, 1, 0 }), A("count_include_pad", countIncludePad), AttributeValue.Of("auto_pad", autoPad));
        int oh = y.Shape[2], ow = y.Shape[3];
        int[] pads = autoPad == "SAME_UPPER" ? [0, 0] : [1, 1];
        if (autoPad == "SAME_UPPER") { int total = Math.Max(0, (oh - 1) * 2 + 3 - 9); pads[0] = total / 2; total = Math.Max(0, (ow - 1) + 2 - 11); pads[1] = total / 2; }
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                {
                    BigInteger s = 0;
                    long inImage = 0, padded = 0;
                    for (int ki = 0; ki < 3; ki++)
                        for (int kj = 0; kj < 2; kj++)
                        {
                            int r = i * 2 - pads[0] + ki, col = j - pads[1] + kj;
                            bool inside = r >= 0 && r < 9 && col >= 0 && col < 11;
                            // count_include_pad counts taps inside the explicitly padded extent.
                            bool inPad = r >= -pads[0] && r < 9 + (autoPad == "NOTSET" ? 1 : 9) && col >= -pads[1] && col < 11 + (autoPad == "NOTSET" ? 0 : 9);
                            if (inside) { s += At(x, (c * 9 + r) * 11 + col) - zx; inImage++; }
                            if (inPad) padded++;
                        }
                    long count = countIncludePad == 1 ? padded : inImage;
                    Assert.Equal(Mean(s, count, sx, sy, zy, ElementType.Int8), At(y, (c * oh + i) * ow + j));
                }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void QReduceMean_over_axes_from_attribute_or_input(bool axesInput)
    {
        var rng = new Random(23);
        int[] shape = [2, 6, 35];
        var x = RandomInts(rng, ElementType.Int16, shape);
        float sx = 0.0007f, sy = 0.0005f;
        var axes = Tensor.From(new long[] { -1 }, 1);
        var y = axesInput
            ? Run("QReduceMean", [x, axes], 1, A("to", 5), F("x_scale", sx), F("y_scale", sy))
            : Run("QReduceMean", [x], 1, A("to", 5), F("x_scale", sx), F("y_scale", sy), AttributeValue.Of("axes", new long[] { 2 }));
        Assert.Equal(new[] { 2, 6, 1 }, y.Shape);
        for (int r = 0; r < 12; r++)
        {
            BigInteger s = 0;
            for (int i = 0; i < 35; i++) s += At(x, r * 35 + i);
            Assert.Equal(Mean(s, 35, sx, sy, 0, ElementType.Int16), At(y, r));
        }
    }

    [Theory]
    [InlineData("half_pixel", 2f, 2f)]
    [InlineData("align_corners", 1.5f, 3f)]
    [InlineData("asymmetric", 1f, 0.5f)]
    [InlineData("pytorch_half_pixel", 2.5f, 1f)]
    public void QResize_linear_uses_Q20_weights_of_the_coordinate_fraction(string coord, float sh, float sw)
    {
        var rng = new Random(coord.Length);
        int[] shape = [1, 2, 6, 9];
        var x = RandomInts(rng, ElementType.Int8, shape);
        float sx = 0.02f, sy = 0.021f;
        int zx = 5, zy = -1;
        var scales = Tensor.From(new float[] { 1, 1, sh, sw }, 4);
        var y = Run("QResize", [x, null, scales], 1, A("to", 3), A("x_zero_point", zx), A("y_zero_point", zy), F("x_scale", sx), F("y_scale", sy),
            AttributeValue.Of("mode", "linear"), AttributeValue.Of("coordinate_transformation_mode", coord));
        int oh = (int)(sh * 6), ow = (int)(sw * 9);
        Assert.Equal(new[] { 1, 2, oh, ow }, y.Shape);
        var active = new List<(int Len, int OutLen, double S)>();
        if (oh != 6) active.Add((6, oh, sh));
        if (ow != 9) active.Add((9, ow, sw));
        var (m, n) = Requantize.Mult((double)sx / (Math.ScaleB(1.0, 20 * active.Count) * sy));
        (int I0, int I1, long W1) Tap(int o, int inLen, int outLen, double s)
        {
            double c = coord switch
            {
                "half_pixel" => (o + 0.5) / s - 0.5,
                "align_corners" => outLen == 1 ? 0 : o * (inLen - 1) / (double)(s * inLen - 1),
                "pytorch_half_pixel" => (o + 0.5) / s - 0.5,
                _ => o / s,
            };
            double f = Math.Floor(c);
            return (Math.Clamp((int)f, 0, inLen - 1), Math.Clamp((int)f + 1, 0, inLen - 1), (long)Math.Round((c - f) * (1 << 20), MidpointRounding.ToEven));
        }
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                {
                    var (h0, h1, wh) = oh != 6 ? Tap(i, 6, oh, sh) : (i, i, 0L);
                    var (w0, w1, ww) = ow != 9 ? Tap(j, 9, ow, sw) : (j, j, 0L);
                    long one = 1 << 20;
                    long Hw(int t) => oh == 6 ? 1 : t == 0 ? one - wh : wh;
                    long Ww(int t) => ow == 9 ? 1 : t == 0 ? one - ww : ww;
                    BigInteger s = 0;
                    for (int th = 0; th < 2; th++)
                        for (int tw = 0; tw < 2; tw++)
                        {
                            if ((oh == 6 && th == 1) || (ow == 9 && tw == 1)) continue;
                            int r = th == 0 ? h0 : h1, col = tw == 0 ? w0 : w1;
                            s += (BigInteger)Hw(th) * Ww(tw) * (At(x, (c * 6 + r) * 9 + col) - zx);
                        }
                    Assert.Equal(Rq(s, m, n, zy, ElementType.Int8), At(y, (c * oh + i) * ow + j));
                }
    }
}
