using Quant.Onnx;
using Quant.TestSupport;
using static Quant.Engine.Tests.Kernels.ShapeKernelHarness;

namespace Quant.Engine.Tests.Kernels;

public class SliceTests
{
    /// <summary>
    /// Python's slice(start, stop, step).indices(d), except where the ONNX spec (and ONNX Runtime) differ:
    /// with a negative step a start still below 0 after adding d clamps to 0, not -1 (so it selects element 0).
    /// </summary>
    private static List<int> PythonIndices(long start, long stop, long step, int d)
    {
        long Adjust(long v, bool isStart)
        {
            if (v < 0) { v += d; if (v < 0) v = step < 0 && !isStart ? -1 : 0; }
            else if (v >= d) v = step < 0 ? d - 1 : d;
            return v;
        }
        long b = Adjust(start, true), e = Adjust(stop, false);
        var list = new List<int>();
        if (d == 0) return list;
        // 128-bit so that huge steps cannot wrap around.
        if (step > 0) for (Int128 i = b; i < e; i += step) list.Add((int)i);
        else for (Int128 i = b; i > e; i += step) list.Add((int)i);
        return list;
    }

    private static (int[] Shape, int[] Map) Reference(int[] shape, long[] starts, long[] ends, long[]? axes, long[]? steps)
    {
        int r = shape.Length;
        var picks = new List<int>[r];
        for (int k = 0; k < r; k++) picks[k] = Enumerable.Range(0, shape[k]).ToList();
        for (int i = 0; i < starts.Length; i++)
        {
            int a = (int)(axes is null ? i : axes[i] < 0 ? axes[i] + r : axes[i]);
            picks[a] = PythonIndices(starts[i], ends[i], steps?[i] ?? 1, shape[a]);
        }
        var outShape = picks.Select(p => p.Count).ToArray();
        var strides = Strides(shape);
        int n = Count(outShape);
        var map = new int[n];
        for (int i = 0; i < n; i++)
        {
            var o = Unravel(i, outShape);
            int src = 0;
            for (int k = 0; k < r; k++) src += picks[k][o[k]] * strides[k];
            map[i] = src;
        }
        return (outShape, map);
    }

    private static readonly long[] Bounds = [-12, -7, -3, -2, -1, 0, 1, 2, 3, 5, 7, 12, long.MinValue, long.MaxValue, int.MaxValue, int.MinValue];

    [Fact]
    public void Random_input_form_slices_match_python_semantics()
    {
        var rng = new Random(99);
        for (int c = 0; c < 400; c++)
        {
            int rank = rng.Next(1, 5);
            var shape = RandomShape(rng, rank, 7, allowZero: c % 20 == 0);
            int count = rng.Next(1, rank + 1);
            var axesList = Enumerable.Range(0, rank).OrderBy(_ => rng.Next()).Take(count).ToArray();
            bool giveAxes = c % 3 != 0;
            long[]? axes = giveAxes ? axesList.Select(a => rng.Next(2) == 0 ? (long)a : a - rank).ToArray() : null;
            if (!giveAxes) count = rng.Next(1, rank + 1);
            var starts = Enumerable.Range(0, count).Select(_ => Bounds[rng.Next(Bounds.Length)]).ToArray();
            var ends = Enumerable.Range(0, count).Select(_ => Bounds[rng.Next(Bounds.Length)]).ToArray();
            long[]? steps = c % 4 == 0 ? null : Enumerable.Range(0, count).Select(_ => (long)new[] { -3, -2, -1, 1, 2, 3, 9, -9, long.MaxValue, long.MinValue + 1 }[rng.Next(10)]).ToArray();
            var type = Types[c % Types.Length];
            var x = Indexed(type, shape);
            var (outShape, map) = Reference(shape, starts, ends, axes, steps);
            var inputs = new Tensor?[] { x, Longs(starts), Longs(ends), axes is null ? null : Longs(axes), steps is null ? null : Longs(steps) };
            var y = Run("Slice", 13, null, inputs, threads: c % 2 + 1)[0];
            Equal(Gathered(x, outShape, map), y,
                $"{type} {Fmt(shape)} starts {Fmt(starts)} ends {Fmt(ends)} axes {(axes is null ? "-" : Fmt(axes))} steps {(steps is null ? "-" : Fmt(steps))}");
        }
    }

    [Fact]
    public void One_dimensional_slices_of_every_length_and_tail()
    {
        for (int n = 0; n <= 67; n++)
        {
            var x = Indexed(ElementType.Float, [n]);
            foreach (var (b, e, s) in new (long, long, long)[] { (1, -1, 1), (0, long.MaxValue, 2), (-1, long.MinValue, -1), (n / 2, n, 1), (-2, 0, -3) })
            {
                var y = Run("Slice", 13, null, [x, Longs(b), Longs(e), null, Longs(s)])[0];
                var picks = PythonIndices(b, e, s, n);
                var expected = picks.Select(i => i * 0.5f + 1).ToArray();
                Assert.True(expected.SequenceEqual(y.Span<float>().ToArray()), $"n={n} slice({b},{e},{s}): [{string.Join(",", y.Span<float>().ToArray())}] != [{string.Join(",", expected)}]");
            }
        }
    }

    [Fact]
    public void Attribute_form_opset9_and_int32_inputs()
    {
        var x = Indexed(ElementType.Int64, [3, 6]);
        var y = Run1("Slice", 9, [AttributeValue.Of("starts", new long[] { 1, -4 }), AttributeValue.Of("ends", new long[] { 1000, -1 })], x);
        var (shape, map) = Reference([3, 6], [1, -4], [1000, -1], null, null);
        Equal(Gathered(x, shape, map), y, "opset 9 attributes");
        var z = Run("Slice", 13, null, [x, Tensor.From(new[] { 2 }, 1), Tensor.From(new[] { 0 }, 1), Tensor.From(new[] { 1 }, 1), Tensor.From(new[] { -1 }, 1)])[0];
        (shape, map) = Reference([3, 6], [2], [0], [1], [-1]);
        Equal(Gathered(x, shape, map), z, "int32 inputs");
    }

    [Fact]
    public void Zero_step_and_repeated_axis_are_errors()
    {
        var x = Indexed(ElementType.Float, [4, 4]);
        var e = Assert.Throws<EngineException>(() => Run("Slice", 13, null, [x, Longs(0), Longs(2), Longs(0), Longs(0)]));
        Assert.Contains("step", e.Message);
        Assert.Contains(NodeName, e.Message);
        e = Assert.Throws<EngineException>(() => Run("Slice", 13, null, [x, Longs(0, 0), Longs(2, 2), Longs(1, -1), null]));
        Assert.Contains("twice", e.Message);
    }

    /// <summary>
    /// Attribute forms as the PaddleOCR exports use them (Slice-1, Squeeze-1/11, Unsqueeze-1/11, Pad-2,
    /// Split-2, Gather, Flatten, Cast, Concat), checked against ONNX Runtime.
    /// </summary>
    [Theory]
    [InlineData("shape_attr_forms_opset9.onnx")]
    [InlineData("shape_attr_forms_opset11.onnx")]
    public void Attribute_form_fixture_matches_onnx_runtime(string fixture)
    {
        var path = Path.Combine(TestAssets.RepoRoot, "tests", "Quant.Engine.Tests", "Fixtures", fixture);
        var rng = new Random(5);
        var data = new float[2 * 3 * 4 * 5];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 24 - 12);
        data[3] = 0f;
        var feeds = new Dictionary<string, Tensor> { ["x"] = Tensor.From(data, 2, 3, 4, 5) };
        var expected = OrtOracle.Run(path, feeds).Outputs;
        var session = new InferenceSession(OnnxModelReader.Load(path), new SessionOptions { Threads = 1 });
        var actual = session.Run(feeds);
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, e) in expected) Equal(e, actual[name], $"{fixture} output '{name}'");
    }
}
