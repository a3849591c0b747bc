using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Concat: inputs of one type and rank, equal except along <c>axis</c> (negative counts from the end;
/// opset 1 defaults it to 1), joined in input order along that axis. Zero-length inputs contribute nothing.
/// Each input is one strided box copy: for every outer index its contiguous block of
/// d_axis * prod(d[axis+1..]) elements goes to its offset in the output row.
/// </summary>
[KernelFamily]
internal static class ConcatKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("Concat", 1, s => new ConcatKernel(s.Node.GetInt("axis", 1)));
        r.Add("Concat", 4, s => new ConcatKernel(s.Node.Has("axis") ? s.Node.GetInt("axis", 0) : throw s.Error("attribute 'axis' is required")));
    }

    private sealed class ConcatKernel(long axis) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            if (ctx.InputCount == 0) throw ctx.Error("Concat needs at least one input");
            var first = ctx.Required(0);
            int r = first.Rank;
            if (r == 0) throw ctx.Error("cannot concatenate scalars (rank 0)");
            int a = ShapeUtil.Axis(ctx, axis, r);
            var outShape = (int[])first.Shape.Clone();
            long total = 0;
            for (int i = 0; i < ctx.InputCount; i++)
            {
                var t = ctx.Required(i);
                if (t.Type != first.Type) throw ctx.Error($"input {i} is {t.Type.OnnxName()} but input 0 is {first.Type.OnnxName()}");
                if (t.Rank != r) throw ctx.Error($"input {i} has rank {t.Rank} but input 0 has rank {r}");
                for (int k = 0; k < r; k++)
                    if (k != a && t.Shape[k] != first.Shape[k])
                        throw ctx.Error($"input {i} has shape {ShapeUtil.Format(t.Shape)}, which differs from input 0's {ShapeUtil.Format(first.Shape)} outside axis {a}");
                total += t.Shape[a];
            }
            if (total > int.MaxValue) throw ctx.Error("the concatenated axis is too long");
            outShape[a] = (int)total;
            var y = ctx.Output(0, first.Type, outShape);
            int outer = ShapeUtil.Product(outShape, 0, a);
            int inner = ShapeUtil.Product(outShape, a + 1, r);
            int outBlock = outShape[a] * inner;
            int offset = 0;
            for (int i = 0; i < ctx.InputCount; i++)
            {
                var t = ctx.Required(i);
                int block = t.Shape[a] * inner;
                StridedCopy.Run(ctx, t, 0, [block, 1], y, offset, [outBlock, 1], [outer, block]);
                offset += block;
            }
        }
    }
}
