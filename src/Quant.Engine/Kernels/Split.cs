using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Split along <c>axis</c> (default 0, negative counts from the end) into the node's outputs, in order.
/// Part sizes: the <c>split</c> attribute (opsets 1, 2, 11) or input 1 (opset 1 and 13+), which must sum to
/// the axis length; otherwise equal parts, one per output, which before opset 18 must divide the axis exactly.
/// From opset 18 <c>num_outputs</c> gives ceil(d / n) per part with a smaller last part.
/// </summary>
[KernelFamily]
internal static class SplitKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("Split", 1, s => new SplitKernel(s.Node.GetInt("axis", 0), s.Node.GetInts("split"), splitInput: true, numOutputs: null));
        r.Add("Split", 2, s => new SplitKernel(s.Node.GetInt("axis", 0), s.Node.GetInts("split"), splitInput: false, numOutputs: null));
        r.Add("Split", 13, s => new SplitKernel(s.Node.GetInt("axis", 0), null, splitInput: true, numOutputs: null));
        r.Add("Split", 18, s =>
        {
            long? n = s.Node.Has("num_outputs") ? s.Node.GetInt("num_outputs", 0) : null;
            if (n is not null && n != s.Node.Outputs.Count)
                throw s.Error($"num_outputs is {n} but the node has {s.Node.Outputs.Count} outputs");
            return new SplitKernel(s.Node.GetInt("axis", 0), null, splitInput: true, numOutputs: n);
        });
    }

    private sealed class SplitKernel(long axis, long[]? attributeSplit, bool splitInput, long? numOutputs) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            int r = x.Rank;
            int a = ShapeUtil.Axis(ctx, axis, r);
            int dim = x.Shape[a];
            int n = ctx.OutputCount;
            var split = attributeSplit;
            if (splitInput && ctx.Input(1) is { } st) split = ShapeUtil.ReadInts(ctx, st, "split");
            var sizes = new int[n];
            if (split is not null)
            {
                if (split.Length != n) throw ctx.Error($"split [{string.Join(",", split)}] has {split.Length} entries but the node has {n} outputs");
                long sum = 0;
                for (int i = 0; i < n; i++)
                {
                    if (split[i] < 0) throw ctx.Error($"split [{string.Join(",", split)}] has a negative size");
                    sum += split[i];
                    sizes[i] = (int)Math.Min(split[i], int.MaxValue);
                }
                if (sum != dim) throw ctx.Error($"split [{string.Join(",", split)}] sums to {sum} but axis {a} has length {dim}");
            }
            else if (numOutputs is not null)
            {
                int chunk = (dim + n - 1) / n;
                for (int i = 0, left = dim; i < n; i++) { sizes[i] = Math.Min(chunk, left); left -= sizes[i]; }
            }
            else
            {
                if (dim % n != 0) throw ctx.Error($"axis {a} of length {dim} does not split into {n} equal parts");
                Array.Fill(sizes, dim / n);
            }

            int outer = ShapeUtil.Product(x.Shape, 0, a);
            int inner = ShapeUtil.Product(x.Shape, a + 1, r);
            int inBlock = dim * inner;
            int offset = 0;
            for (int i = 0; i < n; i++)
            {
                int block = sizes[i] * inner;
                if (ctx.WantsOutput(i))
                {
                    var shape = (int[])x.Shape.Clone();
                    shape[a] = sizes[i];
                    var y = ctx.Output(i, x.Type, shape);
                    StridedCopy.Run(ctx, x, offset, [inBlock, 1], y, 0, [block, 1], [outer, block]);
                }
                offset += block;
            }
        }
    }
}
