using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.ShapeKernelHarness;

namespace Quant.Engine.Tests.Kernels;

public class PadTests
{
    /// <summary>Source index for output position j - begin along an axis of length d, numpy.pad style; -1 = constant.</summary>
    private static int Source(long j, int d, string mode)
    {
        if (j >= 0 && j < d) return (int)j;
        switch (mode)
        {
            case "constant": return -1;
            case "edge": return j < 0 ? 0 : d - 1;
            default:
                if (d == 1) return 0;
                // Bounce back and forth as numpy does, one reflection at a time.
                while (j < 0 || j >= d) j = j < 0 ? -j : 2L * (d - 1) - j;
                return (int)j;
        }
    }

    private static (int[] Shape, int[] Map) Reference(int[] shape, long[] begin, long[] end, string mode)
    {
        int r = shape.Length;
        var outShape = shape.Select((d, k) => (int)(d + begin[k] + end[k])).ToArray();
        var st = Strides(shape);
        var map = new int[Count(outShape)];
        for (int i = 0; i < map.Length; i++)
        {
            var o = Unravel(i, outShape);
            int src = 0;
            for (int k = 0; k < r && src >= 0; k++)
            {
                int s = Source(o[k] - begin[k], shape[k], mode);
                src = s < 0 ? -1 : src + s * st[k];
            }
            map[i] = src;
        }
        return (outShape, map);
    }

    [Fact]
    public void Random_pads_in_every_mode_match_numpy_semantics()
    {
        var rng = new Random(21);
        string[] modes = ["constant", "reflect", "edge"];
        for (int c = 0; c < 300; c++)
        {
            int rank = rng.Next(1, 5);
            var shape = RandomShape(rng, rank, 5);
            string mode = modes[c % 3];
            var begin = new long[rank];
            var end = new long[rank];
            for (int k = 0; k < rank; k++)
            {
                // Negative pads crop; never below an empty axis.
                begin[k] = rng.Next(-shape[k] / 2, 7);
                end[k] = rng.Next(-(shape[k] + (int)Math.Min(0, begin[k])) / 2, 7);
            }
            var type = Types[c % Types.Length];
            var x = Indexed(type, shape);
            var (outShape, map) = Reference(shape, begin, end, mode);
            var y = Run("Pad", 13, [AttributeValue.Of("mode", mode)], [x, Longs([.. begin, .. end])], threads: c % 2 + 1)[0];
            Equal(Gathered(x, outShape, map), y, $"{type} {mode} {Fmt(shape)} begin {Fmt(begin)} end {Fmt(end)}");
        }
    }

    [Fact]
    public void Constant_value_input_and_attribute_form()
    {
        var x = Tensor.From(new[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        var y = Run("Pad", 11, null, [x, Longs(0, 1, 1, 0), Tensor.From(new[] { -9 }, [])])[0];
        Assert.Equal([3, 4], y.Shape);
        Assert.Equal([-9, 1, 2, 3, -9, 4, 5, 6, -9, -9, -9, -9], y.Span<int>().ToArray());

        // Pad-2's float value is cast to the data type (truncation toward zero for int).
        var z = Run1("Pad", 2, [AttributeValue.Of("pads", new long[] { 1, 0, 0, 0 }), AttributeValue.Of("value", 2.7f)], x);
        Assert.Equal([2, 2, 2, 1, 2, 3, 4, 5, 6], z.Span<int>().ToArray());
        var f = Run1("Pad", 2, [AttributeValue.Of("pads", new long[] { 0, 2, 0, 0 }), AttributeValue.Of("value", 2.5f), AttributeValue.Of("mode", "constant")],
            Tensor.From(new[] { 1f, 2f }, 1, 2));
        Assert.Equal([2.5f, 2.5f, 1f, 2f], f.Span<float>().ToArray());
    }

    [Fact]
    public void Opset18_axes_pad_only_the_named_axes()
    {
        var x = Indexed(ElementType.Float, [2, 3, 4]);
        var y = Run("Pad", 18, [AttributeValue.Of("mode", "reflect")], [x, Longs(1, 2, 0, 1), null, Longs(-1, 1)])[0];
        var (shape, map) = Reference([2, 3, 4], [0, 2, 1], [0, 1, 0], "reflect");
        Equal(Gathered(x, shape, map), y, "axes");
    }

    [Fact]
    public void Last_axis_of_every_length_with_reflect_and_edge()
    {
        for (int n = 1; n <= 67; n++)
            foreach (var mode in new[] { "reflect", "edge", "constant" })
            {
                var x = Indexed(ElementType.UInt8, [2, n]);
                var y = Run("Pad", 13, [AttributeValue.Of("mode", mode)], [x, Longs(0, 5, 1, 3)])[0];
                var (shape, map) = Reference([2, n], [0, 5], [1, 3], mode);
                Equal(Gathered(x, shape, map), y, $"{mode} n={n}");
            }
    }

    [Fact]
    public void Bad_pads_and_modes_are_errors()
    {
        var x = Indexed(ElementType.Float, [2, 3]);
        var e = Assert.Throws<EngineException>(() => Run("Pad", 13, null, [x, Longs(1, 1)]));
        Assert.Contains("4 entries", e.Message);
        e = Assert.Throws<EngineException>(() => Run("Pad", 13, null, [x, Longs(0, -2, 0, -2)]));
        Assert.Contains("length -1", e.Message);
        e = Assert.Throws<EngineException>(() => Run("Pad", 13, [AttributeValue.Of("mode", "wrap")], [x, Longs(0, 0, 0, 0)]));
        Assert.Contains("wrap", e.Message);
        Assert.Contains(NodeName, e.Message);
    }
}
