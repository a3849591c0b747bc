using System.Buffers;
using System.Globalization;
using System.Numerics.Tensors;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Cast (1: <c>to</c> as a type name; 6: <c>to</c> as a TensorProto.DataType code) and CastLike (15: the type
/// of input 1) between float, float16, bfloat16, double, int8..int64, uint8..uint64, bool and string.
/// Float to float rounds to nearest even (float to bfloat16 as well, as ONNX Runtime does). Float to integer
/// truncates toward zero; NaN and values outside the target range give what ONNX Runtime and numpy give on
/// x86-64: int32 and int64 become their minimum value, int8/uint8/int16/uint16 wrap the int32 result,
/// uint32 wraps the int64 result. Integer to integer wraps (two's complement). Anything to bool is x != 0
/// (NaN is true); bool is 0 or 1. Strings parse as decimal or scientific numbers, with "INF", "+INF", "-INF",
/// "NaN" (any case); numbers print as their shortest round-trip text ("0.039187793", "1e-05", "INF").
/// </summary>
[KernelFamily]
internal static class CastKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("Cast", 1, s => new CastKernel(TargetType(s)));
        r.Add("CastLike", 15, _ => new CastKernel(null));
    }

    private static ElementType TargetType(KernelSetup s)
    {
        if (!s.Node.Attributes.TryGetValue("to", out var to)) throw s.Error("attribute 'to' is required");
        ElementType t;
        if (to.Kind == AttributeKind.String)
        {
            if (!Enum.TryParse(to.String, ignoreCase: true, out t) || int.TryParse(to.String, out _))
                throw s.Error($"'to' names an unknown type '{to.String}'");
        }
        else t = (ElementType)to.Int;
        if (!Supported(t)) throw s.Error($"cannot cast to {t.OnnxName()} (type code {(int)t})");
        return t;
    }

    private static bool Supported(ElementType t) => t is ElementType.Float or ElementType.Float16 or ElementType.BFloat16 or ElementType.Double
        or ElementType.Int8 or ElementType.UInt8 or ElementType.Int16 or ElementType.UInt16 or ElementType.Int32 or ElementType.UInt32
        or ElementType.Int64 or ElementType.UInt64 or ElementType.Bool or ElementType.String;

    private sealed class CastKernel(ElementType? to) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var target = to ?? ctx.Required(1).Type;
            if (!Supported(target)) throw ctx.Error($"cannot cast to {target.OnnxName()}");
            var y = ctx.Output(0, target, x.Shape);
            Convert(x, y);
        }
    }

    /// <summary>Converts every element of <paramref name="src"/> into <paramref name="dst"/> (same length).</summary>
    internal static void Convert(Tensor src, Tensor dst)
    {
        int n = src.Length;
        if (src.Type == dst.Type && src.Type == ElementType.String) { Array.Copy(src.Buffer, dst.Buffer, n); return; }
        if (src.Type == dst.Type) { src.Bytes().CopyTo(dst.Bytes()); return; }
        if (src.Type == ElementType.String) { FromStrings(src.Strings(), dst); return; }
        if (dst.Type == ElementType.String) { ToStrings(src, dst.Strings()); return; }
        switch (src.Type, dst.Type)
        {
            case (ElementType.Float, ElementType.Float16):
                TensorPrimitives.ConvertToHalf(src.ReadOnlySpan<float>(), dst.Span<Half>());
                return;
            case (ElementType.Float16, ElementType.Float):
                TensorPrimitives.ConvertToSingle(src.ReadOnlySpan<Half>(), dst.Span<float>());
                return;
            case (ElementType.Float, ElementType.Double):
            {
                var s = src.ReadOnlySpan<float>(); var d = dst.Span<double>();
                for (int i = 0; i < n; i++) d[i] = s[i];
                return;
            }
            case (ElementType.Double, ElementType.Float):
            {
                var s = src.ReadOnlySpan<double>(); var d = dst.Span<float>();
                for (int i = 0; i < n; i++) d[i] = (float)s[i];
                return;
            }
            case (ElementType.Int64, ElementType.Int32):
            {
                var s = src.ReadOnlySpan<long>(); var d = dst.Span<int>();
                for (int i = 0; i < n; i++) d[i] = unchecked((int)s[i]);
                return;
            }
            case (ElementType.Int32, ElementType.Int64):
            {
                var s = src.ReadOnlySpan<int>(); var d = dst.Span<long>();
                for (int i = 0; i < n; i++) d[i] = s[i];
                return;
            }
        }

        if (IsFloating(src.Type))
        {
            var tmp = ArrayPool<double>.Shared.Rent(n);
            try
            {
                var v = tmp.AsSpan(0, n);
                ReadFloating(src, v);
                WriteFromDouble(v, dst);
            }
            finally { ArrayPool<double>.Shared.Return(tmp); }
        }
        else
        {
            var tmp = ArrayPool<long>.Shared.Rent(n);
            try
            {
                var v = tmp.AsSpan(0, n);
                ReadIntegral(src, v);
                WriteFromInteger(v, src.Type == ElementType.UInt64, dst);
            }
            finally { ArrayPool<long>.Shared.Return(tmp); }
        }
    }

    private static bool IsFloating(ElementType t) => t is ElementType.Float or ElementType.Double or ElementType.Float16 or ElementType.BFloat16;

    private static void ReadFloating(Tensor src, Span<double> v)
    {
        switch (src.Type)
        {
            case ElementType.Float: { var s = src.ReadOnlySpan<float>(); for (int i = 0; i < v.Length; i++) v[i] = s[i]; break; }
            case ElementType.Double: src.ReadOnlySpan<double>().CopyTo(v); break;
            case ElementType.Float16: { var s = src.ReadOnlySpan<Half>(); for (int i = 0; i < v.Length; i++) v[i] = (double)s[i]; break; }
            case ElementType.BFloat16: { var s = src.ReadOnlySpan<ushort>(); for (int i = 0; i < v.Length; i++) v[i] = BFloat16ToFloat(s[i]); break; }
        }
    }

    /// <summary>Integer and bool sources as 64-bit; uint64 is kept as its bit pattern.</summary>
    private static void ReadIntegral(Tensor src, Span<long> v)
    {
        switch (src.Type)
        {
            case ElementType.Int8: { var s = src.ReadOnlySpan<sbyte>(); for (int i = 0; i < v.Length; i++) v[i] = s[i]; break; }
            case ElementType.UInt8: { var s = src.ReadOnlySpan<byte>(); for (int i = 0; i < v.Length; i++) v[i] = s[i]; break; }
            case ElementType.Int16: { var s = src.ReadOnlySpan<short>(); for (int i = 0; i < v.Length; i++) v[i] = s[i]; break; }
            case ElementType.UInt16: { var s = src.ReadOnlySpan<ushort>(); for (int i = 0; i < v.Length; i++) v[i] = s[i]; break; }
            case ElementType.Int32: { var s = src.ReadOnlySpan<int>(); for (int i = 0; i < v.Length; i++) v[i] = s[i]; break; }
            case ElementType.UInt32: { var s = src.ReadOnlySpan<uint>(); for (int i = 0; i < v.Length; i++) v[i] = s[i]; break; }
            case ElementType.Int64: src.ReadOnlySpan<long>().CopyTo(v); break;
            case ElementType.UInt64: { var s = src.ReadOnlySpan<ulong>(); for (int i = 0; i < v.Length; i++) v[i] = unchecked((long)s[i]); break; }
            case ElementType.Bool: { var s = src.ReadOnlySpan<bool>(); for (int i = 0; i < v.Length; i++) v[i] = s[i] ? 1 : 0; break; }
            default: throw new NotSupportedException($"cannot cast from {src.Type.OnnxName()}");
        }
    }

    private static void WriteFromDouble(ReadOnlySpan<double> v, Tensor dst)
    {
        int n = v.Length;
        switch (dst.Type)
        {
            case ElementType.Float: { var d = dst.Span<float>(); for (int i = 0; i < n; i++) d[i] = (float)v[i]; break; }
            case ElementType.Double: v.CopyTo(dst.Span<double>()); break;
            case ElementType.Float16: { var d = dst.Span<Half>(); for (int i = 0; i < n; i++) d[i] = (Half)v[i]; break; }
            case ElementType.BFloat16: { var d = dst.Span<ushort>(); for (int i = 0; i < n; i++) d[i] = FloatToBFloat16((float)v[i]); break; }
            case ElementType.Bool: { var d = dst.Span<bool>(); for (int i = 0; i < n; i++) d[i] = v[i] != 0; break; }
            case ElementType.Int8: { var d = dst.Span<sbyte>(); for (int i = 0; i < n; i++) d[i] = unchecked((sbyte)ToInt32(v[i])); break; }
            case ElementType.UInt8: { var d = dst.Span<byte>(); for (int i = 0; i < n; i++) d[i] = unchecked((byte)ToInt32(v[i])); break; }
            case ElementType.Int16: { var d = dst.Span<short>(); for (int i = 0; i < n; i++) d[i] = unchecked((short)ToInt32(v[i])); break; }
            case ElementType.UInt16: { var d = dst.Span<ushort>(); for (int i = 0; i < n; i++) d[i] = unchecked((ushort)ToInt32(v[i])); break; }
            case ElementType.Int32: { var d = dst.Span<int>(); for (int i = 0; i < n; i++) d[i] = ToInt32(v[i]); break; }
            case ElementType.UInt32: { var d = dst.Span<uint>(); for (int i = 0; i < n; i++) d[i] = unchecked((uint)ToInt64(v[i])); break; }
            case ElementType.Int64: { var d = dst.Span<long>(); for (int i = 0; i < n; i++) d[i] = ToInt64(v[i]); break; }
            case ElementType.UInt64: { var d = dst.Span<ulong>(); for (int i = 0; i < n; i++) d[i] = ToUInt64(v[i]); break; }
            default: throw new NotSupportedException($"cannot cast to {dst.Type.OnnxName()}");
        }
    }

    private static void WriteFromInteger(ReadOnlySpan<long> v, bool unsigned64, Tensor dst)
    {
        int n = v.Length;
        switch (dst.Type)
        {
            case ElementType.Float: { var d = dst.Span<float>(); for (int i = 0; i < n; i++) d[i] = unsigned64 ? (float)(ulong)v[i] : v[i]; break; }
            case ElementType.Double: { var d = dst.Span<double>(); for (int i = 0; i < n; i++) d[i] = unsigned64 ? (double)(ulong)v[i] : v[i]; break; }
            case ElementType.Float16: { var d = dst.Span<Half>(); for (int i = 0; i < n; i++) d[i] = unsigned64 ? (Half)(ulong)v[i] : (Half)v[i]; break; }
            case ElementType.BFloat16: { var d = dst.Span<ushort>(); for (int i = 0; i < n; i++) d[i] = FloatToBFloat16(unsigned64 ? (float)(ulong)v[i] : v[i]); break; }
            case ElementType.Bool: { var d = dst.Span<bool>(); for (int i = 0; i < n; i++) d[i] = v[i] != 0; break; }
            case ElementType.Int8: { var d = dst.Span<sbyte>(); for (int i = 0; i < n; i++) d[i] = unchecked((sbyte)v[i]); break; }
            case ElementType.UInt8: { var d = dst.Span<byte>(); for (int i = 0; i < n; i++) d[i] = unchecked((byte)v[i]); break; }
            case ElementType.Int16: { var d = dst.Span<short>(); for (int i = 0; i < n; i++) d[i] = unchecked((short)v[i]); break; }
            case ElementType.UInt16: { var d = dst.Span<ushort>(); for (int i = 0; i < n; i++) d[i] = unchecked((ushort)v[i]); break; }
            case ElementType.Int32: { var d = dst.Span<int>(); for (int i = 0; i < n; i++) d[i] = unchecked((int)v[i]); break; }
            case ElementType.UInt32: { var d = dst.Span<uint>(); for (int i = 0; i < n; i++) d[i] = unchecked((uint)v[i]); break; }
            case ElementType.Int64: v.CopyTo(dst.Span<long>()); break;
            case ElementType.UInt64: { var d = dst.Span<ulong>(); for (int i = 0; i < n; i++) d[i] = unchecked((ulong)v[i]); break; }
            default: throw new NotSupportedException($"cannot cast to {dst.Type.OnnxName()}");
        }
    }

    // x86-64 cvttsd2si returns the "integer indefinite" (minimum) value for NaN and out-of-range input.
    private static int ToInt32(double v) => v > -2147483649.0 && v < 2147483648.0 ? (int)v : int.MinValue;

    private static long ToInt64(double v) => v >= -9223372036854775808.0 && v < 9223372036854775808.0 ? (long)v : long.MinValue;

    private static ulong ToUInt64(double v) =>
        v >= 9223372036854775808.0 && v < 18446744073709551616.0 ? (ulong)(long)(v - 9223372036854775808.0) ^ 0x8000_0000_0000_0000UL
        : unchecked((ulong)ToInt64(v));

    internal static float BFloat16ToFloat(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Round to nearest even on the upper 16 bits; NaN stays a quiet NaN.</summary>
    internal static ushort FloatToBFloat16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if (float.IsNaN(f)) return (ushort)((u >> 16) | 0x0040);
        u += 0x7FFF + ((u >> 16) & 1);
        return (ushort)(u >> 16);
    }

    private static void ToStrings(Tensor src, Span<string> dst)
    {
        var inv = CultureInfo.InvariantCulture;
        int n = src.Length;
        switch (src.Type)
        {
            case ElementType.Float: { var s = src.ReadOnlySpan<float>(); for (int i = 0; i < n; i++) dst[i] = FormatReal(s[i].ToString("R", inv), s[i]); return; }
            case ElementType.Double: { var s = src.ReadOnlySpan<double>(); for (int i = 0; i < n; i++) dst[i] = FormatReal(s[i].ToString("R", inv), s[i]); return; }
            case ElementType.Float16: { var s = src.ReadOnlySpan<Half>(); for (int i = 0; i < n; i++) dst[i] = FormatReal(s[i].ToString(inv), (double)s[i]); return; }
            case ElementType.BFloat16: { var s = src.ReadOnlySpan<ushort>(); for (int i = 0; i < n; i++) { float f = BFloat16ToFloat(s[i]); dst[i] = FormatReal(f.ToString("R", inv), f); } return; }
        }
        var tmp = new long[n];
        ReadIntegral(src, tmp);
        for (int i = 0; i < n; i++)
            dst[i] = src.Type == ElementType.UInt64 ? ((ulong)tmp[i]).ToString(inv) : tmp[i].ToString(inv);
    }

    private static string FormatReal(string text, double v) =>
        double.IsNaN(v) ? "NaN" : double.IsPositiveInfinity(v) ? "INF" : double.IsNegativeInfinity(v) ? "-INF" : text.Replace('E', 'e');

    private static void FromStrings(ReadOnlySpan<string> src, Tensor dst)
    {
        int n = src.Length;
        if (IsFloating(dst.Type) || dst.Type == ElementType.Bool)
        {
            var v = new double[n];
            for (int i = 0; i < n; i++) v[i] = dst.Type == ElementType.Bool && bool.TryParse(src[i].Trim(), out bool b) ? (b ? 1 : 0) : ParseReal(src[i]);
            WriteFromDouble(v, dst);
            return;
        }
        // Integers parse exactly when written as integers, so int64 values above 2^53 survive; others go through double.
        var ints = new long[n];
        for (int i = 0; i < n; i++)
        {
            var s = src[i].Trim();
            if (long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out ints[i])) continue;
            if (dst.Type == ElementType.UInt64 && ulong.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var u)) { ints[i] = unchecked((long)u); continue; }
            double v = ParseReal(src[i]);
            ints[i] = dst.Type == ElementType.UInt64 ? unchecked((long)ToUInt64(v)) : ToInt64(v);
        }
        WriteFromInteger(ints, false, dst);
    }

    private static double ParseReal(string text)
    {
        var s = text.Trim();
        if (s.Equals("INF", StringComparison.OrdinalIgnoreCase) || s.Equals("+INF", StringComparison.OrdinalIgnoreCase)) return double.PositiveInfinity;
        if (s.Equals("-INF", StringComparison.OrdinalIgnoreCase)) return double.NegativeInfinity;
        if (s.Equals("NaN", StringComparison.OrdinalIgnoreCase) || s.Equals("+NaN", StringComparison.OrdinalIgnoreCase) || s.Equals("-NaN", StringComparison.OrdinalIgnoreCase)) return double.NaN;
        if (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v)) return v;
        throw new ArgumentException($"cannot cast the string '{text}' to a number");
    }
}
