using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Expand(input, shape): copies the input broadcast to broadcast(input.shape, shape) (numpy rules in
/// both directions, so a 1 in <c>shape</c> keeps the input's dimension). Any element type.
/// </summary>
[KernelFamily]
internal static class ExpandKernels
{
    public static void Register(KernelRegistry r) => r.Add("Expand", 8, _ => new ExpandKernel());

    private sealed class ExpandKernel : IKernel
    {
        private readonly BroadcastPlanCache _cache = new();

        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var s = ctx.Required(1);
            if (s.Type != ElementType.Int64) throw ctx.Error($"shape must be int64, not {s.Type.OnnxName()}");
            if (s.Rank != 1) throw ctx.Error($"shape must be a 1-D tensor, got rank {s.Rank}");
            var target = new int[s.Length];
            var sv = s.ReadOnlySpan<long>();
            for (int i = 0; i < target.Length; i++)
            {
                if (sv[i] < 0 || sv[i] > int.MaxValue) throw ctx.Error($"shape[{i}] = {sv[i]} is not a valid dimension");
                target[i] = (int)sv[i];
            }
            var outShape = Broadcast.TryShape([x.Shape, target], out var error) ?? throw ctx.Error(error!);
            var plan = _cache.Get(outShape, x.Shape);
            var y = ctx.Output(0, x.Type, outShape);
            var v = new Copy { Ctx = ctx, Plan = plan, X = x.Buffer, Y = y.Buffer };
            if (!ElementDispatch.Any(x.Type, ref v)) throw ctx.Error($"element type {x.Type.OnnxName()} is not supported");
        }

        private struct Copy : IAnyVisitor
        {
            public KernelContext Ctx;
            public BroadcastPlan Plan;
            public Array X, Y;

            public readonly void Visit<T>()
            {
                var x = (T[])X; var y = (T[])Y;
                bool step = Plan.InnerSteps[0];
                Plan.Run(Ctx, (o, len, offs) =>
                {
                    if (step) Array.Copy(x, offs[0], y, o, len);
                    else y.AsSpan(o, len).Fill(x[offs[0]]);
                });
            }
        }
    }
}
