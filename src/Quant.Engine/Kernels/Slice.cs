using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Slice (1: <c>starts</c>/<c>ends</c>/<c>axes</c> attributes; 10: inputs starts, ends, axes, steps).
/// Per sliced axis of length d with step s (default 1, never 0): a negative start or end has d added, then
/// start is clamped to [0, d] (s &gt; 0) or [0, d-1] (s &lt; 0) and end to [0, d] (s &gt; 0) or [-1, d-1] (s &lt; 0);
/// the axis keeps max(0, ceil((end - start) / s)) elements start, start+s, ... Axes not named are kept whole;
/// naming an axis twice is an error. The result is one strided box copy of the input.
/// </summary>
[KernelFamily]
internal static class SliceKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("Slice", 1, s => new SliceKernel(
            s.Node.GetInts("starts") ?? throw s.Error("attribute 'starts' is required"),
            s.Node.GetInts("ends") ?? throw s.Error("attribute 'ends' is required"),
            s.Node.GetInts("axes")));
        r.Add("Slice", 10, _ => new SliceKernel(null, null, null));
    }

    private sealed class SliceKernel(long[]? attrStarts, long[]? attrEnds, long[]? attrAxes) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            long[] starts, ends;
            long[]? axes, steps = null;
            if (attrStarts is not null)
            {
                starts = attrStarts; ends = attrEnds!; axes = attrAxes;
            }
            else
            {
                starts = ShapeUtil.ReadInts(ctx, ctx.Required(1), "starts");
                ends = ShapeUtil.ReadInts(ctx, ctx.Required(2), "ends");
                axes = ctx.Input(3) is { } at ? ShapeUtil.ReadInts(ctx, at, "axes") : null;
                steps = ctx.Input(4) is { } stt ? ShapeUtil.ReadInts(ctx, stt, "steps") : null;
            }
            int r = x.Rank;
            if (ends.Length != starts.Length) throw ctx.Error($"starts has {starts.Length} entries but ends has {ends.Length}");
            if (axes is not null && axes.Length != starts.Length) throw ctx.Error($"starts has {starts.Length} entries but axes has {axes.Length}");
            if (steps is not null && steps.Length != starts.Length) throw ctx.Error($"starts has {starts.Length} entries but steps has {steps.Length}");
            if (axes is null && starts.Length > r) throw ctx.Error($"{starts.Length} starts for an input of rank {r}");

            var outShape = (int[])x.Shape.Clone();
            var first = new int[r];
            var step = new int[r];
            Array.Fill(step, 1);
            var named = new bool[r];
            for (int i = 0; i < starts.Length; i++)
            {
                int a = axes is null ? i : ShapeUtil.Axis(ctx, axes[i], r, "axis");
                if (named[a]) throw ctx.Error($"axis {a} is sliced twice");
                named[a] = true;
                long s = steps?[i] ?? 1;
                if (s == 0) throw ctx.Error($"step for axis {a} is 0");
                long d = x.Shape[a];
                long b = starts[i], e = ends[i];
                if (b < 0) b += d;
                if (e < 0) e += d;
                // A step longer than the axis selects at most one element, like the axis length itself; clamping
                // first keeps the count arithmetic below from overflowing.
                s = Math.Clamp(s, -Math.Max(d, 1), Math.Max(d, 1));
                long count;
                if (d == 0)
                {
                    b = 0;
                    count = 0;
                }
                else if (s > 0)
                {
                    b = Math.Clamp(b, 0, d);
                    e = Math.Clamp(e, 0, d);
                    count = e > b ? 1 + (e - b - 1) / s : 0;
                }
                else
                {
                    b = Math.Clamp(b, 0, d - 1);
                    e = Math.Clamp(e, -1, d - 1);
                    count = b > e ? 1 + (b - e - 1) / -s : 0;
                }
                first[a] = (int)b;
                step[a] = (int)s;
                outShape[a] = (int)count;
            }

            var y = ctx.Output(0, x.Type, outShape);
            var inStrides = ShapeUtil.Strides(x.Shape);
            var srcStrides = new int[r];
            int srcBase = 0;
            for (int k = 0; k < r; k++)
            {
                srcStrides[k] = inStrides[k] * step[k];
                if (outShape[k] > 0) srcBase += first[k] * inStrides[k];
            }
            StridedCopy.Run(ctx, x, srcBase, srcStrides, y, 0, ShapeUtil.Strides(outShape), outShape);
        }
    }
}
