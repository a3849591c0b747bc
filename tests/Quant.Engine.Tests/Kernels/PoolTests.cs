using Quant.Engine;
using Quant.Engine.Kernels;
using Quant.Onnx;

namespace Quant.Engine.Tests.Kernels;

public class PoolTests
{
    private static PoolKernels.PoolAttributes Attrs(Random rng, int rank, bool average)
    {
        var kernel = Enumerable.Range(0, rank).Select(_ => rng.Next(1, 5)).ToArray();
        var dil = Enumerable.Range(0, rank).Select(_ => rng.Next(3) == 0 ? 2 : 1).ToArray();
        var pads = new int[2 * rank];
        for (int d = 0; d < rank; d++) { pads[d] = rng.Next(kernel[d]); pads[d + rank] = rng.Next(kernel[d]); }
        return new PoolKernels.PoolAttributes
        {
            Average = average,
            Kernel = kernel,
            Strides = Enumerable.Range(0, rank).Select(_ => rng.Next(1, 4)).ToArray(),
            Dilations = dil,
            Pads = pads,
            AutoPad = new[] { "NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID" }[rng.Next(5)],
            CeilMode = rng.Next(2) == 0,
            CountIncludePad = rng.Next(2) == 0,
        };
    }

    [Theory]
    [InlineData(true, 1)]
    [InlineData(false, 2)]
    [InlineData(true, 3)]
    [InlineData(false, 4)]
    public void Vectorized_2d_pooling_matches_scalar_nd_reference_for_every_width(bool average, int seed)
    {
        var rng = new Random(seed);
        int compared = 0;
        for (int w = 1; w <= 67; w++)
        {
            for (int rep = 0; rep < 3; rep++)
            {
                int rank = rep == 2 ? 1 : 2;
                var a = Attrs(rng, rank, average);
                int h = rng.Next(1, 8);
                int[] spatial = rank == 2 ? [h, w] : [w];
                var g = PoolKernels.Geometry.Create(a, spatial);
                if (g.Out.Any(o => o == 0)) continue;
                // Skip windows that lie wholly in padding: their value is undefined.
                bool emptyWindow = false;
                for (int d = 0; d < rank; d++)
                    for (int o = 0; o < g.Out[d]; o++) { var (lo, hi) = g.Taps(d, o); if (lo >= hi) emptyWindow = true; }
                if (emptyWindow) continue;
                int planes = 3;
                int n = planes * spatial.Aggregate(1, (p, v) => p * v);
                var x = new float[n];
                for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 8 - 4);
                if (!average && rng.Next(4) == 0) x[rng.Next(n)] = float.NaN;
                int outN = planes * g.Out.Aggregate(1, (p, v) => p * v);
                var fast = new float[outN];
                var slow = new float[outN];
                PoolKernels.Pool2D(null, x, fast, planes, g, average);
                PoolKernels.PoolNd(null, x, slow, null, planes, g, average, 0);
                for (int i = 0; i < outN; i++)
                {
                    bool ok = float.IsNaN(slow[i]) ? float.IsNaN(fast[i]) : Math.Abs(slow[i] - fast[i]) <= 1e-5f * (1 + Math.Abs(slow[i]));
                    Assert.True(ok, $"{(average ? "avg" : "max")} in [{string.Join(",", spatial)}] k [{string.Join(",", a.Kernel)}] s [{string.Join(",", a.Strides)}] " +
                        $"d [{string.Join(",", a.Dilations)}] pads [{string.Join(",", a.Pads)}] {a.AutoPad} ceil {a.CeilMode} incl {a.CountIncludePad}: at {i} {fast[i]} vs {slow[i]}");
                    compared++;
                }
            }
        }
        Assert.True(compared > 5000, $"only {compared} outputs compared");
    }

    [Fact]
    public void Global_sum_and_max_match_scalar_for_lengths_0_to_67()
    {
        var rng = new Random(5);
        for (int n = 0; n <= 67; n++)
        {
            var x = new float[n];
            for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 10 - 5);
            double sum = x.Sum(v => (double)v);
            Assert.True(Math.Abs(PoolKernels.Sum(x) - sum) <= 1e-4, $"sum of {n}");
            Assert.Equal(n == 0 ? float.NegativeInfinity : x.Max(), PoolKernels.Max(x));
            if (n > 0)
            {
                x[rng.Next(n)] = float.NaN;
                Assert.True(float.IsNaN(PoolKernels.Max(x)), $"NaN lost in max of {n}");
            }
        }
    }

    [Fact]
    public void Global_pools_reduce_each_plane()
    {
        var x = Tensor.From(new float[] { 1, 2, 3, 4, -1, -2, -3, -6 }, 1, 2, 2, 2);
        var avg = PoolResizeNode.Run("GlobalAveragePool", 1, [x])[0]!;
        Assert.Equal(new[] { 1, 2, 1, 1 }, avg.Shape);
        Assert.Equal(new float[] { 2.5f, -3f }, avg.ReadOnlySpan<float>().ToArray());
        var max = PoolResizeNode.Run("GlobalMaxPool", 1, [x])[0]!;
        Assert.Equal(new float[] { 4f, -1f }, max.ReadOnlySpan<float>().ToArray());
    }

    [Fact]
    public void MaxPool_indices_follow_storage_order_and_cover_int8()
    {
        // 2 planes of 3x3; 2x2 window, stride 1.
        var data = new float[] { 1, 9, 2, 3, 4, 5, 8, 6, 7, /* plane 1 */ 0, 0, 0, 0, 1, 0, 0, 0, 0 };
        var x = Tensor.From(data, 1, 2, 3, 3);
        void K(Node n) => n.Set(AttributeValue.Of("kernel_shape", new long[] { 2, 2 }));
        var r = PoolResizeNode.Run("MaxPool", 12, [x], 2, K);
        Assert.Equal(new float[] { 9, 9, 8, 7, 1, 1, 1, 1 }, r[0]!.ReadOnlySpan<float>().ToArray());
        Assert.Equal(new long[] { 1, 1, 6, 8, 13, 13, 13, 13 }, r[1]!.ReadOnlySpan<long>().ToArray());
        var c = PoolResizeNode.Run("MaxPool", 12, [x], 2, n => { K(n); n.Set(AttributeValue.Of("storage_order", 1L)); });
        // column-major spatial offset: (h, w) -> w * 3 + h
        Assert.Equal(new long[] { 3, 3, 2, 8, 13, 13, 13, 13 }, c[1]!.ReadOnlySpan<long>().ToArray());

        var xi = Tensor.From(new sbyte[] { -5, -3, -8, -1 }, 1, 1, 4);
        var yi = PoolResizeNode.Run("MaxPool", 12, [xi], attrs: n => n.Set(AttributeValue.Of("kernel_shape", new long[] { 2 })))[0]!;
        Assert.Equal(new sbyte[] { -3, -3, -1 }, yi.ReadOnlySpan<sbyte>().ToArray());
    }

    [Fact]
    public void AveragePool_divisor_follows_count_include_pad()
    {
        var x = Tensor.From(new float[] { 1, 2, 3, 4 }, 1, 1, 4);
        void Common(Node n)
        {
            n.Set(AttributeValue.Of("kernel_shape", new long[] { 3 }));
            n.Set(AttributeValue.Of("pads", new long[] { 1, 1 }));
        }
        var ex = PoolResizeNode.Run("AveragePool", 11, [x], attrs: Common)[0]!;
        Assert.Equal(new float[] { 1.5f, 2, 3, 3.5f }, ex.ReadOnlySpan<float>().ToArray());
        var inc = PoolResizeNode.Run("AveragePool", 11, [x], attrs: n => { Common(n); n.Set(AttributeValue.Of("count_include_pad", 1L)); })[0]!;
        Assert.Equal(new float[] { 1, 2, 3, 7 / 3f }, inc.ReadOnlySpan<float>().ToArray());
    }

    [Fact]
    public void Pool_errors_name_the_problem()
    {
        var x = Tensor.From(new float[16], 1, 1, 4, 4);
        var e = Assert.Throws<EngineException>(() => PoolResizeNode.Run("MaxPool", 12, [x], attrs: n => n.Set(AttributeValue.Of("kernel_shape", new long[] { 2 }))));
        Assert.Contains("must have rank 3", e.Message);
        var e2 = Assert.Throws<EngineException>(() => PoolResizeNode.Run("AveragePool", 11, [x], attrs: n =>
        {
            n.Set(AttributeValue.Of("kernel_shape", new long[] { 2, 2 }));
            n.Set(AttributeValue.Of("pads", new long[] { 1, 1 }));
        }));
        Assert.Contains("pads", e2.Message);
        Assert.Throws<EngineException>(() => PoolResizeNode.Run("AveragePool", 11, [x]));
    }
}
