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

    private sealed class Kernel(KernelSetup s) : QuantBinaryKernel(s)
    {
        protected override Chunk Prepare(KernelContext ctx, Tensor a, Tensor b)
        {
            var (m, n) = QuantBuildOps.Multipliers(ctx, 2);
            if (m.Length != 1) throw ctx.Error($"QMul is per tensor: multiplier has {m.Length} entries, not 1");
            bool narrow = QuantBuildOps.MaxMagnitude(a.Type, Za) * QuantBuildOps.MaxMagnitude(b.Type, Zb) <= 1L << 31;
            return (va, vb, _, y, at) =>
            {
                QuantBuildOps.Multiply(va, vb);
                if (narrow) QuantBuildOps.Store(va, m[0], n[0], Y.Zy, Y.Lo, Y.Hi, y, at);
                else QuantBuildOps.StoreWide(va, m[0], n[0], Y.Zy, Y.Lo, Y.Hi, y, at);
            };
        }
    }
}
