using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// <c>quant.build.QDiv</c> (docs/quantized-model.md, spec §6.3): the divisor indexes a multiplier table,
/// <c>y = Rq((a − z_a)·m[q_b − qmin], n[q_b − qmin])</c>, where a negative multiplier carries the divisor's sign.
/// An entry with shift −1 is the zero divisor: qmax for a positive dividend, qmin for a negative one and for 0/0
/// (what Q_T gives the qat run's +∞, −∞ and NaN). A divisor held constant over a run (HardSwish's /6) is one
/// multiplier for the whole run and takes the span path.
/// </summary>
[KernelFamily]
internal static class QDivKernels
{
    public static void Register(KernelRegistry r) => r.Add("QDiv", 1, s => new Kernel(s), QuantBuildOps.Domain);

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
            var (m, n) = QuantBuildOps.Multipliers(ctx, 2, signedAllowed: true);
            var (bmin, bmax) = QuantBuildOps.RangeOf(b.Type);
            if (m.Length != bmax - bmin + 1)
                throw ctx.Error($"the multiplier table has {m.Length} entries; a {b.Type.OnnxName()} divisor needs {bmax - bmin + 1}");
            var (qmin, qmax) = Requantize.Range(_to);
            BroadcastPlan plan;
            try { plan = _plans.Get(null, a.Shape, b.Shape); }
            catch (ArgumentException e) { throw ctx.Error(e.Message); }
            var y = ctx.Output(0, _to, plan.OutShape);
            plan.Run(ctx, (outOffset, length, offsets) =>
            {
                Span<long> va = stackalloc long[QuantBuildOps.Chunk];
                for (int done = 0; done < length; done += QuantBuildOps.Chunk)
                {
                    int len = Math.Min(QuantBuildOps.Chunk, length - done);
                    QuantBuildOps.Load(a, offsets[0] + (plan.InnerSteps[0] ? done : 0), len, plan.InnerSteps[0], _za, va);
                    if (!plan.InnerSteps[1])
                    {
                        int e = (int)(QuantBuildOps.Element(b, offsets[1]) - bmin);
                        if (n[e] >= 0) { QuantBuildOps.Store(va[..len], m[e], n[e], _zy, _lo, _hi, y, outOffset + done); continue; }
                    }
                    for (int i = 0; i < len; i++)
                    {
                        int e = (int)(QuantBuildOps.Element(b, offsets[1] + (plan.InnerSteps[1] ? done + i : 0)) - bmin);
                        long r = n[e] < 0
                            ? (va[i] > 0 ? qmax : qmin)
                            : Requantize.RoundShift(va[i] * m[e], n[e]) + _zy;
                        QuantBuildOps.Set(y, outOffset + done + i, Math.Clamp(Math.Clamp(r, qmin, qmax), _lo, _hi));
                    }
                }
            });
        }
    }
}
