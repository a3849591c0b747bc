using System.Diagnostics;
using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.ShapeKernelHarness;

namespace Quant.Engine.Tests.Kernels;

public class TransposeTests
{
    /// <summary>Output flat index i reads input flat index map[i]: out axis k is input axis perm[k].</summary>
    internal static (int[] Shape, int[] Map) Reference(int[] inShape, int[] perm)
    {
        int r = inShape.Length;
        var outShape = perm.Select(p => inShape[p]).ToArray();
        var inStrides = Strides(inShape);
        int n = Count(outShape);
        var map = new int[n];
        for (int i = 0; i < n; i++)
        {
            var o = Unravel(i, outShape);
            int src = 0;
            for (int k = 0; k < r; k++) src += o[k] * inStrides[perm[k]];
            map[i] = src;
        }
        return (outShape, map);
    }

    private static void Check(ElementType type, int[] shape, int[] perm, int threads)
    {
        var x = Indexed(type, shape);
        var (outShape, map) = Reference(shape, perm);
        var y = Run("Transpose", 13, [AttributeValue.Of("perm", perm.Select(p => (long)p).ToArray())], [x], threads: threads)[0];
        Equal(Gathered(x, outShape, map), y, $"{type} {Fmt(shape)} perm {Fmt(perm)} threads {threads}");
    }

    [Fact]
    public void Random_shapes_and_permutations_match_reference_for_every_width()
    {
        var rng = new Random(1234);
        for (int c = 0; c < 300; c++)
        {
            int rank = rng.Next(0, 7);
            var shape = RandomShape(rng, rank, rank > 4 ? 4 : 7, allowZero: c % 25 == 0);
            var perm = Enumerable.Range(0, rank).OrderBy(_ => rng.Next()).ToArray();
            Check(Types[c % Types.Length], shape, perm, c % 2 == 0 ? 1 : 2);
        }
    }

    [Theory]
    [InlineData(new[] { 1, 120, 40 }, new[] { 0, 2, 1 })]
    [InlineData(new[] { 1, 40, 3, 8, 15 }, new[] { 2, 0, 3, 1, 4 })]
    [InlineData(new[] { 1, 8, 40, 15 }, new[] { 0, 1, 3, 2 })]
    [InlineData(new[] { 1, 8, 40, 15 }, new[] { 0, 2, 1, 3 })]
    [InlineData(new[] { 1, 1, 40, 120 }, new[] { 0, 3, 1, 2 })]
    [InlineData(new[] { 67, 131 }, new[] { 1, 0 })]
    [InlineData(new[] { 3, 67, 129 }, new[] { 2, 1, 0 })]
    [InlineData(new[] { 5, 33, 17, 19 }, new[] { 3, 0, 2, 1 })]
    [InlineData(new[] { 300, 260 }, new[] { 1, 0 })]
    public void Model_and_tail_shapes_match_reference_single_and_multi_threaded(int[] shape, int[] perm)
    {
        foreach (var t in new[] { ElementType.Float, ElementType.UInt8, ElementType.Float16, ElementType.Int64 })
        {
            Check(t, shape, perm, 1);
            Check(t, shape, perm, 2);
        }
    }

    [Fact]
    public void Default_perm_reverses_axes()
    {
        var x = Indexed(ElementType.Float, [2, 3, 4]);
        var (outShape, map) = Reference([2, 3, 4], [2, 1, 0]);
        Equal(Gathered(x, outShape, map), Run1("Transpose", 13, null, x), "default perm");
    }

    [Fact]
    public void Invalid_perm_is_an_error_naming_the_node()
    {
        var x = Indexed(ElementType.Float, [2, 3]);
        var e = Assert.Throws<EngineException>(() => Run1("Transpose", 13, [AttributeValue.Of("perm", new long[] { 0, 0 })], x));
        Assert.Contains(NodeName, e.Message);
        Assert.Contains("permutation", e.Message);
        e = Assert.Throws<EngineException>(() => Run1("Transpose", 13, [AttributeValue.Of("perm", new long[] { 0, 1, 2 })], x));
        Assert.Contains("rank 2", e.Message);
    }

    /// <summary>Not a pass/fail speed gate (the machine is shared): checks the tiled path against the
    /// reference on a large plane and prints the time for the report.</summary>
    [Fact]
    public void Large_transpose_is_correct_and_timed()
    {
        int[] shape = [64, 512, 256];
        int[] perm = [0, 2, 1];
        var x = Indexed(ElementType.Float, shape);
        var attrs = new[] { AttributeValue.Of("perm", new long[] { 0, 2, 1 }) };
        var y = Run("Transpose", 13, attrs, [x], threads: 1)[0];
        var (outShape, map) = Reference(shape, perm);
        Equal(Gathered(x, outShape, map), y, "large");
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < 5; i++) Run("Transpose", 13, attrs, [x], threads: 1);
        Console.WriteLine($"Transpose [64,512,256] perm (0,2,1) float: {sw.Elapsed.TotalMilliseconds / 5:F2} ms per run incl. session build");
    }
}
