using Quant.Engine;
using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.ElementwiseReference;

namespace Quant.Engine.Tests.Kernels;

public class ReduceTests
{
    private static double[] Reference(float[] x, int[] shape, bool[] reduced, string op, out int[] keptShape)
    {
        keptShape = shape.Select((d, i) => reduced[i] ? 1 : d).ToArray();
        int n = Tensor.ElementCount(keptShape);
        var acc = new double[n];
        var cnt = new int[n];
        Array.Fill(acc, op == "ReduceMax" ? double.NegativeInfinity : 0);
        for (int f = 0; f < x.Length; f++)
        {
            int rem = f, o = 0, stride = 1;
            for (int d = shape.Length - 1; d >= 0; d--)
            {
                int idx = rem % shape[d]; rem /= shape[d];
                if (!reduced[d]) o += idx * stride;
                stride *= keptShape[d];
            }
            acc[o] = op == "ReduceMax" ? Math.Max(acc[o], x[f]) : acc[o] + x[f];
            cnt[o]++;
        }
        if (op == "ReduceMean") for (int i = 0; i < n; i++) acc[i] /= cnt[i];
        return acc;
    }

    [Fact]
    public void Every_axis_subset_matches_reference_in_both_axes_forms()
    {
        int[] shape = [3, 4, 5, 6];
        var x = RandomTensor(9, shape);
        foreach (var op in new[] { "ReduceSum", "ReduceMean", "ReduceMax" })
            for (int mask = 1; mask < 16; mask++)
                foreach (var keep in new[] { 0L, 1L })
                {
                    var reduced = Enumerable.Range(0, 4).Select(d => (mask >> d & 1) != 0).ToArray();
                    // Negative axes for half of the cases.
                    var axes = Enumerable.Range(0, 4).Where(d => reduced[d]).Select(d => (long)(mask % 2 == 0 ? d - 4 : d)).ToArray();
                    var expect = Reference(x.ReadOnlySpan<float>().ToArray(), shape, reduced, op, out var kept);
                    var expectShape = keep == 1 ? kept : shape.Where((_, i) => !reduced[i]).ToArray();
                    var fromAttr = RunNode(op, 11, [x], attributes: [AttributeValue.Of("axes", axes), AttributeValue.Of("keepdims", keep)])[0];
                    var fromInput = RunNode(op, 18, [x, Tensor.From(axes, axes.Length)], attributes: [AttributeValue.Of("keepdims", keep)])[0];
                    foreach (var y in new[] { fromAttr, fromInput })
                    {
                        Assert.Equal(expectShape, y.Shape);
                        var yv = y.ReadOnlySpan<float>();
                        for (int i = 0; i < expect.Length; i++)
                            Assert.True(Math.Abs(yv[i] - expect[i]) <= 1e-5 * Math.Max(1, Math.Abs(expect[i])), $"{op} mask {mask} [{i}]: {yv[i]} vs {expect[i]}");
                    }
                }
    }

    [Fact]
    public void Defaults_empty_axes_and_integer_sums()
    {
        var x = Tensor.From(new long[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        var all = Run1("ReduceSum", 13, x);
        Assert.Equal([1, 1], all.Shape);
        Assert.Equal(21L, all.ReadOnlySpan<long>()[0]);
        var noop = RunNode("ReduceSum", 13, [x, Tensor.From(Array.Empty<long>(), 0)], attributes: [AttributeValue.Of("noop_with_empty_axes", 1L)])[0];
        Assert.Equal(x.ReadOnlySpan<long>().ToArray(), noop.ReadOnlySpan<long>().ToArray());
        var mean = RunNode("ReduceMean", 13, [x], attributes: [AttributeValue.Of("axes", new long[] { 1 }), AttributeValue.Of("keepdims", 0L)])[0];
        Assert.Equal(new long[] { 2, 5 }, mean.ReadOnlySpan<long>().ToArray());
        var big = RandomTensor(4, [2, 300, 400]);
        var one = RunNode("ReduceMean", 13, [big], threads: 1, attributes: [AttributeValue.Of("axes", new long[] { -1 })])[0].ReadOnlySpan<float>().ToArray();
        var two = RunNode("ReduceMean", 13, [big], threads: 2, attributes: [AttributeValue.Of("axes", new long[] { -1 })])[0].ReadOnlySpan<float>().ToArray();
        Assert.Equal(one, two);
        var ex = Assert.Throws<EngineException>(() => RunNode("ReduceSum", 11, [x], attributes: [AttributeValue.Of("axes", new long[] { 2 })]));
        Assert.Contains("out of range", ex.Message);
    }

    [Fact]
    public void Norm_reduce_fixture_matches_onnx_runtime()
    {
        CompareWithOrt("elem_norm_reduce_opset18.onnx", new Dictionary<string, Tensor>
        {
            ["x"] = RandomTensor(41, [2, 6, 5, 7], -5, 5),
            ["scale"] = RandomTensor(42, [5, 7]),
            ["bias"] = RandomTensor(43, [7]),
        }, rtol: 1e-5, atol: 1e-6);
    }
}
