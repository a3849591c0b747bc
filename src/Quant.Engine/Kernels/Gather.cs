using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Gather along <c>axis</c> (default 0, negative counts from the end): with data shape d and indices shape q,
/// y has shape d[..axis] + q + d[axis+1..] and y[o, j, i] = data[o, idx[j], i] where a negative index has
/// d[axis] added; an index outside [-d[axis], d[axis]) is an error. Indices are int32 or int64.
/// </summary>
[KernelFamily]
internal static class GatherKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("Gather", 1, s => new GatherKernel(s.Node.GetInt("axis", 0)));
    }

    private sealed class GatherKernel(long axis) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var data = ctx.Required(0);
            var indices = ctx.Required(1);
            int r = data.Rank;
            if (r == 0) throw ctx.Error("data must have rank 1 or more");
            int a = ShapeUtil.Axis(ctx, axis, r);
            int dim = data.Shape[a];
            var raw = ShapeUtil.ReadInts(ctx, indices, "indices");
            var idx = new int[raw.Length];
            for (int j = 0; j < raw.Length; j++)
            {
                long v = raw[j];
                if (v < -dim || v >= dim) throw ctx.Error($"index {v} is out of range for axis {a} of length {dim}");
                idx[j] = (int)(v < 0 ? v + dim : v);
            }
            var outShape = new int[r - 1 + indices.Rank];
            data.Shape.AsSpan(0, a).CopyTo(outShape);
            indices.Shape.CopyTo(outShape, a);
            data.Shape.AsSpan(a + 1).CopyTo(outShape.AsSpan(a + indices.Rank));
            var y = ctx.Output(0, data.Type, outShape);
            int outer = ShapeUtil.Product(data.Shape, 0, a);
            int inner = ShapeUtil.Product(data.Shape, a + 1, r);
            switch (Elements.Width(data.Type))
            {
                case 1: Copy<byte>(data, y, idx, outer, dim, inner); break;
                case 2: Copy<ushort>(data, y, idx, outer, dim, inner); break;
                case 4: Copy<uint>(data, y, idx, outer, dim, inner); break;
                case 8: Copy<ulong>(data, y, idx, outer, dim, inner); break;
                default: Copy<string>(data, y, idx, outer, dim, inner); break;
            }
        }

        private static void Copy<T>(Tensor data, Tensor y, int[] idx, int outer, int dim, int inner)
        {
            var src = Elements.View<T>(data);
            var dst = Elements.View<T>(y);
            int n = idx.Length;
            for (int o = 0; o < outer; o++)
            {
                int srcRow = o * dim * inner, dstRow = o * n * inner;
                if (inner == 1)
                {
                    for (int j = 0; j < n; j++) dst[dstRow + j] = src[srcRow + idx[j]];
                }
                else
                {
                    for (int j = 0; j < n; j++)
                        src.Slice(srcRow + idx[j] * inner, inner).CopyTo(dst.Slice(dstRow + j * inner, inner));
                }
            }
        }
    }
}
