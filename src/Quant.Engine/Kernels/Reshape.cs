using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Reshape (1: <c>shape</c> attribute; 5: shape input; 14: <c>allowzero</c>), Flatten, Squeeze and Unsqueeze
/// (1/11: <c>axes</c> attribute; 13: axes input). All copy the elements unchanged in row-major order; only the
/// shape changes. Reshape: a 0 copies the input's dimension at that index (unless allowzero=1, where it is a
/// literal 0), one -1 is inferred from the element count. Flatten: [prod(d[..axis]), prod(d[axis..])].
/// Squeeze without axes removes every size-1 axis. Unsqueeze axes refer to the output rank.
/// </summary>
[KernelFamily]
internal static class ReshapeKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("Reshape", 1, s => new ReshapeKernel(s.Node.GetInts("shape") ?? throw s.Error("attribute 'shape' is required"), false));
        r.Add("Reshape", 5, _ => new ReshapeKernel(null, false));
        r.Add("Reshape", 14, s => new ReshapeKernel(null, s.Node.GetInt("allowzero", 0) != 0));
        r.Add("Flatten", 1, s => new FlattenKernel(s.Node.GetInt("axis", 1)));
        r.Add("Squeeze", 1, s => new SqueezeKernel(s.Node.GetInts("axes"), fromInput: false));
        r.Add("Squeeze", 13, _ => new SqueezeKernel(null, fromInput: true));
        r.Add("Unsqueeze", 1, s => new UnsqueezeKernel(s.Node.GetInts("axes") ?? throw s.Error("attribute 'axes' is required"), fromInput: false));
        r.Add("Unsqueeze", 13, _ => new UnsqueezeKernel(null, fromInput: true));
    }

    /// <summary>Resolves a Reshape target (with 0 and -1) against the input shape, or throws naming both.</summary>
    internal static int[] ResolveShape(KernelContext ctx, int[] input, ReadOnlySpan<long> target, bool allowZero)
    {
        var shape = new int[target.Length];
        int inferred = -1;
        long known = 1;
        for (int i = 0; i < target.Length; i++)
        {
            long d = target[i];
            if (d == -1)
            {
                if (inferred >= 0) throw ctx.Error($"shape {Describe(target)} has more than one -1");
                inferred = i;
                continue;
            }
            if (d == 0 && !allowZero)
            {
                if (i >= input.Length)
                    throw ctx.Error($"shape {Describe(target)} copies dimension {i} (a 0) but the input {ShapeUtil.Format(input)} has rank {input.Length}");
                d = input[i];
            }
            if (d < 0 || d > int.MaxValue) throw ctx.Error($"shape {Describe(target)} has an invalid dimension {target[i]}");
            shape[i] = (int)d;
            known *= d;
        }
        long count = Tensor.ElementCount(input);
        if (inferred >= 0)
        {
            if (known == 0 || count % known != 0)
                throw ctx.Error($"cannot reshape {ShapeUtil.Format(input)} ({count} elements) to {Describe(target)}");
            shape[inferred] = (int)(count / known);
        }
        else if (known != count)
        {
            throw ctx.Error($"cannot reshape {ShapeUtil.Format(input)} ({count} elements) to {Describe(target)}");
        }
        return shape;
    }

    private static string Describe(ReadOnlySpan<long> s) => "[" + string.Join(",", s.ToArray()) + "]";

    private sealed class ReshapeKernel(long[]? attributeShape, bool allowZero) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var target = attributeShape ?? ShapeUtil.ReadInts(ctx, ctx.Required(1), "shape");
            ShapeUtil.CopyReshaped(ctx, x, ResolveShape(ctx, x.Shape, target, allowZero));
        }
    }

    private sealed class FlattenKernel(long axis) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            int r = x.Rank;
            // Flatten's axis may equal the rank (everything goes to the first dimension).
            if (axis < -r || axis > r) throw ctx.Error($"axis {axis} is out of range for rank {r} (valid: {-r}..{r})");
            int a = (int)(axis < 0 ? axis + r : axis);
            ShapeUtil.CopyReshaped(ctx, x, [ShapeUtil.Product(x.Shape, 0, a), ShapeUtil.Product(x.Shape, a, r)]);
        }
    }

    private sealed class SqueezeKernel(long[]? attributeAxes, bool fromInput) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var axes = fromInput ? (ctx.Input(1) is { } t ? ShapeUtil.ReadInts(ctx, t, "axes") : null) : attributeAxes;
            int r = x.Rank;
            var drop = new bool[r];
            if (axes is null)
            {
                for (int k = 0; k < r; k++) drop[k] = x.Shape[k] == 1;
            }
            else
            {
                foreach (var a in axes)
                {
                    int k = ShapeUtil.Axis(ctx, a, r, "axis");
                    if (x.Shape[k] != 1) throw ctx.Error($"cannot squeeze axis {a}: its size is {x.Shape[k]}, not 1");
                    drop[k] = true;
                }
            }
            var shape = new List<int>(r);
            for (int k = 0; k < r; k++) if (!drop[k]) shape.Add(x.Shape[k]);
            ShapeUtil.CopyReshaped(ctx, x, [.. shape]);
        }
    }

    private sealed class UnsqueezeKernel(long[]? attributeAxes, bool fromInput) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var axes = fromInput ? ShapeUtil.ReadInts(ctx, ctx.Required(1), "axes") : attributeAxes!;
            int outRank = x.Rank + axes.Length;
            var inserted = new bool[outRank];
            foreach (var a in axes)
            {
                int k = ShapeUtil.Axis(ctx, a, outRank, "axis");
                if (inserted[k]) throw ctx.Error($"axes [{string.Join(",", axes)}] name output axis {k} twice");
                inserted[k] = true;
            }
            var shape = new int[outRank];
            for (int k = 0, j = 0; k < outRank; k++) shape[k] = inserted[k] ? 1 : x.Shape[j++];
            ShapeUtil.CopyReshaped(ctx, x, shape);
        }
    }
}
