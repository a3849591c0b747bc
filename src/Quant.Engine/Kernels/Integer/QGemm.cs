namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// <c>quant.build</c> QGemm (docs/quantized-model.md): A [M, K] (or [K, M] with transA), B constant ([K, N], or [N, K]
/// with transB), C (int32 bias per column, optional), multiplier, shift; acc = C[n] + Σ_k (a − z_a)·b, then the
/// requantization of <see cref="QGemmOutput"/> along the last axis. alpha and beta are folded into the multiplier and
/// C by convert (spec §4.1). It shares <see cref="QMatMulPlan"/> with QMatMul.
/// </summary>
[KernelFamily]
internal static class QGemmKernels
{
    public static void Register(KernelRegistry r) =>
        r.Add("QGemm", 1, s => new QMatMulKernels.Kernel(new QMatMulPlan(s, gemm: true)), QuantBuildOps.Domain);
}
