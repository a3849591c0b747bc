using System.Numerics.Tensors;
using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// <c>quant.build.QAdd</c> and <c>QSub</c> (docs/quantized-model.md, spec §6.1): one rounding on a shared exponent,
/// <c>y = sat(RoundShift(A·(a − z_a) ± B·(b − z_b), n) + z_y)</c>, ONNX broadcasting. A and B are below 2^31 and
/// |q − z| below 2^16, so the sum stays below 2^48 and int64 lanes hold it exactly.
/// </summary>
[KernelFamily]
internal static class QAddKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("QAdd", 1, s => new Kernel(s, subtract: false), QuantBuildOps.Domain);
        r.Add("QSub", 1, s => new Kernel(s, subtract: true), QuantBuildOps.Domain);
    }

    private sealed class Kernel : IKernel
    {
        private readonly bool _subtract;
        private readonly long _a, _b;
        private readonly int _n, _za, _zb, _zy, _lo, _hi;
        private readonly ElementType _to;
        private readonly BroadcastPlanCache _plans = new();

        public Kernel(KernelSetup s, bool subtract)
        {
            _subtract = subtract;
            _to = QuantBuildOps.OutputType(s);
            _zy = QuantBuildOps.ZeroPoint(s, "y_zero_point", _to);
            (_lo, _hi) = QuantBuildOps.Clamp(s, _to);
            _a = s.Node.GetInt("a_multiplier", -1);
            _b = s.Node.GetInt("b_multiplier", -1);
            long n = s.Node.GetInt("shift", -1);
            if (_a < 0 || _a > int.MaxValue || _b < 0 || _b > int.MaxValue)
                throw s.Error($"a_multiplier {_a} and b_multiplier {_b} must be given and lie in [0, 2^31)");
            if (n < 0 || n > Requantize.MaxShift) throw s.Error($"shift {n} must be given and lie in [0, {Requantize.MaxShift}]");
            _n = (int)n;
            _za = (int)s.Node.GetInt("a_zero_point", 0);
            _zb = (int)s.Node.GetInt("b_zero_point", 0);
        }

        public void Run(KernelContext ctx)
        {
            var a = ctx.Required(0);
            var b = ctx.Required(1);
            QuantBuildOps.RequireQuantized(ctx, a, "A");
            QuantBuildOps.RequireQuantized(ctx, b, "B");
            BroadcastPlan plan;
            try { plan = _plans.Get(null, a.Shape, b.Shape); }
            catch (ArgumentException e) { throw ctx.Error(e.Message); }
            var y = ctx.Output(0, _to, plan.OutShape);
            plan.Run(ctx, (outOffset, length, offsets) =>
            {
                Span<long> va = stackalloc long[QuantBuildOps.Chunk];
                Span<long> vb = stackalloc long[QuantBuildOps.Chunk];
                for (int done = 0; done < length; done += QuantBuildOps.Chunk)
                {
                    int len = Math.Min(QuantBuildOps.Chunk, length - done);
                    int da = plan.InnerSteps[0] ? done : 0, db = plan.InnerSteps[1] ? done : 0;
                    QuantBuildOps.Load(a, offsets[0] + da, len, plan.InnerSteps[0], _za, va);
                    QuantBuildOps.Load(b, offsets[1] + db, len, plan.InnerSteps[1], _zb, vb);
                    Combine(va[..len], vb[..len], _a, _b, _subtract);
                    QuantBuildOps.Store(va[..len], 1, _n, _zy, _lo, _hi, y, outOffset + done);
                }
            });
        }
    }

    /// <summary>va ← A·va ± B·vb (exact: |A·(q − z)| &lt; 2^47).</summary>
    internal static void Combine(Span<long> va, ReadOnlySpan<long> vb, long a, long b, bool subtract)
    {
        TensorPrimitives.Multiply(va, a, va);
        TensorPrimitives.MultiplyAdd(vb, subtract ? -b : b, va, va);
    }
}
