using Quant.Engine.Kernels.Common;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Engine.Tests.Kernels;

/// <summary>Straightforward N-D convolution loops (double accumulation) used as the reference.</summary>
internal static class ConvReference
{
    public static float[] Conv(Tensor x, Tensor w, float[]? bias, int group, int[] strides, int[] dilations, int[] padBegin, int[] outShape)
    {
        int r = x.Rank - 2, batch = x.Shape[0], c = x.Shape[1], m = w.Shape[0], cg = w.Shape[1], mg = m / group;
        var inShape = x.Shape[2..];
        var kernel = w.Shape[2..];
        int inProd = Prod(inShape), kProd = Prod(kernel), outProd = Prod(outShape);
        var xs = x.ReadOnlySpan<float>().ToArray();
        var ws = w.ReadOnlySpan<float>().ToArray();
        var y = new float[batch * m * outProd];
        var opos = new int[r];
        var kpos = new int[r];
        for (int n = 0; n < batch; n++)
            for (int o = 0; o < m; o++)
            {
                int g = o / mg;
                for (int of = 0; of < outProd; of++)
                {
                    Unflatten(of, outShape, opos);
                    double s = bias?[o] ?? 0;
                    for (int ci = 0; ci < cg; ci++)
                        for (int kf = 0; kf < kProd; kf++)
                        {
                            Unflatten(kf, kernel, kpos);
                            int idx = 0;
                            bool inside = true;
                            for (int d = 0; d < r; d++)
                            {
                                int p = opos[d] * strides[d] - padBegin[d] + kpos[d] * dilations[d];
                                if (p < 0 || p >= inShape[d]) inside = false;
                                idx = idx * inShape[d] + p;
                            }
                            if (!inside) continue;
                            s += (double)ws[(o * cg + ci) * kProd + kf] * xs[(n * c + g * cg + ci) * inProd + idx];
                        }
                    y[(n * m + o) * outProd + of] = (float)s;
                }
            }
        return y;
    }

    public static int Prod(int[] a) => a.Aggregate(1, (p, v) => p * v);

    public static void Unflatten(int flat, int[] shape, int[] pos)
    {
        for (int d = shape.Length - 1; d >= 0; d--) { pos[d] = flat % shape[d]; flat /= shape[d]; }
    }
}

public class ConvTests
{
    private sealed record Case(int Batch, int C, int M, int Group, int[] In, int[] K, int[] S, int[] D, int[] Pb, int[] Pe, bool Bias, bool ConstW);

    private static float[] Run(Case cs, Random rng, int threads, out float[] expected)
    {
        var x = GemmTestUtil.RandomTensor(rng, [cs.Batch, cs.C, .. cs.In]);
        var w = GemmTestUtil.RandomTensor(rng, [cs.M, cs.C / cs.Group, .. cs.K]);
        var b = cs.Bias ? GemmTestUtil.RandomTensor(rng, cs.M) : null;
        int r = cs.In.Length;
        var outShape = new int[r];
        for (int i = 0; i < r; i++) outShape[i] = (cs.In[i] + cs.Pb[i] + cs.Pe[i] - ((cs.K[i] - 1) * cs.D[i] + 1)) / cs.S[i] + 1;
        expected = ConvReference.Conv(x, w, b?.ReadOnlySpan<float>().ToArray(), cs.Group, cs.S, cs.D, cs.Pb, outShape);
        var attrs = new List<AttributeValue>
        {
            AttributeValue.Of("group", (long)cs.Group),
            AttributeValue.Of("strides", cs.S.Select(v => (long)v).ToArray()),
            AttributeValue.Of("dilations", cs.D.Select(v => (long)v).ToArray()),
            AttributeValue.Of("pads", cs.Pb.Concat(cs.Pe).Select(v => (long)v).ToArray()),
        };
        var y = GemmTestUtil.RunNode("Conv", attrs, [x, w, b], cs.ConstW ? new HashSet<int> { 1, 2 } : null, threads);
        Assert.Equal([cs.Batch, cs.M, .. outShape], y.Shape);
        return y.ReadOnlySpan<float>().ToArray();
    }

    private static Case RandomCase(Random rng, int r, bool depthwise)
    {
        int group = depthwise ? rng.Next(1, 9) : rng.Next(1, 4);
        int cg = depthwise ? 1 : rng.Next(1, 9);
        int mg = depthwise ? rng.Next(1, 3) : rng.Next(1, 12);
        var k = Enumerable.Range(0, r).Select(_ => rng.Next(1, 6)).ToArray();
        var s = Enumerable.Range(0, r).Select(_ => rng.Next(1, 4)).ToArray();
        var d = Enumerable.Range(0, r).Select(_ => rng.Next(1, 3)).ToArray();
        var pb = Enumerable.Range(0, r).Select(i => rng.Next(0, k[i] + 1)).ToArray();
        var pe = Enumerable.Range(0, r).Select(i => rng.Next(0, k[i] + 1)).ToArray();
        var inp = Enumerable.Range(0, r).Select(i => Math.Max((k[i] - 1) * d[i] + 1, rng.Next(1, r == 3 ? 9 : r == 2 ? 24 : 70))).ToArray();
        return new Case(rng.Next(1, 3), cg * group, mg * group, group, inp, k, s, d, pb, pe, rng.Next(2) == 0, rng.Next(2) == 0);
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(2, true)]
    [InlineData(1, true)]
    [InlineData(3, false)]
    public void Random_convolutions_match_the_reference(int rank, bool depthwise)
    {
        var rng = new Random(rank * 10 + (depthwise ? 1 : 0));
        int count = rank == 3 ? 8 : 40;
        for (int t = 0; t < count; t++)
        {
            var cs = RandomCase(rng, rank, depthwise);
            var actual = Run(cs, rng, 2, out var expected);
            GemmTestUtil.AssertClose(expected, actual, $"case {t}: {cs} in=[{string.Join(",", cs.In)}] k=[{string.Join(",", cs.K)}] s=[{string.Join(",", cs.S)}] d=[{string.Join(",", cs.D)}] pads=[{string.Join(",", cs.Pb)}|{string.Join(",", cs.Pe)}]");
        }
    }

    [Fact]
    public void Det_like_layers_match_the_reference()
    {
        var rng = new Random(3);
        var cases = new[]
        {
            new Case(1, 3, 16, 1, [67, 45], [3, 3], [2, 2], [1, 1], [1, 1], [1, 1], true, true),      // stem
            new Case(1, 24, 40, 1, [21, 33], [1, 1], [1, 1], [1, 1], [0, 0], [0, 0], true, true),     // pointwise
            new Case(1, 24, 24, 24, [21, 35], [5, 5], [1, 1], [1, 1], [2, 2], [2, 2], true, true),    // dw 5x5
            new Case(1, 24, 24, 24, [22, 35], [3, 3], [2, 2], [1, 1], [1, 1], [1, 1], true, true),    // dw 3x3 s2
            new Case(1, 16, 16, 16, [12, 40], [3, 3], [2, 1], [1, 1], [1, 1], [1, 1], true, true),    // rec dw (2,1)
            new Case(1, 16, 16, 16, [12, 40], [5, 5], [1, 2], [1, 1], [2, 2], [2, 2], false, true),   // rec dw (1,2)
            new Case(1, 32, 20, 1, [6, 40], [1, 3], [1, 1], [1, 1], [0, 1], [0, 1], true, true),      // rec 1x3
            new Case(1, 32, 64, 1, [20, 20], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1], true, false),    // dense 3x3, runtime weights
        };
        foreach (var cs in cases)
        {
            var actual = Run(cs, rng, 2, out var expected);
            GemmTestUtil.AssertClose(expected, actual, $"{cs}");
        }
    }

    [Fact]
    public void Depthwise_every_output_width_from_1_to_67_fma_and_portable()
    {
        var rng = new Random(11);
        for (int ow = 1; ow <= 67; ow++)
        {
            int k = 1 + ow % 5, s = 1 + ow % 2, pad = ow % 3;
            int w = (ow - 1) * s + k - 2 * pad;
            if (w < 1) { pad = 0; w = (ow - 1) * s + k; }
            var g = new Conv2DGeometry(1, 4, w, 3, k, 1, s, 1, 1, 1, pad, 4, ow);
            var x = Tensor.From(GemmTestUtil.Random(rng, 4 * w), 1, 1, 4, w);
            var wt = Tensor.From(GemmTestUtil.Random(rng, 3 * k), 1, 1, 3, k);
            var expected = ConvReference.Conv(x, wt, [0.25f], 1, [1, s], [1, 1], [1, pad], [4, ow]);
            foreach (bool fma in new[] { true, false })
            {
                var y = new float[4 * ow];
                Depthwise.Run(g, (float[])x.Buffer, 0, (float[])wt.Buffer, 0, 0.25f, y, 0, new float[Depthwise.ScratchSize(g)], fma);
                GemmTestUtil.AssertClose(expected, y, $"ow={ow} k={k} s={s} pad={pad} fma={fma}");
            }
        }
    }

    /// <summary>
    /// The depthwise vector paths (four rows at a time, 64/32/16-column blocks, partial tails, stride-2
    /// de-interleaving, phase-split strides) against a scalar loop in the same order (bias, then taps ky-major,
    /// one fused multiply-add each): bitwise, for output heights 1..9, widths 1..70 and beyond, strides 1..3,
    /// dilations 1..2, asymmetric pads; the scratch starts as NaN and the output is checked not to spill.
    /// </summary>
    [Fact]
    public void Depthwise_matches_the_ordered_scalar_loop_bitwise()
    {
        var rng = new Random(31);
        for (int t = 0; t < 420; t++)
        {
            int oh = 1 + t / 7 % 9, ow = t < 350 ? 1 + t % 70 : rng.Next(70, 170);
            int kh = rng.Next(1, 6), kw = rng.Next(1, 6), sh = rng.Next(1, 4), sw = t % 4 == 0 ? 2 : rng.Next(1, 4);
            int dh = rng.Next(1, 3), dw = rng.Next(1, 3), pt = rng.Next(0, kh), pl = rng.Next(0, kw);
            int h = Math.Max(1, (oh - 1) * sh + (kh - 1) * dh + 1 - pt - rng.Next(0, kh));
            int w = Math.Max(1, (ow - 1) * sw + (kw - 1) * dw + 1 - pl - rng.Next(0, kw));
            var g = new Conv2DGeometry(1, h, w, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow);
            int xOffset = t % 3, wOffset = t % 2 * 5, yOffset = 2;
            var x = GemmTestUtil.Random(rng, xOffset + h * w);
            var wt = GemmTestUtil.Random(rng, wOffset + kh * kw);
            float bias = GemmTestUtil.Random(rng, 1)[0];
            var expected = new float[oh * ow];
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                {
                    float acc = bias;
                    for (int ky = 0; ky < kh; ky++)
                        for (int kx = 0; kx < kw; kx++)
                        {
                            int iy = oy * sh - pt + ky * dh, ix = ox * sw - pl + kx * dw;
                            float v = iy >= 0 && iy < h && ix >= 0 && ix < w ? x[xOffset + iy * w + ix] : 0f;
                            acc = MathF.FusedMultiplyAdd(wt[wOffset + ky * kw + kx], v, acc);
                        }
                    expected[oy * ow + ox] = acc;
                }
            var y = Enumerable.Repeat(float.NaN, yOffset + oh * ow + 3).ToArray();
            var scratch = Enumerable.Repeat(float.NaN, Depthwise.ScratchSize(g)).ToArray();
            Depthwise.Run(g, x, xOffset, wt, wOffset, bias, y, yOffset, scratch);
            string what = $"t={t} in={h}x{w} k={kh}x{kw} s={sh},{sw} d={dh},{dw} pads={pt},{pl} out={oh}x{ow}";
            GemmTestUtil.AssertBitwiseEqual(expected, y.AsSpan(yOffset, oh * ow), what);
            Assert.True(float.IsNaN(y[yOffset - 1]) && float.IsNaN(y[yOffset + oh * ow]), $"{what}: wrote outside its output");
        }
    }

    [Fact]
    public void Auto_pad_modes_follow_the_spec()
    {
        var rng = new Random(8);
        var x = GemmTestUtil.RandomTensor(rng, 1, 2, 7, 8);
        var w = GemmTestUtil.RandomTensor(rng, 3, 2, 4, 3);
        // SAME_UPPER: out = ceil(in/s); total pad (o-1)*s + k - in; the odd unit at the end. SAME_LOWER: at the beginning.
        foreach (var (mode, pb, outShape) in new[]
        {
            ("SAME_UPPER", new[] { 1, 0 }, new[] { 4, 4 }),
            ("SAME_LOWER", new[] { 2, 1 }, new[] { 4, 4 }),
            ("VALID", new[] { 0, 0 }, new[] { 2, 3 }),
        })
        {
            var expected = ConvReference.Conv(x, w, null, 1, [2, 2], [1, 1], pb, outShape);
            var y = GemmTestUtil.RunNode("Conv", [AttributeValue.Of("auto_pad", mode), AttributeValue.Of("strides", new long[] { 2, 2 })], [x, w, null]);
            Assert.Equal([1, 3, .. outShape], y.Shape);
            GemmTestUtil.AssertClose(expected, y.ReadOnlySpan<float>(), mode);
        }
    }

    [Fact]
    public void Results_do_not_depend_on_the_thread_count()
    {
        var cases = new[]
        {
            new Case(1, 32, 48, 1, [30, 41], [1, 1], [1, 1], [1, 1], [0, 0], [0, 0], true, true),
            new Case(2, 16, 24, 1, [19, 23], [3, 3], [2, 2], [1, 1], [1, 1], [1, 1], true, true),
            new Case(1, 24, 24, 24, [33, 50], [5, 5], [1, 1], [1, 1], [2, 2], [2, 2], true, true),
        };
        foreach (var cs in cases)
        {
            var one = Run(cs, new Random(4), 1, out _);
            var two = Run(cs, new Random(4), 2, out _);
            GemmTestUtil.AssertBitwiseEqual(one, two, cs.ToString());
        }
    }

    /// <summary>
    /// The in-place stride-1 path against the packed GEMM (same summation order, so the same bits) and the
    /// double reference, on odd shapes: output widths 1..67 (every panel tail), rows 1..19 (every MR tail),
    /// K across a KC block, dilations, asymmetric and over-sized pads, pointwise maps whose last panel would read
    /// past the end of the image (offset into a larger buffer and exactly at its end), 1 and 2 threads.
    /// </summary>
    [Fact]
    public void Direct_stride1_path_matches_the_packed_gemm_bitwise_and_the_reference()
    {
        var rng = new Random(21);
        foreach (var isa in GemmTestUtil.SupportedIsas().Where(i => i != GemmIsa.Scalar))
        {
            var gemm = new PackedGemm(isa);
            for (int t = 0; t < 90; t++)
            {
                bool pointwise = t % 3 == 0;
                int ow = t < 67 ? t + 1 : rng.Next(1, 90);
                int oh = rng.Next(1, 5);
                int kh = pointwise ? 1 : rng.Next(1, 4), kw = pointwise ? 1 : rng.Next(1, 6);
                int dh = pointwise ? 1 : rng.Next(1, 3), dw = pointwise ? 1 : rng.Next(1, 3);
                int pt = pointwise ? 0 : rng.Next(0, kh + 1), pl = pointwise ? 0 : rng.Next(0, kw + 1);
                int ch = t % 10 == 5 ? 31 : rng.Next(1, 8); // 31 x 9 taps crosses the 256-deep K block
                if (t % 10 == 5 && !pointwise) { kh = 3; kw = 3; }
                int h = pointwise ? oh : Math.Max(1, oh - 1 + (kh - 1) * dh + 1 - pt - rng.Next(0, kh));
                int w = pointwise ? ow : Math.Max(1, ow - 1 + (kw - 1) * dw + 1 - pl - rng.Next(0, kw));
                int m = t % 20 + 1;
                var g = new Conv2DGeometry(ch, h, w, kh, kw, 1, 1, dh, dw, pt, pl, oh, ow);
                int k = g.KSize, n = oh * ow, plane = h * w;
                int xOffset = t % 2 == 0 ? 0 : 7;
                var x = GemmTestUtil.Random(rng, xOffset + ch * plane);
                var wts = GemmTestUtil.Random(rng, m * k);
                bool hasBias = t % 4 != 1;
                var bias = hasBias ? GemmTestUtil.Random(rng, m) : null;
                var paddedBias = new float[gemm.PaddedRows(m) + 2];
                bias?.CopyTo(paddedBias, 2);
                var a = gemm.PackA(wts, 0, k, 1, m, k);
                var expectedPacked = Enumerable.Repeat(float.NaN, 3 + m * n).ToArray();
                GemmBSource src = g.IsPointwise ? new StridedB(x, xOffset, plane, 1) : new Conv2DBSource(x, xOffset, g);
                gemm.Multiply(null, m, n, k, a, 0, src, expectedPacked, 3, n, hasBias ? paddedBias : null, 2);
                var xt = Tensor.From(x.AsSpan(xOffset).ToArray(), 1, ch, h, w);
                var wt = Tensor.From(wts, m, ch, kh, kw);
                var reference = ConvReference.Conv(xt, wt, bias, 1, [1, 1], [dh, dw], [pt, pl], [oh, ow]);
                string what = $"{isa} t={t} m={m} ch={ch} in={h}x{w} k={kh}x{kw} d={dh},{dw} pads={pt},{pl} out={oh}x{ow}";
                foreach (int threads in new[] { 1, 2 })
                {
                    var y = Enumerable.Repeat(float.NaN, 3 + m * n).ToArray();
                    var padded = new float[Math.Max(1, DirectConv.PaddedSize(gemm, g))];
                    Array.Fill(padded, float.NaN);
                    DirectConv.Run(GemmTestUtil.Context(threads), gemm, g, x, xOffset, padded, m, a, 0, hasBias ? paddedBias : null, 2, y, 3);
                    GemmTestUtil.AssertBitwiseEqual(expectedPacked, y, $"{what} threads={threads} vs packed");
                    GemmTestUtil.AssertClose(reference, y.AsSpan(3), $"{what} threads={threads} vs reference");
                    Assert.True(float.IsNaN(y[2]), $"{what}: wrote before its output");
                }
            }
        }
    }

    [Fact]
    public void Direct_path_is_chosen_for_the_det_and_rec_stride1_shapes()
    {
        var gemm = PackedGemm.Default;
        if (gemm.Isa == GemmIsa.Scalar) return;
        Assert.True(DirectConv.Applies(gemm, new Conv2DGeometry(96, 160, 160, 3, 3, 1, 1, 1, 1, 1, 1, 160, 160), 24));
        Assert.True(DirectConv.Applies(gemm, new Conv2DGeometry(16, 320, 320, 1, 1, 1, 1, 1, 1, 0, 0, 320, 320), 32));
        Assert.False(DirectConv.Applies(gemm, new Conv2DGeometry(480, 6, 80, 1, 1, 1, 1, 1, 1, 0, 0, 6, 80), 480));
        Assert.False(DirectConv.Applies(gemm, new Conv2DGeometry(3, 640, 640, 3, 3, 2, 2, 1, 1, 1, 1, 320, 320), 16));
        Assert.False(DirectConv.Applies(gemm, new Conv2DGeometry(96, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1), 24));
    }

    /// <summary>Subnormal weights act as zeros on every path (constant and runtime weights, GEMM and depthwise).</summary>
    [Fact]
    public void Subnormal_weights_act_as_zero()
    {
        var rng = new Random(5);
        foreach (var (c, m, group, k, inSize) in new[] { (24, 12, 1, 1, 5), (8, 6, 1, 3, 9), (16, 8, 1, 3, 20), (6, 6, 6, 3, 40), (40, 16, 1, 1, 1) })
        {
            var x = GemmTestUtil.RandomTensor(rng, 1, c, inSize, inSize);
            var wData = GemmTestUtil.Random(rng, m * (c / group) * k * k);
            var zeroed = (float[])wData.Clone();
            for (int i = 0; i < wData.Length; i += 3)
            {
                wData[i] = (i % 2 == 0 ? 1 : -1) * 1e-39f * (1 + i % 5);
                zeroed[i] = 0f;
            }
            Assert.True(float.IsSubnormal(wData[0]));
            var attrs = new[] { AttributeValue.Of("group", (long)group), AttributeValue.Of("pads", new long[] { k / 2, k / 2, k / 2, k / 2 }) };
            var expected = GemmTestUtil.RunNode("Conv", attrs, [x, Tensor.From(zeroed, m, c / group, k, k)], new HashSet<int> { 1 });
            var constant = GemmTestUtil.RunNode("Conv", attrs, [x, Tensor.From(wData, m, c / group, k, k)], new HashSet<int> { 1 });
            GemmTestUtil.AssertBitwiseEqual(expected.ReadOnlySpan<float>(), constant.ReadOnlySpan<float>(), $"constant c={c} group={group} k={k}");
            if (group == 1)
            {
                var runtime = GemmTestUtil.RunNode("Conv", attrs, [x, Tensor.From(wData, m, c / group, k, k)]);
                GemmTestUtil.AssertBitwiseEqual(expected.ReadOnlySpan<float>(), runtime.ReadOnlySpan<float>(), $"runtime c={c} k={k}");
            }
        }
    }

    [Fact]
    public void Channel_mismatch_names_the_problem()
    {
        var rng = new Random(1);
        var e = Assert.Throws<EngineException>(() => GemmTestUtil.RunNode("Conv", [],
            [GemmTestUtil.RandomTensor(rng, 1, 5, 4, 4), GemmTestUtil.RandomTensor(rng, 2, 4, 1, 1), null]));
        Assert.Contains("5 channels but the weights expect 4", e.Message);
    }

    [Fact]
    public void Det_like_layers_match_onnx_runtime()
    {
        // Fixture (opset 13, biases everywhere): Conv 3->16 3x3 s2 p1, depthwise 16 5x5 p2, pointwise 16->32, dense 32->24 3x3 p1,
        // ConvTranspose 24->8 2x2 s2; outputs the depthwise result and the final one.
        var model = Path.Combine(TestAssets.RepoRoot, "tests", "Quant.Engine.Tests", "Fixtures", "conv_det_like.onnx");
        var rng = new Random(21);
        var x = GemmTestUtil.RandomTensor(rng, 1, 3, 64, 96);
        var ort = OrtOracle.Run(TestAssets.Require(model), new Dictionary<string, Tensor> { ["x"] = x });
        foreach (int threads in new[] { 1, 2 })
        {
            var session = new InferenceSession(OnnxModelReader.Load(model), new SessionOptions { Threads = threads });
            var ours = session.Run(new Dictionary<string, Tensor> { ["x"] = x });
            foreach (var (name, expected) in ort.Outputs)
                TensorAssert.Close(expected, ours[name], 1e-4, 1e-4, $"{name} threads={threads}");
        }
    }
}
