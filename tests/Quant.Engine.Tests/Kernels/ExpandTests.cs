using Quant.Engine;
using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.ElementwiseReference;

namespace Quant.Engine.Tests.Kernels;

public class ExpandTests
{
    [Theory]
    [InlineData(new[] { 3, 1 }, new long[] { 2, 1, 6 })]
    [InlineData(new[] { 1, 4, 1 }, new long[] { 3, 1, 5 })]
    [InlineData(new[] { 5 }, new long[] { 1 })]
    [InlineData(new[] { 1, 3 }, new long[] { 0, 3 })]
    [InlineData(new[] { 1 }, new long[] { 200, 300 })]
    public void Matches_index_arithmetic(int[] inShape, long[] target)
    {
        var x = RandomTensor(inShape.Sum(), inShape);
        var y = RunNode("Expand", 13, [x, Tensor.From(target, target.Length)], threads: 2)[0];
        var outShape = BroadcastShape(inShape, target.Select(t => (int)t).ToArray());
        Assert.Equal(outShape, y.Shape);
        for (int i = 0; i < y.Length; i++)
            Assert.Equal(x.ReadOnlySpan<float>()[Offset(outShape, inShape, i)], y.ReadOnlySpan<float>()[i]);
    }

    [Fact]
    public void Expands_integers_bools_and_strings()
    {
        var s = Run1("Expand", 13, Tensor.From(new[] { "a", "b" }, 2, 1), Tensor.From(new long[] { 2, 2 }, 2));
        Assert.Equal(new[] { "a", "a", "b", "b" }, s.Strings().ToArray());
        var l = Run1("Expand", 13, Tensor.From(new long[] { 7 }, 1), Tensor.From(new long[] { 3 }, 1));
        Assert.Equal(new long[] { 7, 7, 7 }, l.ReadOnlySpan<long>().ToArray());
        var ex = Assert.Throws<EngineException>(() => Run1("Expand", 13, Tensor.From(new long[] { 1, 2 }, 2), Tensor.From(new long[] { 3 }, 1)));
        Assert.Contains("cannot be broadcast", ex.Message);
    }
}
