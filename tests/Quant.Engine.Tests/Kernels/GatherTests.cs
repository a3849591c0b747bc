using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.ShapeKernelHarness;

namespace Quant.Engine.Tests.Kernels;

public class GatherTests
{
    [Fact]
    public void Random_gathers_with_negative_indices_match_reference()
    {
        var rng = new Random(3);
        for (int c = 0; c < 250; c++)
        {
            int rank = rng.Next(1, 5);
            var shape = RandomShape(rng, rank, 5);
            int axis = rng.Next(rank);
            int d = shape[axis];
            var idxShape = RandomShape(rng, rng.Next(0, 3), 4, allowZero: c % 30 == 0);
            var idx = Enumerable.Range(0, Count(idxShape)).Select(_ => (long)rng.Next(-d, d)).ToArray();
            var type = Types[c % Types.Length];
            var x = Indexed(type, shape);
            var indices = c % 2 == 0 ? Tensor.From(idx, idxShape) : Tensor.From(idx.Select(v => (int)v).ToArray(), idxShape);

            int[] outShape = [.. shape[..axis], .. idxShape, .. shape[(axis + 1)..]];
            var st = Strides(shape);
            var map = new int[Count(outShape)];
            for (int i = 0; i < map.Length; i++)
            {
                var o = Unravel(i, outShape);
                int flatIdx = 0;
                for (int k = 0; k < idxShape.Length; k++) flatIdx = flatIdx * idxShape[k] + o[axis + k];
                long v = idx[flatIdx];
                int[] src = [.. o[..axis], (int)(v < 0 ? v + d : v), .. o[(axis + idxShape.Length)..]];
                map[i] = src.Select((s, k) => s * st[k]).Sum();
            }
            long attrAxis = rng.Next(2) == 0 ? axis : axis - rank;
            Equal(Gathered(x, outShape, map), Run1("Gather", 13, [AttributeValue.Of("axis", attrAxis)], x, indices),
                $"{type} {Fmt(shape)} axis {attrAxis} indices {Fmt(idxShape)} {Fmt(idx)}");
        }
    }

    [Fact]
    public void Scalar_index_drops_the_axis()
    {
        var x = Indexed(ElementType.Float, [3, 4]);
        var y = Run1("Gather", 13, [AttributeValue.Of("axis", 1L)], x, Tensor.From(new[] { -1L }, []));
        Assert.Equal([3], y.Shape);
        Assert.Equal([2.5f, 4.5f, 6.5f], y.Span<float>().ToArray());
    }

    [Fact]
    public void Out_of_range_index_is_an_error()
    {
        var x = Indexed(ElementType.Float, [3, 4]);
        var e = Assert.Throws<EngineException>(() => Run1("Gather", 13, null, x, Longs(0, 3)));
        Assert.Contains("index 3 is out of range for axis 0 of length 3", e.Message);
        Assert.Contains(NodeName, e.Message);
        e = Assert.Throws<EngineException>(() => Run1("Gather", 13, null, x, Longs(-4)));
        Assert.Contains("index -4", e.Message);
    }
}
