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

    private sealed class Kernel(KernelSetup s) : QuantBinaryKernel(s)
    {
        protected override Chunk Prepare(KernelContext ctx, Tensor a, Tensor b)
        {
            var (m, n) = QuantBuildOps.Multipliers(ctx, 2, signedAllowed: true);
            var (bmin, bmax) = QuantBuildOps.RangeOf(b.Type);
            if (m.Length != bmax - bmin + 1)
                throw ctx.Error($"the multiplier table has {m.Length} entries; a {b.Type.OnnxName()} divisor needs {bmax - bmin + 1}");
            var (qmin, qmax) = Requantize.Range(Y.To);
            return (va, vb, bConstant, y, at) =>
            {
                // vb holds q_b − z_b, so the table index q_b − qmin is vb + z_b − qmin.
                long shift = Zb - bmin;
                if (bConstant && n[vb[0] + shift] >= 0)
                {
                    long e = vb[0] + shift;
                    QuantBuildOps.Store(va, m[e], n[e], Y.Zy, Y.Lo, Y.Hi, y, at);
                    return;
                }
                for (int i = 0; i < va.Length; i++)
                {
                    long e = vb[i] + shift;
                    long r = n[e] < 0 ? (va[i] > 0 ? qmax : qmin) : Requantize.RoundShift(va[i] * m[e], n[e]) + Y.Zy;
                    QuantBuildOps.Set(y, at + i, Math.Clamp(Math.Clamp(r, qmin, qmax), Y.Lo, Y.Hi));
                }
            };
        }
    }
}
