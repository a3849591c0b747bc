using System.Diagnostics;
using Quant.Engine;
using Quant.Engine.Kernels;
using Quant.Onnx;
using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Engine.Tests.Kernels;

/// <summary>Runs one node through the registered kernel, as the session would, without building a model.</summary>
internal static class PoolResizeNode
{
    public static Tensor?[] Run(string op, int opset, Tensor?[] inputs, int outputs = 1, Action<Node>? attrs = null, bool constants = false, int threads = 2)
    {
        var node = new Node("n", op, "", inputs.Select((t, i) => t is null ? "" : $"in{i}"), Enumerable.Range(0, outputs).Select(i => $"out{i}"));
        attrs?.Invoke(node);
        var factory = KernelRegistry.Default.Find("", op, opset) ?? throw new InvalidOperationException($"{op} {opset} is not registered");
        var kernel = factory(new KernelSetup(node, opset, name => constants && name != "in0" ? inputs[int.Parse(name[2..])] : null));
        var outs = new Tensor?[outputs];
        kernel.Run(new KernelContext(node, inputs, outs, new BufferPool(), threads));
        return outs;
    }

    public static Tensor Random(Random rng, params int[] shape)
    {
        var data = new float[Tensor.ElementCount(shape)];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 4 - 2);
        return Tensor.From(data, shape);
    }
}

public class ResizeTests(ITestOutputHelper output)
{
    private static string Fixture(string file) => Path.Combine(TestAssets.RepoRoot, "tests", "Quant.Engine.Tests", "Fixtures", file);

    private static ResizeKernels.Attributes Attrs(ResizeKernels.Mode mode, ResizeKernels.Coord coord,
        ResizeKernels.Rounding rounding = ResizeKernels.Rounding.RoundPreferFloor, bool exclude = false, bool antialias = false) =>
        new(mode, coord, rounding, -0.75, exclude, 0, antialias, null, ResizeKernels.AspectPolicy.Stretch);

    private static Tensor Resize(Tensor x, int opset, Tensor? scales, long[]? sizes, Action<Node> attrs, Tensor? roi = null)
    {
        var sizesT = sizes is null ? null : Tensor.From(sizes, sizes.Length);
        return PoolResizeNode.Run("Resize", opset, [x, roi, scales, sizesT], attrs: attrs)[0]!;
    }

    [Fact]
    public void Width_gather_matches_scalar_reference_for_every_width_and_tail()
    {
        var rng = new Random(1234);
        var modes = new[] { ResizeKernels.Mode.Nearest, ResizeKernels.Mode.Linear, ResizeKernels.Mode.Cubic };
        var coords = new[] { ResizeKernels.Coord.HalfPixel, ResizeKernels.Coord.Asymmetric, ResizeKernels.Coord.AlignCorners, ResizeKernels.Coord.TfCropAndResize };
        int checkedOutputs = 0;
        for (int inW = 1; inW <= 67; inW++)
        {
            foreach (var mode in modes)
            {
                var coord = coords[rng.Next(coords.Length)];
                int outW = rng.Next(1, 68);
                double scale = (double)outW / inW;
                var t = ResizeKernels.BuildAxis(Attrs(mode, coord, exclude: rng.Next(2) == 0), inW, outW, scale, outW, 0.1, 1.2);
                var src = new float[inW];
                for (int i = 0; i < inW; i++) src[i] = (float)(rng.NextDouble() * 10 - 5);
                var fast = new float[outW];
                ResizeKernels.Horizontal(src, fast, t, -7f);
                for (int o = 0; o < outW; o++)
                {
                    float expected = t.Extrapolate?[o] == true ? -7f : ResizeKernels.HorizontalOne(src, t, o);
                    Assert.True(Math.Abs(expected - fast[o]) <= 1e-5f * (1 + Math.Abs(expected)), $"{mode} {coord} in {inW} out {outW} at {o}: {fast[o]} vs {expected}");
                    checkedOutputs++;
                }
            }
        }
        Assert.True(checkedOutputs > 1000);
    }

    /// <summary>Independent double-precision evaluation of the separable sum from the per-axis tables.</summary>
    private static float[] Reference(float[] x, int[] shape, ResizeKernels.AxisTable[] tables, float extrapolation)
    {
        int rank = shape.Length;
        var outShape = tables.Select(t => t.Out).ToArray();
        var y = new float[Tensor.ElementCount(outShape)];
        var o = new int[rank];
        var k = new int[rank];
        var inStride = new int[rank];
        for (int d = rank - 1, s = 1; d >= 0; d--) { inStride[d] = s; s *= shape[d]; }
        for (int flat = 0; flat < y.Length; flat++)
        {
            bool outside = false;
            for (int d = 0; d < rank; d++) if (tables[d].Extrapolate?[o[d]] == true) outside = true;
            double acc = 0;
            if (!outside)
            {
                Array.Clear(k);
                while (true)
                {
                    double w = 1; int off = 0;
                    for (int d = 0; d < rank; d++)
                    {
                        var t = tables[d];
                        w *= t.Weight[k[d] * t.Out + o[d]];
                        off += t.Index[k[d] * t.Out + o[d]] * inStride[d];
                    }
                    if (w != 0) acc += w * x[off];
                    int dd = rank - 1;
                    while (dd >= 0 && ++k[dd] == tables[dd].Taps) { k[dd] = 0; dd--; }
                    if (dd < 0) break;
                }
            }
            y[flat] = outside ? extrapolation : (float)acc;
            for (int d = rank - 1; d >= 0 && ++o[d] == outShape[d]; d--) o[d] = 0;
        }
        return y;
    }

    [Theory]
    [InlineData(0, 11)]
    [InlineData(1, 12)]
    [InlineData(2, 13)]
    public void Plane_and_axis_passes_match_scalar_reference(int modeIndex, int seed)
    {
        var mode = (ResizeKernels.Mode)modeIndex;
        var rng = new Random(seed);
        var coords = Enum.GetValues<ResizeKernels.Coord>();
        for (int w = 1; w <= 67; w += rng.Next(1, 4))
        {
            // Fused plane path: only the last two axes change.
            int h = rng.Next(1, 9);
            int[] shape = [2, 3, h, w];
            int oh = rng.Next(1, 12), ow = rng.Next(1, 70);
            var coord = coords[rng.Next(coords.Length)];
            var a = Attrs(mode, coord, (ResizeKernels.Rounding)rng.Next(4), exclude: rng.Next(3) == 0, antialias: rng.Next(3) == 0);
            var tables = new[]
            {
                ResizeKernels.BuildAxis(a, 2, 2, 1, 2, 0, 1), ResizeKernels.BuildAxis(a, 3, 3, 1, 3, 0, 1),
                ResizeKernels.BuildAxis(a, h, oh, (double)oh / h, oh, 0.2, 0.9), ResizeKernels.BuildAxis(a, w, ow, (double)ow / w, ow, -0.1, 1.1),
            };
            var x = PoolResizeNode.Random(rng, shape);
            var xs = (float[])x.Buffer;
            var y = new float[2 * 3 * oh * ow];
            ResizeKernels.ResizeFloat(null, xs, shape, y, tables, 2.5f);
            AssertClose(Reference(xs, shape, tables, 2.5f), y, $"{mode} {coord} plane {h}x{w} -> {oh}x{ow}");

            // General path: a leading axis changes too, so every axis runs as its own pass.
            int[] shape5 = [2, 3, 2, h, w];
            int od = rng.Next(1, 4);
            var t5 = new[]
            {
                ResizeKernels.BuildAxis(a, 2, 2, 1, 2, 0, 1), ResizeKernels.BuildAxis(a, 3, od, (double)od / 3, od, 0, 1),
                ResizeKernels.BuildAxis(a, 2, 3, 1.5, 3, 0, 1), tables[2], tables[3],
            };
            var x5 = (float[])PoolResizeNode.Random(rng, shape5).Buffer;
            var y5 = new float[2 * od * 3 * oh * ow];
            ResizeKernels.ResizeFloat(null, x5, shape5, y5, t5, 2.5f);
            AssertClose(Reference(x5, shape5, t5, 2.5f), y5, $"{mode} {coord} 5-D {h}x{w}");
        }
    }

    private static void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5f * (1 + Math.Abs(expected[i])), $"{what}: at {i} {actual[i]} vs {expected[i]}");
    }

    [Fact]
    public void Det_fpn_resizes_and_global_average_pool_match_onnx_runtime()
    {
        var model = OnnxModelReader.Load(Fixture("resize_det_fpn.onnx"));
        var session = new InferenceSession(model, new SessionOptions { Threads = 2 });
        var rng = new Random(42);
        var feeds = model.Graph.RuntimeInputs.ToDictionary(i => i.Name, i => PoolResizeNode.Random(rng, i.Shape!.Select(d => (int)d.Value).ToArray()));
        var ours = session.Run(feeds);
        var ort = OrtOracle.Run(Fixture("resize_det_fpn.onnx"), feeds, threads: 2, repeat: 5, warmup: 1);
        foreach (var (name, expected) in ort.Outputs)
        {
            bool exact = name.StartsWith('u') || name.StartsWith('v');
            TensorAssert.Close(expected, ours[name], exact ? 0 : 1e-5, exact ? 0 : 1e-6, name);
        }
        var times = new List<double>();
        for (int i = 0; i < 6; i++)
        {
            var sw = Stopwatch.StartNew();
            session.Run(feeds);
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        output.WriteLine($"det FPN resizes + GAP (2 threads): engine median {times[3]:F2} ms min {times[0]:F2} ms; ONNX Runtime median {ort.MedianMs:F2} ms min {ort.MinMs:F2} ms");
    }

    [Fact]
    public void Mixed_resize_pool_and_batchnorm_fixture_matches_onnx_runtime()
    {
        var path = Fixture("resize_pool_mix.onnx");
        var model = OnnxModelReader.Load(path);
        var session = new InferenceSession(model, new SessionOptions { Threads = 2 });
        var rng = new Random(43);
        var feeds = new Dictionary<string, Tensor> { ["x"] = PoolResizeNode.Random(rng, 1, 5, 23, 35) };
        var ours = session.Run(feeds);
        var ort = OrtOracle.Run(path, feeds);
        Assert.Equal(model.Graph.Outputs.Count, ort.Outputs.Count);
        foreach (var (name, expected) in ort.Outputs)
            TensorAssert.Close(expected, ours[name], 1e-4, 1e-5, name);
    }

    [Fact]
    public void Legacy_upsample_and_resize10_use_floor_up_and_ceil_down()
    {
        var x = Tensor.From(Enumerable.Range(1, 6).Select(v => (float)v).ToArray(), 1, 1, 2, 3);
        var up = PoolResizeNode.Run("Upsample", 7, [x], attrs: n => n.Set(AttributeValue.Of("scales", new[] { 1f, 1f, 2f, 1.5f })))[0]!;
        Assert.Equal(new[] { 1, 1, 4, 4 }, up.Shape);
        Assert.Equal(new float[] { 1, 1, 2, 3, 1, 1, 2, 3, 4, 4, 5, 6, 4, 4, 5, 6 }, up.ReadOnlySpan<float>().ToArray());

        var down = PoolResizeNode.Run("Resize", 10, [x, Tensor.From(new[] { 1f, 1f, 0.5f, 0.6f }, 4)])[0]!;
        Assert.Equal(new[] { 1, 1, 1, 1 }, down.Shape);
        Assert.Equal(1f, down.ReadOnlySpan<float>()[0]);
        var down2 = PoolResizeNode.Run("Resize", 10, [Tensor.From(Enumerable.Range(0, 5).Select(v => (float)v).ToArray(), 1, 5), Tensor.From(new[] { 1f, 0.6f }, 2)])[0]!;
        // 5 * 0.6 = 3 outputs; c = o / 0.6 = 0, 1.67, 3.33 -> ceil when downsampling: 0, 2, 4
        Assert.Equal(new float[] { 0, 2, 4 }, down2.ReadOnlySpan<float>().ToArray());

        var lin = PoolResizeNode.Run("Upsample", 9, [Tensor.From(new[] { 0f, 4f }, 1, 2), Tensor.From(new[] { 1f, 2f }, 2)], attrs: n => n.Set(AttributeValue.Of("mode", "linear")))[0]!;
        Assert.Equal(new float[] { 0, 2, 4, 4 }, lin.ReadOnlySpan<float>().ToArray());
    }

    [Fact]
    public void Half_pixel_symmetric_matches_the_opset19_examples()
    {
        var x = Tensor.From(new[] { 1f, 2, 3, 4 }, 1, 1, 1, 4);
        var down = Resize(x, 19, Tensor.From(new[] { 1f, 1, 1, 0.6f }, 4), null, n =>
        {
            n.Set(AttributeValue.Of("mode", "linear"));
            n.Set(AttributeValue.Of("coordinate_transformation_mode", "half_pixel_symmetric"));
        });
        AssertClose([1.6666666f, 3.3333333f], down.ReadOnlySpan<float>().ToArray(), "downsample");

        var x2 = Tensor.From(new[] { 1f, 2, 3, 4 }, 1, 1, 2, 2);
        var up = Resize(x2, 19, Tensor.From(new[] { 1f, 1, 2.3f, 2.94f }, 4), null, n =>
        {
            n.Set(AttributeValue.Of("mode", "linear"));
            n.Set(AttributeValue.Of("coordinate_transformation_mode", "half_pixel_symmetric"));
        });
        Assert.Equal(new[] { 1, 1, 4, 5 }, up.Shape);
        var v = up.ReadOnlySpan<float>();
        Assert.Equal(1f, v[0], 5);
        Assert.Equal(1.1598639f, v[1], 5);
        Assert.Equal(1.5652174f, v[5], 5);
        Assert.Equal(4f, v[19], 5);
    }

    [Fact]
    public void Antialias_downsampling_widens_the_kernel()
    {
        var x = Tensor.From(Enumerable.Range(1, 16).Select(v => (float)v).ToArray(), 1, 1, 4, 4);
        var lin = Resize(x, 18, Tensor.From(new[] { 1f, 1, 0.6f, 0.6f }, 4), null, n =>
        {
            n.Set(AttributeValue.Of("mode", "linear"));
            n.Set(AttributeValue.Of("antialias", 1L));
        });
        AssertClose([2.875f, 4.5f, 9.375f, 11f], lin.ReadOnlySpan<float>().ToArray(), "linear antialias");
        // Without antialias only the two nearest taps count.
        var plain = Resize(x, 18, Tensor.From(new[] { 1f, 1, 0.6f, 0.6f }, 4), null, n => n.Set(AttributeValue.Of("mode", "linear")));
        AssertClose([2.6666667f, 4.3333335f, 9.333333f, 11f], plain.ReadOnlySpan<float>().ToArray(), "linear");
    }

    [Fact]
    public void Axes_and_keep_aspect_ratio_policy_choose_one_scale()
    {
        var x = Tensor.From(Enumerable.Range(0, 12).Select(v => (float)v).ToArray(), 1, 1, 3, 4);
        var notLarger = Resize(x, 18, null, [6, 6], n =>
        {
            n.Set(AttributeValue.Of("axes", new long[] { 2, 3 }));
            n.Set(AttributeValue.Of("keep_aspect_ratio_policy", "not_larger"));
        });
        Assert.Equal(new[] { 1, 1, 5, 6 }, notLarger.Shape); // scale min(6/3, 6/4) = 1.5 -> 4.5 rounds to 5, 6
        var notSmaller = Resize(x, 18, null, [6, 6], n =>
        {
            n.Set(AttributeValue.Of("axes", new long[] { -2, -1 }));
            n.Set(AttributeValue.Of("keep_aspect_ratio_policy", "not_smaller"));
        });
        Assert.Equal(new[] { 1, 1, 6, 8 }, notSmaller.Shape);
        var onlyW = Resize(x, 18, Tensor.From(new[] { 2f }, 1), null, n =>
        {
            n.Set(AttributeValue.Of("axes", new long[] { 3 }));
            n.Set(AttributeValue.Of("coordinate_transformation_mode", "asymmetric"));
        });
        Assert.Equal(new[] { 1, 1, 3, 8 }, onlyW.Shape);
        Assert.Equal(new float[] { 4, 4, 5, 5, 6, 6, 7, 7 }, onlyW.ReadOnlySpan<float>().Slice(8, 8).ToArray());
    }

    [Fact]
    public void Nearest_works_on_integer_types_and_extrapolates_with_crop()
    {
        var x = Tensor.From(new byte[] { 1, 2, 3, 4 }, 1, 1, 2, 2);
        var y = Resize(x, 13, Tensor.From(new[] { 1f, 1, 2, 2 }, 4), null, n =>
        {
            n.Set(AttributeValue.Of("coordinate_transformation_mode", "asymmetric"));
            n.Set(AttributeValue.Of("nearest_mode", "floor"));
        });
        Assert.Equal(new byte[] { 1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4 }, y.ReadOnlySpan<byte>().ToArray());

        var xi = Tensor.From(new sbyte[] { -1, 2, -3, 4 }, 1, 4);
        var crop = Resize(xi, 13, null, [1, 3], n =>
        {
            n.Set(AttributeValue.Of("coordinate_transformation_mode", "tf_crop_and_resize"));
            n.Set(AttributeValue.Of("extrapolation_value", 9f));
        }, roi: Tensor.From(new[] { 0f, 0.5f, 1f, 1.5f }, 4));
        // c = 1.5 + o * 1.5: 1.5 -> 2 (round_prefer_floor: 1), 3, 4.5 (outside)
        Assert.Equal(new sbyte[] { 2, 4, 9 }, crop.ReadOnlySpan<sbyte>().ToArray());

        var ex = Assert.Throws<EngineException>(() => Resize(xi, 13, Tensor.From(new[] { 1f, 2f }, 2), null, n => n.Set(AttributeValue.Of("mode", "linear"))));
        Assert.Contains("float only", ex.Message);
    }

    [Fact]
    public void Bad_scales_and_sizes_are_reported()
    {
        var x = Tensor.From(new float[4], 1, 1, 2, 2);
        var e1 = Assert.Throws<EngineException>(() => Resize(x, 13, Tensor.From(new[] { 1f, 2f }, 2), null, _ => { }));
        Assert.Contains("scales has 2 values but 4 axes", e1.Message);
        var e2 = Assert.Throws<EngineException>(() => Resize(x, 13, null, null, _ => { }));
        Assert.Contains("either scales or sizes", e2.Message);
        var e3 = Assert.Throws<EngineException>(() => PoolResizeNode.Run("Resize", 13, [x, null, Tensor.From(new[] { 1f, 1, 2, 2 }, 4)],
            attrs: n => n.Set(AttributeValue.Of("mode", "bicubic"))));
        Assert.Contains("mode 'bicubic'", e3.Message);
    }
}
