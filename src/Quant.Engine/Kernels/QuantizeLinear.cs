using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// QuantizeLinear and DequantizeLinear, opsets 10 (per-tensor), 13 (<c>axis</c>: per-channel), 19
/// (<c>saturate</c>, float16 scales) and 21 (int16/uint16, <c>block_size</c>, <c>output_dtype</c>).
/// <para>Quantize: <c>y = clamp(round_half_to_even(x / scale) + zero_point, qmin, qmax)</c> for uint8, int8,
/// uint16 and int16 outputs. The division is a true float32 division (not a multiply by 1/scale), as
/// ONNX Runtime's MLAS kernels do, so results match it bit for bit. NaN quantizes to qmin, as MLAS's
/// vector path gives (its MAXPS clamp returns the bound for NaN); +-Inf saturate. Blocks along a non-last axis
/// do the same (ONNX Runtime 1.30 converted them to int32 before clamping, so NaN and +-Inf there came out at the
/// wrong end of the range; 1.32 saturates them like every other layout). float16 inputs and scales are widened to
/// float32 first; int32 inputs (opset 10) are converted to float32.</para>
/// <para>Dequantize: <c>y = float(q - zero_point) * scale</c> for uint8, int8, uint16, int16 and int32 q,
/// computed in float32 with one rounding (the product); a float16 scale gives a float16 output rounded
/// from that float32 product.</para>
/// <para>Layouts: a scalar or one-element scale is per-tensor; a 1-D scale of length <c>shape[axis]</c> is
/// per-axis; with <c>block_size</c> B &gt; 0 the scale has the input's rank and <c>ceil(shape[axis]/B)</c> along
/// <c>axis</c>. The zero point, when given, has the scale's shape; absent, it is 0 of the output type (uint8,
/// or <c>output_dtype</c> from opset 21). float8 and int4 types are not supported.</para>
/// </summary>
[KernelFamily]
internal static class QuantizeLinearKernels
{
    public static void Register(KernelRegistry r)
    {
        foreach (int v in new[] { 10, 13, 19, 21 })
        {
            int opset = v;
            r.Add("QuantizeLinear", opset, s => new Quantize(Layout.Parse(s, opset), OutputDtype(s, opset)));
            r.Add("DequantizeLinear", opset, s => new Dequantize(Layout.Parse(s, opset)));
        }
    }

    private static ElementType? OutputDtype(KernelSetup s, int opset)
    {
        if (opset < 21 || !s.Node.Attributes.TryGetValue("output_dtype", out var a) || a.Int == 0) return null;
        var t = (ElementType)a.Int;
        if (!IsQuantType(t)) throw s.Error($"output_dtype {t.OnnxName()} (code {a.Int}) is not supported; use uint8, int8, uint16 or int16");
        return t;
    }

    internal static bool IsQuantType(ElementType t) => t is ElementType.UInt8 or ElementType.Int8 or ElementType.UInt16 or ElementType.Int16;

    internal static (int Min, int Max) Range(ElementType t) => t switch
    {
        ElementType.UInt8 => (byte.MinValue, byte.MaxValue),
        ElementType.Int8 => (sbyte.MinValue, sbyte.MaxValue),
        ElementType.UInt16 => (ushort.MinValue, ushort.MaxValue),
        ElementType.Int16 => (short.MinValue, short.MaxValue),
        _ => throw new NotSupportedException($"{t.OnnxName()} is not a quantized type"),
    };

    /// <summary>Attributes shared by both ops, and how a scale tensor maps onto the input.</summary>
    private sealed record Layout(int Axis, int BlockSize)
    {
        public static Layout Parse(KernelSetup s, int opset)
        {
            int axis = opset >= 13 ? (int)s.Node.GetInt("axis", 1) : 1;
            int block = opset >= 21 ? (int)s.Node.GetInt("block_size", 0) : 0;
            if (block < 0) throw s.Error($"block_size must not be negative (got {block})");
            return new Layout(axis, block);
        }

        /// <summary>
        /// Splits the input into (outer, axis length, inner) and says how many scale entries there are:
        /// the index of the scale for element (o, a, i) is <c>ParamIndex</c>.
        /// </summary>
        public Plan Resolve(KernelContext ctx, Tensor x, Tensor scale, Tensor? zeroPoint)
        {
            if (zeroPoint is not null && !zeroPoint.Shape.AsSpan().SequenceEqual(scale.Shape))
                throw ctx.Error($"the zero point has shape [{string.Join(",", zeroPoint.Shape)}] but the scale has [{string.Join(",", scale.Shape)}]");
            if (BlockSize == 0 && (scale.Rank == 0 || scale.Length == 1 && scale.Rank == 1))
            {
                if (scale.Length != 1) throw ctx.Error("the scale is empty");
                return new Plan(1, 1, x.Length, 0, PlanKind.PerTensor);
            }
            int axis = Axis < 0 ? Axis + x.Rank : Axis;
            if (axis < 0 || axis >= x.Rank) throw ctx.Error($"axis {Axis} is out of range for a rank-{x.Rank} input");
            int outer = 1, inner = 1;
            for (int d = 0; d < axis; d++) outer *= x.Shape[d];
            for (int d = axis + 1; d < x.Rank; d++) inner *= x.Shape[d];
            int len = x.Shape[axis];
            if (BlockSize == 0)
            {
                if (scale.Rank != 1 || scale.Length != len)
                    throw ctx.Error($"a per-axis scale must be 1-D with {len} entries (input dimension {axis}) but has shape [{string.Join(",", scale.Shape)}]");
                return new Plan(outer, len, inner, 0, PlanKind.PerAxis);
            }
            int blocks = (len + BlockSize - 1) / BlockSize;
            bool ok = scale.Rank == x.Rank;
            for (int d = 0; ok && d < x.Rank; d++)
                ok = scale.Shape[d] == (d == axis ? blocks : x.Shape[d]);
            if (!ok)
                throw ctx.Error($"with block_size {BlockSize} on axis {axis} the scale must have shape " +
                    $"[{string.Join(",", x.Shape.Select((v, d) => d == axis ? blocks : v))}] but has [{string.Join(",", scale.Shape)}]");
            return new Plan(outer, len, inner, blocks, PlanKind.Blocked);
        }
    }

    private enum PlanKind { PerTensor, PerAxis, Blocked }

    private readonly record struct Plan(int Outer, int AxisLength, int Inner, int Blocks, PlanKind Kind);

    private const int PerTensorChunk = 16384;

    /// <summary>
    /// Visits runs of consecutive elements sharing one scale: (start, length, parameter index).
    /// Work is split over threads by runs (or fixed chunks for per-tensor).
    /// </summary>
    private static void ForEachRun(KernelContext ctx, Plan p, int blockSize, Action<int, int, int> run)
    {
        switch (p.Kind)
        {
            case PlanKind.PerTensor:
            {
                int total = p.Inner;
                int chunks = (total + PerTensorChunk - 1) / PerTensorChunk;
                ctx.For(chunks, c =>
                {
                    int start = c * PerTensorChunk;
                    run(start, Math.Min(PerTensorChunk, total - start), 0);
                });
                break;
            }
            case PlanKind.PerAxis:
                ctx.For(p.Outer * p.AxisLength, k => run(k * p.Inner, p.Inner, k % p.AxisLength));
                break;
            default:
                // Along the axis, B rows share a scale row; within a row the scale varies with the inner index.
                ctx.For(p.Outer * p.AxisLength, k =>
                {
                    int o = k / p.AxisLength, a = k % p.AxisLength;
                    int paramRow = (o * p.Blocks + a / blockSize) * p.Inner;
                    if (p.Inner == 1) { run(k, 1, paramRow); return; }
                    for (int i = 0; i < p.Inner; i++) run(k * p.Inner + i, 1, paramRow + i);
                });
                break;
        }
    }

    private static float[] ScalesAsFloat(KernelContext ctx, Tensor scale)
    {
        var f = new float[scale.Length];
        switch (scale.Type)
        {
            case ElementType.Float: scale.ReadOnlySpan<float>().CopyTo(f); break;
            case ElementType.Float16: TensorPrimitives.ConvertToSingle(scale.ReadOnlySpan<Half>(), f); break;
            default: throw ctx.Error($"the scale must be float or float16, not {scale.Type.OnnxName()}");
        }
        return f;
    }

    private static int[] ZeroPointsAsInt(Tensor? zp, int count)
    {
        var z = new int[count];
        if (zp is null) return z;
        switch (zp.Type)
        {
            case ElementType.UInt8: { var s = zp.ReadOnlySpan<byte>(); for (int i = 0; i < count; i++) z[i] = s[i]; break; }
            case ElementType.Int8: { var s = zp.ReadOnlySpan<sbyte>(); for (int i = 0; i < count; i++) z[i] = s[i]; break; }
            case ElementType.UInt16: { var s = zp.ReadOnlySpan<ushort>(); for (int i = 0; i < count; i++) z[i] = s[i]; break; }
            case ElementType.Int16: { var s = zp.ReadOnlySpan<short>(); for (int i = 0; i < count; i++) z[i] = s[i]; break; }
            case ElementType.Int32: zp.ReadOnlySpan<int>().CopyTo(z); break;
        }
        return z;
    }

    private sealed class Quantize(Layout layout, ElementType? outputDtype) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var scale = ctx.Required(1);
            var zp = ctx.Input(2);
            var type = zp?.Type ?? outputDtype ?? ElementType.UInt8;
            if (!IsQuantType(type)) throw ctx.Error($"quantizing to {type.OnnxName()} is not supported; the zero point must be uint8, int8, uint16 or int16");
            if (zp is not null && outputDtype is { } od && od != zp.Type)
                throw ctx.Error($"output_dtype is {od.OnnxName()} but the zero point is {zp.Type.OnnxName()}");
            if (x.Type is not (ElementType.Float or ElementType.Float16 or ElementType.Int32))
                throw ctx.Error($"the input must be float, float16 or int32, not {x.Type.OnnxName()}");
            var plan = layout.Resolve(ctx, x, scale, zp);
            var scales = ScalesAsFloat(ctx, scale);
            var zps = ZeroPointsAsInt(zp, scales.Length);
            var y = ctx.Output(0, type, x.Shape);
            var (qmin, qmax) = Range(type);

            float[]? widened = null;
            if (x.Type != ElementType.Float)
            {
                // Widening first keeps one float path; float16 and int32 inputs are rare (ORT widens float16 too).
                widened = new float[x.Length];
                if (x.Type == ElementType.Float16) TensorPrimitives.ConvertToSingle(x.ReadOnlySpan<Half>(), widened);
                else { var s = x.ReadOnlySpan<int>(); for (int i = 0; i < s.Length; i++) widened[i] = s[i]; }
            }
            ForEachRun(ctx, plan, layout.BlockSize, (start, length, p) =>
            {
                ReadOnlySpan<float> xs = widened is not null ? widened.AsSpan(start, length) : x.ReadOnlySpan<float>().Slice(start, length);
                // The same bits serve signed and unsigned outputs: the clamp already applied the type's range.
                if (type is ElementType.UInt8 or ElementType.Int8)
                    QuantizeRun.Run8(xs, scales[p], zps[p], qmin, qmax, y.Bytes().Slice(start, length));
                else
                    QuantizeRun.Run16(xs, scales[p], zps[p], qmin, qmax, MemoryMarshal.Cast<byte, ushort>(y.Bytes()).Slice(start, length));
            });
        }
    }

    private sealed class Dequantize(Layout layout) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var scale = ctx.Required(1);
            var zp = ctx.Input(2);
            if (!IsQuantType(x.Type) && x.Type != ElementType.Int32)
                throw ctx.Error($"dequantizing {x.Type.OnnxName()} is not supported; the input must be uint8, int8, uint16, int16 or int32");
            if (zp is not null && zp.Type != x.Type)
                throw ctx.Error($"the zero point is {zp.Type.OnnxName()} but the input is {x.Type.OnnxName()}");
            var plan = layout.Resolve(ctx, x, scale, zp);
            var scales = ScalesAsFloat(ctx, scale);
            var zps = ZeroPointsAsInt(zp, scales.Length);
            bool half = scale.Type == ElementType.Float16;
            var y = ctx.Output(0, half ? ElementType.Float16 : ElementType.Float, x.Shape);
            float[]? widened = half ? new float[x.Length] : null;
            ForEachRun(ctx, plan, layout.BlockSize, (start, length, p) =>
                DequantizeRun.Run(x, start, length, scales[p], zps[p], widened is not null ? widened.AsSpan(start, length) : y.Span<float>().Slice(start, length)));
            if (widened is not null) TensorPrimitives.ConvertToHalf(widened, y.Span<Half>());
        }
    }
}

/// <summary>The quantize arithmetic for one run sharing a scale and zero point; vector and scalar paths agree exactly.</summary>
public static class QuantizeRun
{
    /// <summary>One element: NaN to qmin, clamp to the range shifted by the zero point, round half to even, shift back.</summary>
    public static int Scalar(float x, float scale, int zeroPoint, int qmin, int qmax)
    {
        float lo = qmin - zeroPoint, hi = qmax - zeroPoint;
        float v = x / scale;
        if (float.IsNaN(v)) v = lo;
        v = Math.Clamp(v, lo, hi);
        return (int)MathF.Round(v, MidpointRounding.ToEven) + zeroPoint;
    }

    /// <summary>Eight float lanes to int32 lanes with the arithmetic of <see cref="Scalar"/>.</summary>
    private static Vector256<int> Vector(Vector256<float> x, Vector256<float> scale, Vector256<float> lo, Vector256<float> hi, Vector256<int> zp)
    {
        var v = x / scale;
        v = Vector256.ConditionalSelect(Vector256.Equals(v, v), v, lo);
        v = Vector256.Min(Vector256.Max(v, lo), hi);
        return Vector256.ConvertToInt32(Vector256.Round(v)) + zp;
    }

    /// <summary>
    /// Sixteen lanes with AVX-512: the conversion rounds half to even by itself (the default MXCSR mode), which
    /// equals Round-then-truncate on the clamped range.
    /// </summary>
    internal static Vector512<int> Vector(Vector512<float> x, Vector512<float> scale, Vector512<float> lo, Vector512<float> hi, Vector512<int> zp)
    {
        var v = x / scale;
        v = Vector512.ConditionalSelect(Vector512.Equals(v, v), v, lo);
        v = Vector512.Min(Vector512.Max(v, lo), hi);
        return Avx512F.ConvertToVector512Int32(v) + zp;
    }

    /// <summary>
    /// The AVX-512 body for byte or ushort outputs: sixteen elements per step, narrowed by truncation (the
    /// values are already clamped to the type's range). Returns how many elements it wrote.
    /// </summary>
    private static int Run512<T>(ReadOnlySpan<float> x, float scale, int zeroPoint, int qmin, int qmax, Span<T> y) where T : unmanaged
    {
        var s = Vector512.Create(scale);
        var lo = Vector512.Create((float)(qmin - zeroPoint));
        var hi = Vector512.Create((float)(qmax - zeroPoint));
        var z = Vector512.Create(zeroPoint);
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref T yr = ref MemoryMarshal.GetReference(y);
        int i = 0;
        for (; i <= x.Length - 16; i += 16)
        {
            var q = Vector(Vector512.LoadUnsafe(ref xr, (nuint)i), s, lo, hi, z);
            if (typeof(T) == typeof(byte)) Avx512F.ConvertToVector128Byte(q).StoreUnsafe(ref Unsafe.As<T, byte>(ref yr), (nuint)i);
            else Avx512F.ConvertToVector256UInt16(q.AsUInt32()).StoreUnsafe(ref Unsafe.As<T, ushort>(ref yr), (nuint)i);
        }
        return i;
    }

    /// <summary>8-bit outputs (uint8 or int8 as bytes): the clamped values fit, so truncating narrows are exact.</summary>
    public static void Run8(ReadOnlySpan<float> x, float scale, int zeroPoint, int qmin, int qmax, Span<byte> y)
    {
        int i = 0;
        if (Avx512F.IsSupported && x.Length >= 16)
            i = Run512(x, scale, zeroPoint, qmin, qmax, y);
        else if (Vector256.IsHardwareAccelerated && x.Length >= 32)
        {
            var s = Vector256.Create(scale);
            var lo = Vector256.Create((float)(qmin - zeroPoint));
            var hi = Vector256.Create((float)(qmax - zeroPoint));
            var z = Vector256.Create(zeroPoint);
            for (; i <= x.Length - 32; i += 32)
            {
                var a = Vector(Vector256.Create(x.Slice(i, 8)), s, lo, hi, z);
                var b = Vector(Vector256.Create(x.Slice(i + 8, 8)), s, lo, hi, z);
                var c = Vector(Vector256.Create(x.Slice(i + 16, 8)), s, lo, hi, z);
                var d = Vector(Vector256.Create(x.Slice(i + 24, 8)), s, lo, hi, z);
                var bytes = Vector256.Narrow(Vector256.Narrow(a, b), Vector256.Narrow(c, d)).AsByte();
                bytes.CopyTo(y.Slice(i, 32));
            }
        }
        for (; i < x.Length; i++) y[i] = unchecked((byte)Scalar(x[i], scale, zeroPoint, qmin, qmax));
    }

    /// <summary>16-bit outputs (uint16 or int16 as ushort).</summary>
    public static void Run16(ReadOnlySpan<float> x, float scale, int zeroPoint, int qmin, int qmax, Span<ushort> y)
    {
        int i = 0;
        if (Avx512F.IsSupported && x.Length >= 16)
            i = Run512(x, scale, zeroPoint, qmin, qmax, y);
        else if (Vector256.IsHardwareAccelerated && x.Length >= 16)
        {
            var s = Vector256.Create(scale);
            var lo = Vector256.Create((float)(qmin - zeroPoint));
            var hi = Vector256.Create((float)(qmax - zeroPoint));
            var z = Vector256.Create(zeroPoint);
            for (; i <= x.Length - 16; i += 16)
            {
                var a = Vector(Vector256.Create(x.Slice(i, 8)), s, lo, hi, z);
                var b = Vector(Vector256.Create(x.Slice(i + 8, 8)), s, lo, hi, z);
                Vector256.Narrow(a, b).AsUInt16().CopyTo(y.Slice(i, 16));
            }
        }
        for (; i < x.Length; i++) y[i] = unchecked((ushort)Scalar(x[i], scale, zeroPoint, qmin, qmax));
    }
}

/// <summary>The dequantize arithmetic for one run: <c>float(q - zp) * scale</c>.</summary>
internal static class DequantizeRun
{
    /// <remarks>Dispatches on the tensor's element type, not its array: the CLR lets an sbyte[] pass as a byte[].</remarks>
    public static void Run(Tensor src, int start, int length, float scale, int zeroPoint, Span<float> y)
    {
        if (Avx512F.IsSupported && src.Type != ElementType.Int32)
        {
            Run512(src, start, length, scale, zeroPoint, y);
            return;
        }
        switch (src.Type)
        {
            // For 8/16-bit q, float(q) - float(zp) is exact, so widening then subtracting in float equals the integer difference.
            case ElementType.UInt8: TensorPrimitives.ConvertChecked<byte, float>(src.ReadOnlySpan<byte>().Slice(start, length), y); break;
            case ElementType.Int8: TensorPrimitives.ConvertChecked<sbyte, float>(src.ReadOnlySpan<sbyte>().Slice(start, length), y); break;
            case ElementType.UInt16: TensorPrimitives.ConvertChecked<ushort, float>(src.ReadOnlySpan<ushort>().Slice(start, length), y); break;
            case ElementType.Int16: TensorPrimitives.ConvertChecked<short, float>(src.ReadOnlySpan<short>().Slice(start, length), y); break;
            case ElementType.Int32:
            {
                // int32: subtract in integers first (wrapping, as ONNX Runtime's int32 arithmetic does), then convert.
                var s = src.ReadOnlySpan<int>().Slice(start, length);
                for (int i = 0; i < s.Length; i++) y[i] = unchecked(s[i] - zeroPoint);
                TensorPrimitives.Multiply(y, scale, y);
                return;
            }
        }
        if (zeroPoint != 0) TensorPrimitives.Subtract(y, zeroPoint, y);
        TensorPrimitives.Multiply(y, scale, y);
    }

    /// <summary>
    /// 8/16-bit q in one pass with AVX-512: sign- or zero-extend sixteen values to int32, convert (exact), subtract
    /// the zero point (exact), multiply by the scale (the one rounding) — the same arithmetic as the path above.
    /// </summary>
    private static void Run512(Tensor src, int start, int length, float scale, int zeroPoint, Span<float> y)
    {
        switch (src.Type)
        {
            case ElementType.UInt8: Run512(src.ReadOnlySpan<byte>().Slice(start, length), scale, zeroPoint, y); break;
            case ElementType.Int8: Run512(src.ReadOnlySpan<sbyte>().Slice(start, length), scale, zeroPoint, y); break;
            case ElementType.UInt16: Run512(src.ReadOnlySpan<ushort>().Slice(start, length), scale, zeroPoint, y); break;
            case ElementType.Int16: Run512(src.ReadOnlySpan<short>().Slice(start, length), scale, zeroPoint, y); break;
        }
    }

    private static void Run512<T>(ReadOnlySpan<T> q, float scale, int zeroPoint, Span<float> y) where T : unmanaged
    {
        var s = Vector512.Create(scale);
        var z = Vector512.Create((float)zeroPoint);
        ref T qr = ref MemoryMarshal.GetReference(q);
        ref float yr = ref MemoryMarshal.GetReference(y);
        int i = 0;
        for (; i <= q.Length - 16; i += 16)
            ((Avx512F.ConvertToVector512Single(Widen(ref Unsafe.Add(ref qr, i))) - z) * s).StoreUnsafe(ref yr, (nuint)i);
        for (; i < q.Length; i++) y[i] = (ToFloat(q[i]) - zeroPoint) * scale;
    }

    /// <summary>Sixteen 8- or 16-bit values sign- or zero-extended to int32 (the type checks fold away per T).</summary>
    private static Vector512<int> Widen<T>(ref T at) where T : unmanaged
    {
        if (typeof(T) == typeof(byte)) return Avx512F.ConvertToVector512Int32(Vector128.LoadUnsafe(ref Unsafe.As<T, byte>(ref at)));
        if (typeof(T) == typeof(sbyte)) return Avx512F.ConvertToVector512Int32(Vector128.LoadUnsafe(ref Unsafe.As<T, sbyte>(ref at)));
        if (typeof(T) == typeof(ushort)) return Avx512F.ConvertToVector512Int32(Vector256.LoadUnsafe(ref Unsafe.As<T, ushort>(ref at)));
        return Avx512F.ConvertToVector512Int32(Vector256.LoadUnsafe(ref Unsafe.As<T, short>(ref at)));
    }

    private static float ToFloat<T>(T v) where T : unmanaged =>
        typeof(T) == typeof(byte) ? (byte)(object)v : typeof(T) == typeof(sbyte) ? (sbyte)(object)v
        : typeof(T) == typeof(ushort) ? (ushort)(object)v : (short)(object)v;

    /// <summary>One element, for cross-checking the span path.</summary>
    public static float Scalar(int q, float scale, int zeroPoint) => unchecked(q - zeroPoint) * scale;
}
