using Quant.Onnx;

namespace Quant.Engine.Tests.Kernels;

public class ConvTransposeTests
{
    /// <summary>Scatter form straight from the definition, double accumulation.</summary>
    private static float[] Reference(Tensor x, Tensor w, float[]? bias, int group, int[] s, int[] d, int[] pb, int[] outShape)
    {
        int r = x.Rank - 2, batch = x.Shape[0], cin = x.Shape[1], mg = w.Shape[1], m = mg * group, cg = cin / group;
        var inShape = x.Shape[2..];
        var kernel = w.Shape[2..];
        int inProd = ConvReference.Prod(inShape), kProd = ConvReference.Prod(kernel), outProd = ConvReference.Prod(outShape);
        var xs = x.ReadOnlySpan<float>().ToArray();
        var ws = w.ReadOnlySpan<float>().ToArray();
        var acc = new double[batch * m * outProd];
        var ipos = new int[r];
        var kpos = new int[r];
        for (int n = 0; n < batch; n++)
            for (int ci = 0; ci < cin; ci++)
            {
                int g = ci / cg;
                for (int oc = 0; oc < mg; oc++)
                    for (int inf = 0; inf < inProd; inf++)
                    {
                        ConvReference.Unflatten(inf, inShape, ipos);
                        for (int kf = 0; kf < kProd; kf++)
                        {
                            ConvReference.Unflatten(kf, kernel, kpos);
                            int idx = 0;
                            bool inside = true;
                            for (int dd = 0; dd < r; dd++)
                            {
                                int p = ipos[dd] * s[dd] - pb[dd] + kpos[dd] * d[dd];
                                if (p < 0 || p >= outShape[dd]) inside = false;
                                idx = idx * outShape[dd] + p;
                            }
                            if (!inside) continue;
                            acc[(n * m + g * mg + oc) * outProd + idx] += (double)xs[(n * cin + ci) * inProd + inf] * ws[(ci * mg + oc) * kProd + kf];
                        }
                    }
            }
        var y = new float[acc.Length];
        for (int i = 0; i < y.Length; i++) y[i] = (float)(acc[i] + (bias?[i / outProd % m] ?? 0));
        return y;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Random_transposed_convolutions_match_the_reference(int rank)
    {
        var rng = new Random(40 + rank);
        for (int t = 0; t < (rank == 3 ? 6 : 30); t++)
        {
            int group = rng.Next(1, 4), cg = rng.Next(1, 6), mg = rng.Next(1, 6);
            var k = Enumerable.Range(0, rank).Select(_ => rng.Next(1, 5)).ToArray();
            var s = Enumerable.Range(0, rank).Select(_ => rng.Next(1, 4)).ToArray();
            var d = Enumerable.Range(0, rank).Select(_ => rng.Next(1, 3)).ToArray();
            var inShape = Enumerable.Range(0, rank).Select(_ => rng.Next(1, rank == 3 ? 5 : 12)).ToArray();
            var op = Enumerable.Range(0, rank).Select(i => rng.Next(0, s[i])).ToArray();
            var pb = Enumerable.Range(0, rank).Select(i => rng.Next(0, k[i])).ToArray();
            var pe = Enumerable.Range(0, rank).Select(i => rng.Next(0, k[i])).ToArray();
            var outShape = Enumerable.Range(0, rank).Select(i => s[i] * (inShape[i] - 1) + op[i] + (k[i] - 1) * d[i] + 1 - pb[i] - pe[i]).ToArray();
            if (outShape.Any(o => o <= 0)) continue;
            var x = GemmTestUtil.RandomTensor(rng, [rng.Next(1, 3), group * cg, .. inShape]);
            var w = GemmTestUtil.RandomTensor(rng, [group * cg, mg, .. k]);
            var b = rng.Next(2) == 0 ? GemmTestUtil.RandomTensor(rng, group * mg) : null;
            var expected = Reference(x, w, b?.ReadOnlySpan<float>().ToArray(), group, s, d, pb, outShape);
            var attrs = new[]
            {
                AttributeValue.Of("group", (long)group),
                AttributeValue.Of("strides", s.Select(v => (long)v).ToArray()),
                AttributeValue.Of("dilations", d.Select(v => (long)v).ToArray()),
                AttributeValue.Of("pads", pb.Concat(pe).Select(v => (long)v).ToArray()),
                AttributeValue.Of("output_padding", op.Select(v => (long)v).ToArray()),
            };
            var y = GemmTestUtil.RunNode("ConvTranspose", attrs, [x, w, b], t % 2 == 0 ? new HashSet<int> { 1, 2 } : null);
            Assert.Equal([x.Shape[0], group * mg, .. outShape], y.Shape);
            GemmTestUtil.AssertClose(expected, y.ReadOnlySpan<float>(), $"case {t} group={group} k=[{string.Join(",", k)}] s=[{string.Join(",", s)}] d=[{string.Join(",", d)}] pads=[{string.Join(",", pb)}|{string.Join(",", pe)}] op=[{string.Join(",", op)}]");
        }
    }

    /// <summary>
    /// Kernel == stride without padding (the bias-in-GEMM, copy-scatter path): widths 1..37 cover the 16-wide
    /// interleave and its tail; strides 1..3 per axis, groups, batches, with and without bias, runtime and constant weights.
    /// </summary>
    [Fact]
    public void Kernel_equal_to_stride_tiles_the_output_exactly()
    {
        var rng = new Random(77);
        for (int t = 0; t < 40; t++)
        {
            int sh = t % 3 + 1, sw = t < 37 ? 2 : t % 3 + 1;
            int h = rng.Next(1, 6), w = t < 37 ? t + 1 : rng.Next(1, 40);
            int group = t % 5 == 4 ? 2 : 1, cg = rng.Next(1, 7), mg = rng.Next(1, 5);
            var x = GemmTestUtil.RandomTensor(rng, t % 7 == 3 ? 2 : 1, group * cg, h, w);
            var wt = GemmTestUtil.RandomTensor(rng, group * cg, mg, sh, sw);
            var b = t % 2 == 0 ? GemmTestUtil.RandomTensor(rng, group * mg) : null;
            var expected = Reference(x, wt, b?.ReadOnlySpan<float>().ToArray(), group, [sh, sw], [1, 1], [0, 0], [h * sh, w * sw]);
            var attrs = new[] { AttributeValue.Of("group", (long)group), AttributeValue.Of("strides", new long[] { sh, sw }) };
            var y = GemmTestUtil.RunNode("ConvTranspose", attrs, [x, wt, b], t % 3 == 0 ? new HashSet<int> { 1, 2 } : null);
            Assert.Equal([x.Shape[0], group * mg, h * sh, w * sw], y.Shape);
            GemmTestUtil.AssertClose(expected, y.ReadOnlySpan<float>(), $"case {t} s={sh},{sw} in={h}x{w} group={group}");
        }
    }

    [Fact]
    public void Output_shape_derives_the_padding()
    {
        var rng = new Random(2);
        var x = GemmTestUtil.RandomTensor(rng, 1, 2, 5, 4);
        var w = GemmTestUtil.RandomTensor(rng, 2, 3, 3, 3);
        // full = 2*(5-1)+3 = 11 and 2*(4-1)+3 = 9; asking for 10 x 8 trims one unit, taken from the beginning (NOTSET).
        var expected = Reference(x, w, null, 1, [2, 2], [1, 1], [1, 1], [10, 8]);
        var y = GemmTestUtil.RunNode("ConvTranspose", [AttributeValue.Of("strides", new long[] { 2, 2 }), AttributeValue.Of("output_shape", new long[] { 10, 8 })], [x, w, null]);
        Assert.Equal([1, 3, 10, 8], y.Shape);
        GemmTestUtil.AssertClose(expected, y.ReadOnlySpan<float>(), "output_shape");
    }

    [Fact]
    public void Det_upsampling_is_thread_count_independent()
    {
        var rng = new Random(6);
        var x = GemmTestUtil.RandomTensor(rng, 1, 24, 20, 30);
        var w = GemmTestUtil.RandomTensor(rng, 24, 6, 2, 2);
        var b = GemmTestUtil.RandomTensor(rng, 6);
        var attrs = new[] { AttributeValue.Of("strides", new long[] { 2, 2 }) };
        var one = GemmTestUtil.RunNode("ConvTranspose", attrs, [x, w, b], new HashSet<int> { 1, 2 }, threads: 1);
        var two = GemmTestUtil.RunNode("ConvTranspose", attrs, [x, w, b], new HashSet<int> { 1, 2 }, threads: 2);
        var expected = Reference(x, w, b.ReadOnlySpan<float>().ToArray(), 1, [2, 2], [1, 1], [0, 0], [40, 60]);
        GemmTestUtil.AssertClose(expected, one.ReadOnlySpan<float>(), "1 thread");
        GemmTestUtil.AssertBitwiseEqual(one.ReadOnlySpan<float>(), two.ReadOnlySpan<float>(), "1 vs 2 threads");
    }
}
