using System.Numerics;
using Quant.Engine.Kernels.Integer;
using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.Integer.QGemmReference;

namespace Quant.Engine.Tests.Kernels.Integer;

/// <summary>
/// QConv and QConvTranspose (docs/quantized-model.md, spec §4): the int64 reference path and the fast paths
/// (depthwise, im2col + int8 VNNI GEMM, im2col + int16 GEMM in int32 and int64) equal an independent BigInteger
/// computation of the exact accumulator and its requantization, on odd sizes, zero points, groups, strides, dilations,
/// padding, clamps and both output types.
/// </summary>
public class QConvTests
{
    private sealed record Case(ElementType XType, ElementType WType, ElementType To, int C, int M, int Group, int H, int W, int K, int Stride, int Dilation, int Pad, int Zx, bool Bias, bool PerChannel, bool Wide, int Spread = 0);

    private static (int[] Y, int[] Shape) Exact(Case c, int[] x, int[] w, int[] b, int[] m, int[] n, int zy, int lo, int hi)
    {
        int cg = c.C / c.Group, mg = c.M / c.Group, ext = (c.K - 1) * c.Dilation + 1;
        int oh = (c.H + 2 * c.Pad - ext) / c.Stride + 1, ow = (c.W + 2 * c.Pad - ext) / c.Stride + 1;
        var y = new int[c.M * oh * ow];
        for (int o = 0; o < c.M; o++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                {
                    BigInteger acc = c.Bias ? b[o] : 0;
                    for (int ci = 0; ci < cg; ci++)
                        for (int kh = 0; kh < c.K; kh++)
                            for (int kw = 0; kw < c.K; kw++)
                            {
                                int ih = i * c.Stride - c.Pad + kh * c.Dilation, iw = j * c.Stride - c.Pad + kw * c.Dilation;
                                if (ih < 0 || iw < 0 || ih >= c.H || iw >= c.W) continue;
                                int xv = x[((o / mg * cg + ci) * c.H + ih) * c.W + iw];
                                acc += (BigInteger)(xv - c.Zx) * w[((o * cg + ci) * c.K + kh) * c.K + kw];
                            }
                    int p = m.Length == 1 ? 0 : o;
                    y[(o * oh + i) * ow + j] = Rq(acc, m[p], n[p], zy, lo, hi, c.To);
                }
        return (y, [1, c.M, oh, ow]);
    }

    private static void Check(Case c, int seed)
    {
        var rng = new Random(seed);
        int cg = c.C / c.Group;
        var x = Random(rng, c.C * c.H * c.W, c.XType, c.Spread);
        var w = Random(rng, c.M * cg * c.K * c.K, c.WType, c.Spread);
        var b = Enumerable.Range(0, c.M).Select(_ => rng.Next(-1 << 20, 1 << 20)).ToArray();
        // Shifts that bring the sums back into the output range, with some saturation at the ends.
        int shift = c.XType == ElementType.Int16 || c.WType == ElementType.Int16 ? 40 : 33;
        var (m, n) = Multipliers(rng, c.PerChannel ? c.M : 1, shift + (c.To == ElementType.Int16 ? -6 : 0));
        var (qmin, qmax) = c.To == ElementType.Int8 ? (-128, 127) : (-32768, 32767);
        int zy = rng.Next(-5, 6), lo = qmin + rng.Next(0, 20), hi = qmax - rng.Next(0, 20);
        var consts = new Dictionary<string, Tensor>
        {
            ["w"] = Ints(c.WType, w, c.M, cg, c.K, c.K),
            ["b"] = Tensor.From(b, c.M),
            ["m"] = Tensor.From(m, m.Length),
            ["n"] = Tensor.From(n, n.Length),
        };
        var node = Node("QConv", ["x", "w", c.Bias ? "b" : "", "m", "n"],
            ("group", c.Group), ("strides", new long[] { c.Stride, c.Stride }), ("dilations", new long[] { c.Dilation, c.Dilation }),
            ("pads", new long[] { c.Pad, c.Pad, c.Pad, c.Pad }), ("kernel_shape", new long[] { c.K, c.K }), ("x_zero_point", c.Zx),
            ("to", (int)c.To), ("y_zero_point", zy), ("clamp_min", lo), ("clamp_max", hi), ("acc_bits", c.Wide ? 64 : 32));
        var plan = new QConvPlan(Setup(node, consts));
        var xt = Ints(c.XType, x, 1, c.C, c.H, c.W);
        var (expected, shape) = Exact(c, x, w, b, m, n, zy, lo, hi);
        foreach (var vector in new[] { false, true })
        {
            Assert.Equal(shape, plan.OutputShape(xt, msg => new Exception(msg)));
            var y = Tensor.Zeros(c.To, shape);
            plan.Run(xt, y, vector, Sequential);
            Assert.True(expected.SequenceEqual(Values(y)), $"{c} vector={vector}: differs at {FirstDifference(expected, Values(y))}");
        }
    }

    private static string FirstDifference(int[] a, int[] b)
    {
        for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) return $"index {i}: expected {a[i]}, got {b[i]}";
        return "none";
    }

    [Fact]
    public void Int8_dense_convolutions_equal_the_exact_result_on_every_path()
    {
        int seed = 1;
        foreach (var (k, stride, dil, pad) in new[] { (1, 1, 1, 0), (3, 1, 1, 1), (3, 2, 1, 1), (5, 1, 2, 2), (2, 2, 1, 0) })
            foreach (var zx in new[] { 0, -7 })
                Check(new Case(ElementType.Int8, ElementType.Int8, ElementType.Int8, C: 5, M: 19, Group: 1, H: 9, W: 11, k, stride, dil, pad, zx, Bias: true, PerChannel: true, Wide: false), seed++);
    }

    [Fact]
    public void Channels_last_int8_convolutions_over_several_panels_equal_the_exact_result()
    {
        // The dense int8 path builds channels-last panels of 128 pixels: sizes past one panel with a partial last
        // panel and row counts that are not multiples of 4, channel counts on and off the 4-byte pitch, asymmetric
        // interiors, dilation and every padding case.
        int seed = 50;
        foreach (var (ch, k, stride, dil, pad) in new[] { (4, 1, 1, 1, 0), (7, 1, 1, 1, 0), (3, 3, 1, 1, 1), (8, 3, 2, 1, 1), (6, 3, 1, 2, 2), (5, 1, 2, 1, 0), (9, 2, 1, 1, 1) })
            Check(new Case(ElementType.Int8, ElementType.Int8, ElementType.Int8, C: ch, M: 21, Group: 1, H: 17, W: 19, k, stride, dil, pad, Zx: seed % 2 == 0 ? 5 : -128,
                Bias: true, PerChannel: seed % 3 != 0, Wide: false), seed++);
    }

    [Fact]
    public void Pixel_lane_int8_convolutions_on_det_and_rec_shapes_equal_the_exact_result()
    {
        // The dense int8 path (blocked input, taps gathered per panel, pixels in the GEMM lanes) on the layer shapes
        // of det and rec at reduced size: det's stem (3 channels, 3x3 stride 2), 3x3 96 → 24, 1x1 16 → 32 read in
        // place, 1x1 96 → 18 (rows off the 6-row tile), rec's 3x3 stride (2, 1)-like 1x1 on a 3-row strip; planes that
        // end inside a 16-pixel tile and several panels.
        int seed = 90;
        foreach (var (ch, m, h, w, k, stride, pad) in new[]
                 { (3, 16, 41, 39, 3, 2, 1), (96, 24, 20, 20, 3, 1, 1), (16, 32, 40, 41, 1, 1, 0), (96, 18, 20, 20, 1, 1, 0), (48, 120, 3, 40, 1, 1, 0), (12, 96, 24, 17, 3, 1, 1) })
            Check(new Case(ElementType.Int8, ElementType.Int8, ElementType.Int8, C: ch, M: m, Group: 1, H: h, W: w, k, stride, 1, pad, Zx: seed % 2 == 0 ? -3 : 0,
                Bias: true, PerChannel: true, Wide: false), seed++);
    }

    [Fact]
    public void Int8_depthwise_float_sums_stay_exact_at_the_largest_products()
    {
        // The vector depthwise path sums in float32: with x − z_x = 255 and w = −128 on almost every tap (det's 5x5 and
        // an 8x8 kernel, the most taps it takes) every partial sum is the largest the int8 types allow; the int32
        // accumulators (to = int32) must equal the exact ones on both paths.
        foreach (var (k, stride) in new[] { (5, 1), (8, 1), (5, 2), (3, 2) })
        {
            int c = 4, h = 20, w = 71, pad = k / 2, zx = -128;
            var x = Enumerable.Range(0, c * h * w).Select(i => i % 97 == 0 ? -128 : 127).ToArray();
            var wt = Enumerable.Range(0, c * k * k).Select(i => i % 11 == 5 ? 127 : -128).ToArray();
            var b = new[] { 0, 1 << 30, -(1 << 30), 12345 };
            var consts = new Dictionary<string, Tensor> { ["w"] = Ints(ElementType.Int8, wt, c, 1, k, k), ["b"] = Tensor.From(b, c) };
            var node = Node("QConv", ["x", "w", "b"], ("group", c), ("strides", new long[] { stride, stride }), ("pads", new long[] { pad, pad, pad, pad }),
                ("kernel_shape", new long[] { k, k }), ("x_zero_point", zx), ("to", (int)ElementType.Int32));
            var plan = new QConvPlan(Setup(node, consts));
            int oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
            var expected = new int[c * oh * ow];
            for (int m = 0; m < c; m++)
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++)
                    {
                        long acc = b[m];
                        for (int kh = 0; kh < k; kh++)
                            for (int kw = 0; kw < k; kw++)
                            {
                                int ih = i * stride - pad + kh, iw = j * stride - pad + kw;
                                if (ih >= 0 && iw >= 0 && ih < h && iw < w) acc += (long)(x[(m * h + ih) * w + iw] - zx) * wt[(m * k + kh) * k + kw];
                            }
                        expected[(m * oh + i) * ow + j] = (int)acc;
                    }
            foreach (var vector in new[] { false, true })
            {
                var y = Tensor.Zeros(ElementType.Int32, [1, c, oh, ow]);
                plan.Run(Ints(ElementType.Int8, x, 1, c, h, w), y, vector, Sequential);
                Assert.True(expected.SequenceEqual(Values(y)), $"k={k} stride={stride} vector={vector}: differs at {FirstDifference(expected, Values(y))}");
            }
        }
    }

    [Fact]
    public void Strided_depthwise_convolutions_with_dilation_equal_the_exact_result()
    {
        // Strides above 1 run on column phases of the padded plane: strides 2 and 3, dilations that land on either phase.
        int seed = 80;
        foreach (var (k, stride, dil, pad) in new[] { (3, 2, 2, 2), (3, 3, 1, 1), (5, 2, 3, 1), (2, 3, 2, 0) })
        {
            Check(new Case(ElementType.Int8, ElementType.Int8, ElementType.Int8, C: 5, M: 5, Group: 5, H: 15, W: 22, k, stride, dil, pad, -9, true, true, false), seed++);
            Check(new Case(ElementType.Int16, ElementType.Int16, ElementType.Int16, C: 3, M: 3, Group: 3, H: 11, W: 13, k, stride, dil, pad, 40, true, false, true), seed++);
        }
    }

    [Fact]
    public void Int8_depthwise_row_blocks_equal_the_exact_result_on_odd_sizes()
    {
        // The int8 depthwise path works in blocks of 8 output rows with 16-lane rows: a partial last block, rows
        // narrower than 16 (scalar), a width just past 16 (the overlapping last vector), strides, dilation, asymmetric cuts.
        int seed = 400;
        foreach (var (h, w, k, stride, dil, pad) in new[] { (21, 37, 3, 1, 1, 1), (19, 33, 3, 2, 1, 1), (9, 9, 3, 1, 1, 1), (17, 17, 5, 2, 1, 2), (12, 40, 3, 1, 2, 0), (3, 80, 3, 1, 1, 1) })
            Check(new Case(ElementType.Int8, ElementType.Int8, ElementType.Int8, C: 3, M: 3, Group: 3, H: h, W: w, k, stride, dil, pad, seed % 2 == 0 ? -128 : 7,
                Bias: true, PerChannel: true, Wide: false), seed++);
    }

    [Fact]
    public void Depthwise_and_grouped_convolutions_equal_the_exact_result_on_every_path()
    {
        int seed = 100;
        foreach (var (k, stride, pad) in new[] { (3, 1, 1), (3, 2, 1), (5, 1, 2), (5, 2, 2), (3, 1, 0) })
        {
            Check(new Case(ElementType.Int8, ElementType.Int8, ElementType.Int8, C: 7, M: 7, Group: 7, H: 13, W: 17, k, stride, 1, pad, 3, true, true, false), seed++);
            Check(new Case(ElementType.Int16, ElementType.Int8, ElementType.Int16, C: 6, M: 6, Group: 6, H: 9, W: 10, k, stride, 1, pad, -100, false, true, false), seed++);
            Check(new Case(ElementType.Int8, ElementType.Int8, ElementType.Int8, C: 6, M: 9, Group: 3, H: 8, W: 9, k, stride, 1, pad, 0, true, false, false), seed++);
            // int16 × int16 depthwise takes int64 lanes (acc_bits 64).
            Check(new Case(ElementType.Int16, ElementType.Int16, ElementType.Int16, C: 5, M: 5, Group: 5, H: 7, W: 11, k, stride, 1, pad, -300, true, true, true), seed++);
        }
    }

    [Fact]
    public void Int16_convolutions_equal_the_exact_result_in_int32_and_int64_accumulators()
    {
        int seed = 200;
        foreach (var (wType, wide) in new[] { (ElementType.Int8, false), (ElementType.Int8, true), (ElementType.Int16, true) })
            foreach (var (k, stride, pad) in new[] { (1, 1, 0), (3, 2, 1) })
                Check(new Case(ElementType.Int16, wType, ElementType.Int16, C: 3, M: 17, Group: 1, H: 7, W: 9, k, stride, 1, pad, 11, true, true, wide,
                    Spread: wide ? 0 : 2000), seed++);
        // int8 activations against int16 weights go through the int16 GEMM.
        Check(new Case(ElementType.Int8, ElementType.Int16, ElementType.Int8, C: 4, M: 5, Group: 1, H: 6, W: 5, 3, 1, 1, 1, 2, true, true, true), seed++);
    }

    [Fact]
    public void Conv_transpose_equals_the_exact_scatter_on_both_paths()
    {
        var rng = new Random(300);
        // (1, 2, 0, 2), (1, 3, 0, 3) and (2, 2, 0, 2): kernel = stride, the row-tiled path (GEMM, and direct sums for 2 channels per group).
        foreach (var (group, stride, pad, k) in new[] { (1, 2, 0, 2), (1, 2, 1, 3), (2, 1, 1, 3), (1, 3, 0, 2), (1, 3, 0, 3), (2, 2, 0, 2) })
        {
            // Group 1 with stride 2: an odd channel count (padded pitch) and more pixels than one GEMM panel.
            bool large = group == 1 && stride == 2;
            int c = group == 1 ? 5 : 4, mg = 3, m = mg * group, h = large ? 13 : 5, wd = large ? 17 : 7;
            int cg = c / group;
            var x = Random(rng, c * h * wd, ElementType.Int8);
            var w = Random(rng, c * mg * k * k, ElementType.Int8);
            var b = Enumerable.Range(0, m).Select(_ => rng.Next(-5000, 5000)).ToArray();
            var (mm, nn) = Multipliers(rng, m, 31);
            int zx = -3, zy = 2;
            var consts = new Dictionary<string, Tensor>
            {
                ["w"] = Ints(ElementType.Int8, w, c, mg, k, k), ["b"] = Tensor.From(b, m), ["m"] = Tensor.From(mm, m), ["n"] = Tensor.From(nn, m),
            };
            var node = Node("QConvTranspose", ["x", "w", "b", "m", "n"], ("group", group), ("strides", new long[] { stride, stride }),
                ("pads", new long[] { pad, pad, pad, pad }), ("x_zero_point", zx), ("y_zero_point", zy), ("to", 3));
            var plan = new QConvTransposePlan(Setup(node, consts));
            var xt = Ints(ElementType.Int8, x, 1, c, h, wd);
            int oh = (h - 1) * stride + k - 2 * pad, ow = (wd - 1) * stride + k - 2 * pad;
            Assert.Equal([1, m, oh, ow], plan.OutputShape(xt, msg => new Exception(msg)));
            var acc = new BigInteger[m * oh * ow];
            for (int o = 0; o < m; o++) for (int i = 0; i < oh * ow; i++) acc[o * oh * ow + i] = b[o];
            for (int ci = 0; ci < c; ci++)
                for (int j = 0; j < mg; j++)
                    for (int ih = 0; ih < h; ih++)
                        for (int iw = 0; iw < wd; iw++)
                            for (int kh = 0; kh < k; kh++)
                                for (int kw = 0; kw < k; kw++)
                                {
                                    int y0 = ih * stride - pad + kh, x0 = iw * stride - pad + kw;
                                    if (y0 < 0 || x0 < 0 || y0 >= oh || x0 >= ow) continue;
                                    int o = ci / cg * mg + j;
                                    acc[(o * oh + y0) * ow + x0] += (BigInteger)(x[(ci * h + ih) * wd + iw] - zx) * w[((ci * mg + j) * k + kh) * k + kw];
                                }
            var expected = acc.Select((v, i) => Rq(v, mm[i / (oh * ow)], nn[i / (oh * ow)], zy, -128, 127, ElementType.Int8)).ToArray();
            foreach (var vector in new[] { false, true })
            {
                var y = Tensor.Zeros(ElementType.Int8, [1, m, oh, ow]);
                plan.Run(xt, y, vector, Sequential);
                Assert.Equal(expected, Values(y));
            }
        }
    }
}
