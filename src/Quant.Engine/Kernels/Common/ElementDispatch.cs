using System.Numerics;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>Generic code run for the CLR element type of a tensor (see <see cref="ElementDispatch"/>).</summary>
internal interface INumericVisitor
{
    void Visit<T>() where T : unmanaged, INumber<T>;
}

/// <summary>Generic code run for any element type, strings and bools included.</summary>
internal interface IAnyVisitor
{
    void Visit<T>();
}

/// <summary>Turns a runtime <see cref="ElementType"/> into a generic instantiation, once per call.</summary>
internal static class ElementDispatch
{
    /// <summary>Calls <c>visitor.Visit&lt;T&gt;</c> for numeric types; false when <paramref name="type"/> is not numeric (bool, string, bfloat16).</summary>
    public static bool Numeric<TV>(ElementType type, ref TV visitor) where TV : struct, INumericVisitor
    {
        switch (type)
        {
            case ElementType.Float: visitor.Visit<float>(); return true;
            case ElementType.Double: visitor.Visit<double>(); return true;
            case ElementType.Float16: visitor.Visit<Half>(); return true;
            case ElementType.Int8: visitor.Visit<sbyte>(); return true;
            case ElementType.UInt8: visitor.Visit<byte>(); return true;
            case ElementType.Int16: visitor.Visit<short>(); return true;
            case ElementType.UInt16: visitor.Visit<ushort>(); return true;
            case ElementType.Int32: visitor.Visit<int>(); return true;
            case ElementType.UInt32: visitor.Visit<uint>(); return true;
            case ElementType.Int64: visitor.Visit<long>(); return true;
            case ElementType.UInt64: visitor.Visit<ulong>(); return true;
            default: return false;
        }
    }

    /// <summary>Calls <c>visitor.Visit&lt;T&gt;</c> with the tensor's CLR element type; false for types the engine has no buffer for.</summary>
    public static bool Any<TV>(ElementType type, ref TV visitor) where TV : struct, IAnyVisitor
    {
        switch (type)
        {
            case ElementType.Float: visitor.Visit<float>(); return true;
            case ElementType.Double: visitor.Visit<double>(); return true;
            case ElementType.Float16: visitor.Visit<Half>(); return true;
            case ElementType.BFloat16: visitor.Visit<ushort>(); return true;
            case ElementType.Int8: visitor.Visit<sbyte>(); return true;
            case ElementType.UInt8: visitor.Visit<byte>(); return true;
            case ElementType.Int16: visitor.Visit<short>(); return true;
            case ElementType.UInt16: visitor.Visit<ushort>(); return true;
            case ElementType.Int32: visitor.Visit<int>(); return true;
            case ElementType.UInt32: visitor.Visit<uint>(); return true;
            case ElementType.Int64: visitor.Visit<long>(); return true;
            case ElementType.UInt64: visitor.Visit<ulong>(); return true;
            case ElementType.Bool: visitor.Visit<bool>(); return true;
            case ElementType.String: visitor.Visit<string>(); return true;
            default: return false;
        }
    }

    public static bool IsFloat(ElementType t) => t is ElementType.Float or ElementType.Double or ElementType.Float16;
}
