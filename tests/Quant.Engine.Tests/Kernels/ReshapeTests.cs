using Quant.Onnx;
using Quant.TestSupport;
using static Quant.Engine.Tests.Kernels.ShapeKernelHarness;

namespace Quant.Engine.Tests.Kernels;

public class ReshapeTests
{
    [Theory]
    [InlineData(new[] { 2, 3, 4 }, new long[] { 4, 0, -1 }, 0, new[] { 4, 3, 2 })]
    [InlineData(new[] { 2, 3, 4 }, new long[] { 0, -1 }, 0, new[] { 2, 12 })]
    [InlineData(new[] { 2, 3, 4 }, new long[] { -1 }, 0, new[] { 24 })]
    [InlineData(new[] { 2, 3, 4 }, new long[] { 0, 0, 0 }, 0, new[] { 2, 3, 4 })]
    [InlineData(new[] { 1, 120, 1, 40 }, new long[] { 1, 120, -1 }, 0, new[] { 1, 120, 40 })]
    [InlineData(new[] { 0, 3, 4 }, new long[] { 3, 4, 0 }, 1, new[] { 3, 4, 0 })]
    [InlineData(new[] { 2, 3 }, new long[] { 6, 1, 1 }, 1, new[] { 6, 1, 1 })]
    public void Zero_and_minus_one_resolve(int[] inShape, long[] target, long allowZero, int[] expected)
    {
        foreach (var type in new[] { ElementType.Float, ElementType.String, ElementType.Int64 })
        {
            var x = Indexed(type, inShape);
            var y = Run1("Reshape", 14, [AttributeValue.Of("allowzero", allowZero)], x, Longs(target));
            Assert.Equal(expected, y.Shape);
            Equal(Gathered(x, expected, Enumerable.Range(0, x.Length).ToArray()), y, $"{type} {Fmt(inShape)} -> {Fmt(target)}");
        }
    }

    [Fact]
    public void Mismatch_is_an_engine_exception_naming_node_and_shapes()
    {
        var x = Indexed(ElementType.Float, [1, 3, 4]);
        var e = Assert.Throws<EngineException>(() => Run1("Reshape", 13, null, x, Longs(5, -1)));
        Assert.Contains($"node '{NodeName}' (Reshape)", e.Message);
        Assert.Contains("cannot reshape [1,3,4] (12 elements) to [5,-1]", e.Message);
        e = Assert.Throws<EngineException>(() => Run1("Reshape", 13, null, x, Longs(5, 3)));
        Assert.Contains("cannot reshape [1,3,4] (12 elements) to [5,3]", e.Message);
        e = Assert.Throws<EngineException>(() => Run1("Reshape", 13, null, x, Longs(-1, -1)));
        Assert.Contains("more than one -1", e.Message);
        // As in ONNX Runtime, -1 cannot be inferred next to a zero-sized dimension.
        e = Assert.Throws<EngineException>(() => Run1("Reshape", 13, null, Indexed(ElementType.Float, [0, 3]), Longs(0, -1)));
        Assert.Contains("cannot reshape [0,3] (0 elements) to [0,-1]", e.Message);
        e = Assert.Throws<EngineException>(() => Run1("Reshape", 13, null, x, Longs(0, 0, 0, 0)));
        Assert.Contains("rank 3", e.Message);
        // allowzero=1 makes 0 literal, so [0,-1] cannot hold 12 elements.
        e = Assert.Throws<EngineException>(() => Run1("Reshape", 14, [AttributeValue.Of("allowzero", 1L)], x, Longs(0, -1)));
        Assert.Contains("cannot reshape", e.Message);
    }

    [Fact]
    public void Opset1_attribute_shape()
    {
        var x = Indexed(ElementType.Float, [2, 6]);
        var y = Run1("Reshape", 1, [AttributeValue.Of("shape", new long[] { 3, -1 })], x);
        Assert.Equal([3, 4], y.Shape);
    }

    [Theory]
    [InlineData(0, new[] { 1, 120 })]
    [InlineData(1, new[] { 2, 60 })]
    [InlineData(2, new[] { 6, 20 })]
    [InlineData(4, new[] { 120, 1 })]
    [InlineData(-1, new[] { 24, 5 })]
    [InlineData(-4, new[] { 1, 120 })]
    public void Flatten_axis(long axis, int[] expected)
    {
        var x = Indexed(ElementType.Int16, [2, 3, 4, 5]);
        var y = Run1("Flatten", 13, [AttributeValue.Of("axis", axis)], x);
        Assert.Equal(expected, y.Shape);
        Equal(Gathered(x, expected, Enumerable.Range(0, 120).ToArray()), y, "flatten");
        Assert.Throws<EngineException>(() => Run1("Flatten", 13, [AttributeValue.Of("axis", 5L)], x));
    }

    [Fact]
    public void Squeeze_and_unsqueeze_in_attribute_and_input_forms()
    {
        var x = Indexed(ElementType.Float, [1, 3, 1, 4]);
        Assert.Equal([3, 4], Run1("Squeeze", 9, null, x).Shape);
        Assert.Equal([3, 1, 4], Run1("Squeeze", 9, [AttributeValue.Of("axes", new long[] { 0 })], x).Shape);
        Assert.Equal([1, 3, 4], Run1("Squeeze", 11, [AttributeValue.Of("axes", new long[] { -2 })], x).Shape);
        Assert.Equal([3, 4], Run1("Squeeze", 13, null, x, Longs(2, 0)).Shape);
        Assert.Equal([3, 4], Run1("Squeeze", 13, null, x).Shape);
        var e = Assert.Throws<EngineException>(() => Run1("Squeeze", 13, null, x, Longs(1)));
        Assert.Contains("size is 3", e.Message);

        var v = Indexed(ElementType.String, [3, 4]);
        Assert.Equal([1, 3, 4, 1], Run1("Unsqueeze", 9, [AttributeValue.Of("axes", new long[] { 0, 3 })], v).Shape);
        Assert.Equal([1, 3, 4, 1], Run1("Unsqueeze", 11, [AttributeValue.Of("axes", new long[] { 0, -1 })], v).Shape);
        var u = Run1("Unsqueeze", 13, null, v, Longs(3, 1, -1));
        Assert.Equal([3, 1, 4, 1, 1], u.Shape);
        Equal(Gathered(v, u.Shape, Enumerable.Range(0, 12).ToArray()), u, "unsqueeze strings");
        e = Assert.Throws<EngineException>(() => Run1("Unsqueeze", 13, null, v, Longs(0, -4)));
        Assert.Contains("twice", e.Message);
    }

    /// <summary>
    /// The rec model's attention bookkeeping (opset 9): Shape, Cast to int32, attribute Slice, Concat of casts,
    /// Reshape with 0 and -1, 5-d Transpose, Slice+Squeeze of q/k/v, checked against ONNX Runtime for two widths.
    /// </summary>
    [Theory]
    [InlineData(40)]
    [InlineData(7)]
    public void Rec_shape_chain_fixture_matches_onnx_runtime(int width)
    {
        var path = Path.Combine(TestAssets.RepoRoot, "tests", "Quant.Engine.Tests", "Fixtures", "shape_rec_chain_opset9.onnx");
        var rng = new Random(width);
        var data = new float[120 * width];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
        var feeds = new Dictionary<string, Tensor> { ["x"] = Tensor.From(data, 1, 120, 1, width) };
        var expected = OrtOracle.Run(path, feeds).Outputs;
        foreach (int threads in new[] { 1, 2 })
        {
            var actual = new InferenceSession(OnnxModelReader.Load(path), new SessionOptions { Threads = threads }).Run(feeds);
            foreach (var (name, e) in expected) Equal(e, actual[name], $"width {width} threads {threads} output '{name}'");
        }
    }
}
