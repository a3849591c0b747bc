using Quant.Onnx;
using Quant.Runtime;

namespace Quant.Core.Compilation;

/// <summary>
/// The latency estimate: per op, t = overhead + max(MACs / MAC rate of its operand type, bytes moved / bandwidth)
/// (a roofline with a fixed per-op cost). MACs count the multiply-accumulates of Conv, ConvTranspose, MatMul and Gemm
/// (float and the quant.build integer forms); every other op is costed by the bytes it reads and writes.
/// </summary>
internal static class CostModel
{
    /// <summary>
    /// Measured on the build machine (2 cores, AVX-512F, AVX-VNNI) on 2026-12-05 with the engine's own kernels at its
    /// default thread count: <c>dotnet run -c Release --project benchmarks/Quant.Engine.Benchmarks -- costmodel</c>
    /// (CostModelCalibration.cs: float Conv 3x3 64→64 at 80x80 and 16→16 at 160x160, 1x1 128→128 at 80x80 and 16→32 at
    /// 160x160, depthwise 3x3 at 128x80x80 and 32x160x160, the int8 and int16 GEMMs of an im2col'd 3x3 conv split over
    /// the cores, a float Add of 2 x 6.5 MB, 200 tiny unfused Relu
    /// nodes; each the best of 5 passes of the fastest of 40 runs, because other jobs shared the cores).
    /// The integer rates are the raw GEMMs, without the QConv kernel's im2col and requantization: redo with QConv.
    /// </summary>
    public static readonly QbmCostModel Measured = new(
        FloatGmacPerSecond: 97.47,
        DepthwiseGmacPerSecond: 27.55,
        Int8GmacPerSecond: 164.12,
        Int16GmacPerSecond: 19.05,
        GigabytesPerSecond: 57.62,
        OpOverheadMicroseconds: 0.07);

    public static QbmOpCost Estimate(QbmOp op, IReadOnlyList<QbmValue> values, QbmCostModel m)
    {
        long read = op.Inputs.Where(i => i >= 0).Sum(i => MemoryPlanner.Bytes(values[i]));
        long written = op.Outputs.Where(o => o >= 0).Sum(o => MemoryPlanner.Bytes(values[o]));
        var (macs, depthwise) = Macs(op, values);
        var type = macs > 0 ? values[op.Inputs[0]].Type : ElementType.Undefined;
        double rate = type switch
        {
            ElementType.Int8 or ElementType.UInt8 => m.Int8GmacPerSecond,
            ElementType.Int16 or ElementType.UInt16 => m.Int16GmacPerSecond,
            _ => depthwise ? m.DepthwiseGmacPerSecond : m.FloatGmacPerSecond,
        };
        double computeUs = macs / (rate * 1e3);
        double memoryUs = (read + written) / (m.GigabytesPerSecond * 1e3);
        return new QbmOpCost(macs, type, read, written, m.OpOverheadMicroseconds + Math.Max(computeUs, memoryUs));
    }

    private static (long Macs, bool Depthwise) Macs(QbmOp op, IReadOnlyList<QbmValue> values)
    {
        long[]? Dims(int k) => k < op.Inputs.Length && op.Inputs[k] >= 0 ? values[op.Inputs[k]].Dims : null;
        long Count(long[] d) => d.Aggregate(1L, (a, x) => a * x);
        var outDims = op.Outputs.Length > 0 && op.Outputs[0] >= 0 ? values[op.Outputs[0]].Dims : null;
        if (outDims is null || Dims(0) is not { } x || Dims(1) is not { } w || w.Length == 0 || w[0] == 0) return (0, false);
        long group = op.Attributes.FirstOrDefault(a => a.Name == "group")?.Int ?? 1;
        switch (op.OpType)
        {
            case "Conv" or "QConv":
                return (Count(outDims) * (Count(w) / w[0]), group > 1 && x.Length > 1 && group == x[1]);
            case "ConvTranspose" or "QConvTranspose":
                return (Count(x) * (Count(w) / w[0]), group > 1 && x.Length > 1 && group == x[1]);
            case "MatMul" or "QMatMul" or "MatMulInteger" when x.Length > 0:
                return (Count(outDims) * x[^1], false);
            case "Gemm" or "QGemm" when x.Length == 2:
                bool transA = (op.Attributes.FirstOrDefault(a => a.Name == "transA")?.Int ?? 0) != 0;
                return (Count(outDims) * (transA ? x[0] : x[1]), false);
            default:
                return (0, false);
        }
    }
}
