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

    private sealed class Kernel : QuantBinaryKernel
    {
        private readonly long _a, _b;
        private readonly int _n;

        public Kernel(KernelSetup s, bool subtract) : base(s)
        {
            long a = s.Node.GetInt("a_multiplier", -1), b = s.Node.GetInt("b_multiplier", -1), n = s.Node.GetInt("shift", -1);
            if (a < 0 || a > int.MaxValue || b < 0 || b > int.MaxValue)
                throw s.Error($"a_multiplier {a} and b_multiplier {b} must be given and lie in [0, 2^31)");
            if (n < 0 || n > Requantize.MaxShift) throw s.Error($"shift {n} must be given and lie in [0, {Requantize.MaxShift}]");
            (_a, _b, _n) = (a, subtract ? -b : b, (int)n);
        }

        protected override Chunk Prepare(KernelContext ctx, Tensor a, Tensor b) => (va, vb, _, y, at) =>
        {
            // va ← A·va ± B·vb, exact: |A·(q − z)| < 2^47.
            QuantBuildOps.MultiplyAdd(va, _a, vb, _b);
            QuantBuildOps.Store(va, 1, _n, Y.Zy, Y.Lo, Y.Hi, y, at);
        };
    }
}
