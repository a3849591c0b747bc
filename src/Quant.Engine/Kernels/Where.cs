using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Where(condition, X, Y) with numpy broadcasting of all three: out = condition ? x : y, elements
/// copied unchanged (any element type, strings included).
/// </summary>
[KernelFamily]
internal static class WhereKernels
{
    public static void Register(KernelRegistry r) => r.Add("Where", 9, _ => new WhereKernel());

    private sealed class WhereKernel : IKernel
    {
        private readonly BroadcastPlanCache _cache = new();

        public void Run(KernelContext ctx)
        {
            var c = ctx.Required(0);
            var x = ctx.Required(1);
            var y = ctx.Required(2);
            if (c.Type != ElementType.Bool) throw ctx.Error($"condition must be bool, not {c.Type.OnnxName()}");
            if (x.Type != y.Type) throw ctx.Error($"X is {x.Type.OnnxName()} but Y is {y.Type.OnnxName()}");
            var outShape = Broadcast.TryShape([c.Shape, x.Shape, y.Shape], out var error) ?? throw ctx.Error(error!);
            var plan = _cache.Get(outShape, c.Shape, x.Shape, y.Shape);
            var o = ctx.Output(0, x.Type, outShape);
            var v = new Visitor { Ctx = ctx, Plan = plan, C = (bool[])c.Buffer, X = x.Buffer, Y = y.Buffer, O = o.Buffer };
            if (!ElementDispatch.Any(x.Type, ref v)) throw ctx.Error($"element type {x.Type.OnnxName()} is not supported");
        }

        private struct Visitor : IAnyVisitor
        {
            public KernelContext Ctx;
            public BroadcastPlan Plan;
            public bool[] C;
            public Array X, Y, O;

            public readonly void Visit<T>()
            {
                var c = C; var x = (T[])X; var y = (T[])Y; var o = (T[])O;
                var plan = Plan;
                bool sc = plan.InnerSteps[0], sx = plan.InnerSteps[1], sy = plan.InnerSteps[2];
                plan.Run(Ctx, (at, len, offs) =>
                {
                    int ic = offs[0], ix = offs[1], iy = offs[2];
                    if (!sc)
                    {
                        // One condition for the whole run: a straight copy from X or Y.
                        bool pick = c[ic];
                        var src = pick ? x : y;
                        if (pick ? sx : sy) Array.Copy(src, pick ? ix : iy, o, at, len);
                        else o.AsSpan(at, len).Fill(src[pick ? ix : iy]);
                        return;
                    }
                    for (int i = 0; i < len; i++)
                        o[at + i] = c[ic + i] ? x[ix + (sx ? i : 0)] : y[iy + (sy ? i : 0)];
                });
            }
        }
    }
}
