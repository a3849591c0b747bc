using System.Numerics.Tensors;
using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// <c>quant.build.QMul</c> (docs/quantized-model.md, spec §6.2): <c>y = Rq((a − z_a)·(b − z_b); m, n, z_y)</c> per
/// tensor, ONNX broadcasting. The product is exact in int64; when it stays within 2^31 (every 8-bit pair, symmetric
/// int16) the int64 span path requantizes it, else the 128-bit scalar path.
/// </summary>
[KernelFamily]
internal static class QMulKernels
{
    public static void Register(KernelRegistry r) => r.Add("QMul", 1, s => new Kernel(s), QuantBuildOps.Domain);

    private sealed class Kernel : IKernel
    {
        private readonly int _za, _zb, _zy, _lo, _hi;
        private readonly ElementType _to;
        private readonly BroadcastPlanCache _plans = new();

        public Kernel(KernelSetup s)
        {
            _to = QuantBuildOps.OutputType(s);
            _zy = QuantBuildOps.ZeroPoint(s, "y_zero_point", _to);
            (_lo, _hi) = QuantBuildOps.Clamp(s, _to);
            _za = (int)s.Node.GetInt("a_zero_point", 0);
            _zb = (int)s.Node.GetInt("b_zero_point", 0);
        }

        public void Run(KernelContext ctx)
        {
            var a = ctx.Required(0);
            var b = ctx.Required(1);
            QuantBuildOps.RequireQuantized(ctx, a, "A");
            QuantBuildOps.RequireQuantized(ctx, b, "B");
            var (m, n) = QuantBuildOps.Multipliers(ctx, 2);
            if (m.Length != 1) throw ctx.Error($"QMul is per tensor: multiplier has {m.Length} entries, not 1");
            BroadcastPlan plan;
            try { plan = _plans.Get(null, a.Shape, b.Shape); }
            catch (ArgumentException e) { throw ctx.Error(e.Message); }
            bool narrow = QuantBuildOps.MaxMagnitude(a.Type, _za) * QuantBuildOps.MaxMagnitude(b.Type, _zb) <= 1L << 31;
            var y = ctx.Output(0, _to, plan.OutShape);
            plan.Run(ctx, (outOffset, length, offsets) =>
            {
                Span<long> va = stackalloc long[QuantBuildOps.Chunk];
                Span<long> vb = stackalloc long[QuantBuildOps.Chunk];
                for (int done = 0; done < length; done += QuantBuildOps.Chunk)
                {
                    int len = Math.Min(QuantBuildOps.Chunk, length - done);
                    QuantBuildOps.Load(a, offsets[0] + (plan.InnerSteps[0] ? done : 0), len, plan.InnerSteps[0], _za, va);
                    QuantBuildOps.Load(b, offsets[1] + (plan.InnerSteps[1] ? done : 0), len, plan.InnerSteps[1], _zb, vb);
                    TensorPrimitives.Multiply(va[..len], vb[..len], va);
                    if (narrow) QuantBuildOps.Store(va[..len], m[0], n[0], _zy, _lo, _hi, y, outOffset + done);
                    else QuantBuildOps.StoreWide(va[..len], m[0], n[0], _zy, _lo, _hi, y, outOffset + done);
                }
            });
        }
    }
}
