using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.ShapeKernelHarness;

namespace Quant.Engine.Tests.Kernels;

public class ConcatTests
{
    /// <summary>Joins the inputs along <paramref name="axis"/> by explicit multi-index arithmetic.</summary>
    internal static Tensor Reference(Tensor[] inputs, int axis)
    {
        var outShape = (int[])inputs[0].Shape.Clone();
        outShape[axis] = inputs.Sum(t => t.Shape[axis]);
        var y = Tensor.Zeros(inputs[0].Type, outShape);
        int n = Count(outShape);
        for (int i = 0; i < n; i++)
        {
            var o = Unravel(i, outShape);
            int which = 0, pos = o[axis];
            while (pos >= inputs[which].Shape[axis]) pos -= inputs[which++].Shape[axis];
            o[axis] = pos;
            var st = Strides(inputs[which].Shape);
            int src = 0;
            for (int k = 0; k < o.Length; k++) src += o[k] * st[k];
            Array.Copy(inputs[which].Buffer, src, y.Buffer, i, 1);
        }
        return y;
    }

    [Fact]
    public void Random_concatenations_match_reference_for_every_width()
    {
        var rng = new Random(7);
        for (int c = 0; c < 250; c++)
        {
            int rank = rng.Next(1, 5);
            var shape = RandomShape(rng, rank, 5);
            int axis = rng.Next(rank);
            int count = rng.Next(1, 5);
            var type = Types[c % Types.Length];
            var inputs = new Tensor[count];
            for (int i = 0; i < count; i++)
            {
                var s = (int[])shape.Clone();
                s[axis] = rng.Next(0, 6);
                inputs[i] = Indexed(type, s);
            }
            long attrAxis = rng.Next(2) == 0 ? axis : axis - rank;
            var y = Run("Concat", 13, [AttributeValue.Of("axis", attrAxis)], inputs, threads: c % 2 + 1)[0];
            Equal(Reference(inputs, axis), y, $"{type} axis {attrAxis} shapes {string.Join(" ", inputs.Select(t => Fmt(t.Shape)))}");
        }
    }

    [Fact]
    public void Lengths_zero_to_67_along_the_last_axis()
    {
        for (int n = 0; n <= 67; n++)
        {
            var a = Indexed(ElementType.Float16, [2, n]);
            var b = Indexed(ElementType.Float16, [2, 67 - n]);
            Equal(Reference([a, b], 1), Run1("Concat", 13, [AttributeValue.Of("axis", 1L)], a, b), $"n={n}");
        }
    }

    [Fact]
    public void Large_channel_concat_with_threads_matches_reference()
    {
        var inputs = Enumerable.Range(0, 4).Select(i => Indexed(ElementType.Float, [1, 24 + i, 40, 41])).ToArray();
        Equal(Reference(inputs, 1), Run("Concat", 11, [AttributeValue.Of("axis", 1L)], inputs, threads: 2)[0], "channels");
        Equal(Reference(inputs, 1), Run("Concat", 11, [AttributeValue.Of("axis", -3L)], inputs, threads: 1)[0], "channels single thread");
    }

    [Fact]
    public void Mismatched_inputs_are_errors()
    {
        var a = Indexed(ElementType.Float, [2, 3]);
        var b = Indexed(ElementType.Float, [3, 3]);
        var e = Assert.Throws<EngineException>(() => Run1("Concat", 13, [AttributeValue.Of("axis", 1L)], a, b));
        Assert.Contains("outside axis 1", e.Message);
        Assert.Contains(NodeName, e.Message);
        e = Assert.Throws<EngineException>(() => Run1("Concat", 13, [AttributeValue.Of("axis", 2L)], a, a));
        Assert.Contains("out of range", e.Message);
        e = Assert.Throws<EngineException>(() => Run1("Concat", 13, [AttributeValue.Of("axis", 0L)], a, Indexed(ElementType.Int64, [2, 3])));
        Assert.Contains("int64", e.Message);
    }
}
