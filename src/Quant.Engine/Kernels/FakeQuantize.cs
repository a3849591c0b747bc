using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// A per-tensor QuantizeLinear → DequantizeLinear pair in one pass (<see cref="FakeQuantFusion"/> plans it):
/// <c>y = (q - zp_dq) * scale_dq</c> with <c>q = clamp(round_half_even(x / scale_q), lo, hi) + zp_q</c>, the integer q
/// kept in a register instead of being written to an int8/int16 tensor and read back. Each lane does exactly the
/// arithmetic of <see cref="QuantizeRun"/> followed by <see cref="DequantizeRun"/> (true division, NaN to qmin,
/// saturation, round half to even, one rounding in the product), so the result is bit-identical to the two kernels.
/// Inputs: x, the quantizer's scale and zero point, the dequantizer's scale and zero point (one element each; the
/// planner fuses only such pairs). The integer type is the zero points'.
/// </summary>
internal sealed class FakeQuantizeKernel : IKernel
{
    public void Run(KernelContext ctx)
    {
        var x = ctx.Required(0);
        if (x.Type != ElementType.Float) throw ctx.Error($"fake quantization expects a float input, got {x.Type.OnnxName()}");
        var p = FakeQuantParams.Of(ctx.Required(1), ctx.Required(2), ctx.Required(3), ctx.Required(4));
        var y = ctx.Output(0, ElementType.Float, x.Shape);
        ElementwiseChunk.For(ctx, x.Length, (start, end) =>
            FakeQuantRun.Run(x.ReadOnlySpan<float>()[start..end], p, y.Span<float>()[start..end]));
    }
}

/// <summary>The constants of one fused pair: the quantizer's scale, zero point and range, the dequantizer's scale and zero point.</summary>
internal readonly record struct FakeQuantParams(float Scale, int ZeroPoint, int QMin, int QMax, float DqScale, int DqZeroPoint)
{
    public static FakeQuantParams Of(Tensor scale, Tensor zeroPoint, Tensor dqScale, Tensor dqZeroPoint)
    {
        var (qmin, qmax) = QuantizeLinearKernels.Range(zeroPoint.Type);
        return new FakeQuantParams(scale.ReadOnlySpan<float>()[0], FirstInt(zeroPoint), qmin, qmax, dqScale.ReadOnlySpan<float>()[0], FirstInt(dqZeroPoint));
    }

    internal static int FirstInt(Tensor zp) => zp.Type switch
    {
        ElementType.UInt8 => zp.ReadOnlySpan<byte>()[0],
        ElementType.Int8 => zp.ReadOnlySpan<sbyte>()[0],
        ElementType.UInt16 => zp.ReadOnlySpan<ushort>()[0],
        ElementType.Int16 => zp.ReadOnlySpan<short>()[0],
        _ => throw new NotSupportedException($"{zp.Type.OnnxName()} is not a quantized type"),
    };
}

/// <summary>The fused pair's arithmetic for one run of elements; the vector paths and <see cref="Scalar"/> agree exactly.</summary>
internal static class FakeQuantRun
{
    /// <summary>One element: the quantize kernel's integer, then the dequantize kernel's product.</summary>
    public static float Scalar(float x, in FakeQuantParams p) =>
        DequantizeRun.Scalar(QuantizeRun.Scalar(x, p.Scale, p.ZeroPoint, p.QMin, p.QMax), p.DqScale, p.DqZeroPoint);

    public static void Run(ReadOnlySpan<float> x, in FakeQuantParams p, Span<float> y)
    {
        int i = 0;
        if (Avx512F.IsSupported) i = Run512(x, p, y);
        else if (Vector256.IsHardwareAccelerated) i = Run256(x, p, y);
        for (; i < x.Length; i++) y[i] = Scalar(x[i], p);
    }

    /// <summary>
    /// Sixteen lanes: as QuantizeRun's AVX-512 body (the conversion rounds half to even in the default MXCSR mode), then
    /// q - zp_dq in integers and one float product, as DequantizeRun's (q - zp is exact in float either way).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int Run512(ReadOnlySpan<float> x, in FakeQuantParams p, Span<float> y)
    {
        var s = Vector512.Create(p.Scale);
        var lo = Vector512.Create((float)(p.QMin - p.ZeroPoint));
        var hi = Vector512.Create((float)(p.QMax - p.ZeroPoint));
        var shift = Vector512.Create(p.ZeroPoint - p.DqZeroPoint);
        var ds = Vector512.Create(p.DqScale);
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        int i = 0;
        for (; i <= x.Length - 16; i += 16)
        {
            var v = Vector512.LoadUnsafe(ref xr, (nuint)i) / s;
            v = Vector512.ConditionalSelect(Vector512.Equals(v, v), v, lo);
            v = Vector512.Min(Vector512.Max(v, lo), hi);
            var q = Avx512F.ConvertToVector512Int32(v) + shift; // (q_int - zp_q) + zp_q - zp_dq
            (Avx512F.ConvertToVector512Single(q) * ds).StoreUnsafe(ref yr, (nuint)i);
        }
        return i;
    }

    /// <summary>Eight lanes, as QuantizeRun's Vector256 body (Round is half to even) and the dequantize product.</summary>
    private static int Run256(ReadOnlySpan<float> x, in FakeQuantParams p, Span<float> y)
    {
        var s = Vector256.Create(p.Scale);
        var lo = Vector256.Create((float)(p.QMin - p.ZeroPoint));
        var hi = Vector256.Create((float)(p.QMax - p.ZeroPoint));
        var shift = Vector256.Create(p.ZeroPoint - p.DqZeroPoint);
        var ds = Vector256.Create(p.DqScale);
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        int i = 0;
        for (; i <= x.Length - 8; i += 8)
        {
            var v = Vector256.LoadUnsafe(ref xr, (nuint)i) / s;
            v = Vector256.ConditionalSelect(Vector256.Equals(v, v), v, lo);
            v = Vector256.Min(Vector256.Max(v, lo), hi);
            var q = Vector256.ConvertToInt32(Vector256.Round(v)) + shift;
            (Vector256.ConvertToSingle(q) * ds).StoreUnsafe(ref yr, (nuint)i);
        }
        return i;
    }
}
