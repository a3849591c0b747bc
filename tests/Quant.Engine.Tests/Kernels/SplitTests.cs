using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.ShapeKernelHarness;

namespace Quant.Engine.Tests.Kernels;

public class SplitTests
{
    private static Tensor Part(Tensor x, int axis, int begin, int size)
    {
        var shape = (int[])x.Shape.Clone();
        shape[axis] = size;
        int n = Count(shape);
        var map = new int[n];
        var st = Strides(x.Shape);
        for (int i = 0; i < n; i++)
        {
            var o = Unravel(i, shape);
            o[axis] += begin;
            map[i] = o.Select((v, k) => v * st[k]).Sum();
        }
        return Gathered(x, shape, map);
    }

    private static void Check(Tensor x, int axis, int[] sizes, Tensor[] outputs, string what)
    {
        Assert.Equal(sizes.Length, outputs.Length);
        for (int i = 0, at = 0; i < sizes.Length; at += sizes[i], i++)
            Equal(Part(x, axis, at, sizes[i]), outputs[i], $"{what} part {i}");
    }

    [Fact]
    public void Random_split_input_form_matches_reference()
    {
        var rng = new Random(11);
        for (int c = 0; c < 200; c++)
        {
            int rank = rng.Next(1, 5);
            var shape = RandomShape(rng, rank, 6);
            int axis = rng.Next(rank);
            int parts = rng.Next(1, 5);
            var sizes = new int[parts];
            for (int i = 0; i < parts; i++) sizes[i] = rng.Next(0, 4);
            shape[axis] = sizes.Sum();
            var type = Types[c % Types.Length];
            var x = Indexed(type, shape);
            long attrAxis = rng.Next(2) == 0 ? axis : axis - rank;
            var outs = Run("Split", 13, [AttributeValue.Of("axis", attrAxis)], [x, Longs(sizes.Select(v => (long)v).ToArray())], parts, threads: c % 2 + 1);
            Check(x, axis, sizes, outs, $"{type} {Fmt(shape)} axis {attrAxis} split {Fmt(sizes)}");
        }
    }

    [Fact]
    public void Attribute_form_and_equal_parts()
    {
        var x = Indexed(ElementType.Float, [2, 6, 5]);
        Check(x, 1, [1, 3, 2], Run("Split", 11, [AttributeValue.Of("axis", -2L), AttributeValue.Of("split", new long[] { 1, 3, 2 })], [x], 3), "attribute");
        Check(x, 1, [2, 2, 2], Run("Split", 2, [AttributeValue.Of("axis", 1L)], [x], 3), "equal opset 2");
        Check(x, 0, [1, 1], Run("Split", 13, null, [x], 2), "equal opset 13 default axis");
        var e = Assert.Throws<EngineException>(() => Run("Split", 13, [AttributeValue.Of("axis", 2L)], [x], 2));
        Assert.Contains("equal parts", e.Message);
        e = Assert.Throws<EngineException>(() => Run("Split", 13, [AttributeValue.Of("axis", 2L)], [x, Longs(2, 2)], 2));
        Assert.Contains("sums to 4", e.Message);
    }

    [Theory]
    [InlineData(7, 3, new[] { 3, 3, 1 })]
    [InlineData(6, 3, new[] { 2, 2, 2 })]
    [InlineData(67, 4, new[] { 17, 17, 17, 16 })]
    [InlineData(1, 1, new[] { 1 })]
    public void Opset18_num_outputs_gives_ceil_sized_parts(int dim, int n, int[] sizes)
    {
        var x = Indexed(ElementType.Int64, [3, dim]);
        var outs = Run("Split", 18, [AttributeValue.Of("axis", 1L), AttributeValue.Of("num_outputs", (long)n)], [x], n);
        Check(x, 1, sizes, outs, $"num_outputs {n}");
    }
}
