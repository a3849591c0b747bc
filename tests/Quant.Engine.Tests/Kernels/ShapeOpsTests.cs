using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Engine.Tests.Kernels;

/// <summary>Runs one node in a fresh session; builds typed test tensors and index-map references.</summary>
internal static class ShapeKernelHarness
{
    public const string NodeName = "test_node";

    public static Tensor[] Run(string op, long opset, IEnumerable<AttributeValue>? attrs, Tensor?[] inputs, int outputs = 1, int threads = 1)
    {
        var g = new Graph { Name = "g" };
        var inNames = new List<string>();
        var feeds = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int i = 0; i < inputs.Length; i++)
        {
            if (inputs[i] is not { } t) { inNames.Add(""); continue; }
            var name = $"in{i}";
            inNames.Add(name);
            g.Inputs.Add(new ValueInfo(name, t.Type, null));
            feeds[name] = t;
        }
        var outNames = Enumerable.Range(0, outputs).Select(k => $"out{k}").ToList();
        var node = new Node(NodeName, op, "", inNames, outNames);
        foreach (var a in attrs ?? []) node.Set(a);
        g.Nodes.Add(node);
        foreach (var o in outNames) g.Outputs.Add(new ValueInfo(o, ElementType.Undefined, null));
        var model = new OnnxModel(g);
        model.Opsets[""] = opset;
        var session = new InferenceSession(model, new SessionOptions { Threads = threads });
        var result = session.Run(feeds);
        return outNames.Select(o => result[o]).ToArray();
    }

    public static Tensor Run1(string op, long opset, IEnumerable<AttributeValue>? attrs, params Tensor?[] inputs) => Run(op, opset, attrs, inputs)[0];

    public static Tensor Longs(params long[] v) => Tensor.From(v, v.Length);

    /// <summary>Types covering every element width plus bool and string.</summary>
    public static readonly ElementType[] Types =
        [ElementType.Float, ElementType.Int64, ElementType.UInt8, ElementType.Float16, ElementType.Bool, ElementType.String, ElementType.Int16, ElementType.Double];

    /// <summary>A tensor whose element i is a value derived from i (distinct where the type allows).</summary>
    public static Tensor Indexed(ElementType type, int[] shape)
    {
        var t = Tensor.Zeros(type, shape);
        int n = t.Length;
        switch (type)
        {
            case ElementType.Float: { var s = t.Span<float>(); for (int i = 0; i < n; i++) s[i] = i * 0.5f + 1; break; }
            case ElementType.Double: { var s = t.Span<double>(); for (int i = 0; i < n; i++) s[i] = i * 0.25 - 3; break; }
            case ElementType.Int64: { var s = t.Span<long>(); for (int i = 0; i < n; i++) s[i] = i * 7L - 3 + (1L << 40); break; }
            case ElementType.Int16: { var s = t.Span<short>(); for (int i = 0; i < n; i++) s[i] = (short)(i * 3 - 100); break; }
            case ElementType.UInt8: { var s = t.Span<byte>(); for (int i = 0; i < n; i++) s[i] = (byte)(i * 31 + 1); break; }
            case ElementType.Float16: { var s = t.Span<Half>(); for (int i = 0; i < n; i++) s[i] = (Half)(i % 2000 - 7); break; }
            case ElementType.Bool: { var s = t.Span<bool>(); for (int i = 0; i < n; i++) s[i] = i % 3 == 1; break; }
            case ElementType.String: { var s = t.Strings(); for (int i = 0; i < n; i++) s[i] = $"s{i}"; break; }
            default: throw new NotSupportedException(type.ToString());
        }
        return t;
    }

    /// <summary>y[i] = x[map[i]], or the zero value (0, false, "") where map[i] is -1.</summary>
    public static Tensor Gathered(Tensor x, int[] shape, int[] map)
    {
        var y = Tensor.Zeros(x.Type, shape);
        for (int i = 0; i < map.Length; i++)
            if (map[i] >= 0) Array.Copy(x.Buffer, map[i], y.Buffer, i, 1);
        return y;
    }

    public static void Equal(Tensor expected, Tensor actual, string what) => TensorAssert.Close(expected, actual, 0, 0, what);

    public static int[] Strides(int[] shape)
    {
        var s = new int[shape.Length];
        int acc = 1;
        for (int i = shape.Length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]; }
        return s;
    }

    public static int Count(int[] shape) => shape.Aggregate(1, (p, d) => p * d);

    /// <summary>Multi-index of flat position <paramref name="flat"/> in <paramref name="shape"/>.</summary>
    public static int[] Unravel(int flat, int[] shape)
    {
        var idx = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--) { idx[d] = flat % shape[d]; flat /= shape[d]; }
        return idx;
    }

    public static int[] RandomShape(Random rng, int rank, int maxDim, bool allowZero = false)
    {
        var s = new int[rank];
        for (int i = 0; i < rank; i++) s[i] = rng.Next(allowZero ? 0 : 1, maxDim + 1);
        return s;
    }

    public static string Fmt(IEnumerable<int> s) => "[" + string.Join(",", s) + "]";
    public static string Fmt(IEnumerable<long> s) => "[" + string.Join(",", s) + "]";
}

public class ShapeOpsTests
{
    private static Tensor Run(string op, long opset, IEnumerable<AttributeValue>? attrs, params Tensor?[] inputs) => ShapeKernelHarness.Run1(op, opset, attrs, inputs);

    [Theory]
    [InlineData(0, null)]
    [InlineData(1, null)]
    [InlineData(-1, null)]
    [InlineData(-10, null)]
    [InlineData(10, null)]
    [InlineData(0, 2)]
    [InlineData(1, -1)]
    [InlineData(2, 1)]
    [InlineData(-3, 100)]
    [InlineData(0, -100)]
    public void Shape_start_end_follow_python_slicing(int start, int? end)
    {
        int[] dims = [2, 3, 4, 5];
        var x = Tensor.Zeros(ElementType.Float, dims);
        var attrs = new List<AttributeValue> { AttributeValue.Of("start", (long)start) };
        if (end is { } e) attrs.Add(AttributeValue.Of("end", (long)e));
        var y = Run("Shape", 15, attrs, x);
        // Python list slicing is the reference semantics for Shape-15.
        int r = dims.Length;
        long s = start < 0 ? Math.Max(0, start + r) : Math.Min(start, r);
        long en = end is null ? r : end < 0 ? Math.Max(0, end.Value + r) : Math.Min(end.Value, r);
        var expected = dims.Skip((int)s).Take((int)Math.Max(0, en - s)).Select(d => (long)d).ToArray();
        Assert.Equal(ElementType.Int64, y.Type);
        Assert.Equal(expected, y.Span<long>().ToArray());
    }

    [Fact]
    public void Shape_opset1_ignores_nothing_and_reports_full_shape_even_for_empty_and_scalar()
    {
        Assert.Equal([3L, 0L, 2L], Run("Shape", 9, null, Tensor.Zeros(ElementType.String, [3, 0, 2])).Span<long>().ToArray());
        var scalar = Run("Shape", 9, null, Tensor.From(new[] { 1.0f }));
        Assert.Equal([0], scalar.Shape);
    }

    [Fact]
    public void Size_is_element_count_scalar()
    {
        var y = Run("Size", 13, null, Tensor.Zeros(ElementType.UInt8, [3, 5, 7]));
        Assert.Empty(y.Shape);
        Assert.Equal(105L, y.Span<long>()[0]);
        Assert.Equal(0L, Run("Size", 13, null, Tensor.Zeros(ElementType.Float, [3, 0])).Span<long>()[0]);
    }

    [Fact]
    public void ConstantOfShape_uses_value_type_and_default_float_zero()
    {
        var y = Run("ConstantOfShape", 9, null, ShapeKernelHarness.Longs(2, 3));
        Assert.Equal(ElementType.Float, y.Type);
        Assert.Equal([2, 3], y.Shape);
        Assert.All(y.Span<float>().ToArray(), v => Assert.Equal(0f, v));

        foreach (var n in new[] { 0, 1, 3, 8, 17, 67 })
        {
            var v = Run("ConstantOfShape", 9, [AttributeValue.Of("value", TensorData.From("v", ElementType.Int32, [1], new[] { -7 }))], ShapeKernelHarness.Longs(n));
            Assert.Equal(ElementType.Int32, v.Type);
            Assert.Equal(Enumerable.Repeat(-7, n), v.Span<int>().ToArray());
        }
        var h = Run("ConstantOfShape", 9, [AttributeValue.Of("value", TensorData.From("v", ElementType.Float16, [1], new[] { (Half)1.5 }))], ShapeKernelHarness.Longs(5));
        Assert.All(h.Span<Half>().ToArray(), v => Assert.Equal((Half)1.5, v));
        var scalar = Run("ConstantOfShape", 9, [AttributeValue.Of("value", TensorData.From("v", ElementType.Double, [1], new[] { 2.5 }))], Tensor.From(Array.Empty<long>(), 0));
        Assert.Empty(scalar.Shape);
        Assert.Equal(2.5, scalar.Span<double>()[0]);
    }

    [Fact]
    public void ConstantOfShape_rejects_negative_dims()
    {
        var e = Assert.Throws<EngineException>(() => Run("ConstantOfShape", 9, null, ShapeKernelHarness.Longs(2, -1)));
        Assert.Contains(ShapeKernelHarness.NodeName, e.Message);
    }

    [Theory]
    [InlineData(1.0, 5.0, 2.0)]
    [InlineData(10.0, 6.0, -3.0)]
    [InlineData(0.0, 1.0, 0.1)]
    [InlineData(5.0, 1.0, 1.0)]
    [InlineData(-2.5, 2.5, 0.5)]
    public void Range_float_matches_arange(double start, double limit, double delta)
    {
        var y = Run("Range", 11, null, Tensor.From(new[] { (float)start }), Tensor.From(new[] { (float)limit }), Tensor.From(new[] { (float)delta }));
        int n = (int)Math.Max(0, Math.Ceiling(((float)limit - (float)start) / (double)(float)delta));
        Assert.Equal([n], y.Shape);
        var v = y.Span<float>().ToArray();
        for (int i = 0; i < n; i++) Assert.Equal((float)((float)start + i * (double)(float)delta), v[i]);
    }

    [Theory]
    [InlineData(10L, 4L, -3L, new long[] { 10, 7 })]
    [InlineData(0L, 7L, 3L, new long[] { 0, 3, 6 })]
    [InlineData(0L, 6L, 3L, new long[] { 0, 3 })]
    [InlineData(3L, 3L, 1L, new long[0])]
    [InlineData(3L, 9L, -1L, new long[0])]
    [InlineData(long.MaxValue - 2, long.MaxValue, 1L, new long[] { long.MaxValue - 2, long.MaxValue - 1 })]
    public void Range_int64_is_exact(long start, long limit, long delta, long[] expected)
    {
        var y = Run("Range", 11, null, Tensor.From(new[] { start }), Tensor.From(new[] { limit }), Tensor.From(new[] { delta }));
        Assert.Equal(expected, y.Span<long>().ToArray());
    }

    [Fact]
    public void Range_int32_and_zero_delta()
    {
        var y = Run("Range", 11, null, Tensor.From(new[] { 10 }), Tensor.From(new[] { -5 }), Tensor.From(new[] { -4 }));
        Assert.Equal([10, 6, 2, -2], y.Span<int>().ToArray());
        var e = Assert.Throws<EngineException>(() => Run("Range", 11, null, Tensor.From(new[] { 1 }), Tensor.From(new[] { 5 }), Tensor.From(new[] { 0 })));
        Assert.Contains("delta", e.Message);
    }
}
