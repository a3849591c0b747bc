namespace Quant.Onnx;

/// <summary>Tensor element types; the numeric values are ONNX's <c>TensorProto.DataType</c> codes.</summary>
public enum ElementType
{
    Undefined = 0,
    Float = 1,
    UInt8 = 2,
    Int8 = 3,
    UInt16 = 4,
    Int16 = 5,
    Int32 = 6,
    Int64 = 7,
    String = 8,
    Bool = 9,
    Float16 = 10,
    Double = 11,
    UInt32 = 12,
    UInt64 = 13,
    Complex64 = 14,
    Complex128 = 15,
    BFloat16 = 16,
}

public static class ElementTypes
{
    /// <summary>Bytes per element in ONNX raw_data (little-endian); 0 for strings and unknown types.</summary>
    public static int SizeOf(this ElementType t) => t switch
    {
        ElementType.Float or ElementType.Int32 or ElementType.UInt32 => 4,
        ElementType.UInt8 or ElementType.Int8 or ElementType.Bool => 1,
        ElementType.UInt16 or ElementType.Int16 or ElementType.Float16 or ElementType.BFloat16 => 2,
        ElementType.Int64 or ElementType.UInt64 or ElementType.Double or ElementType.Complex64 => 8,
        ElementType.Complex128 => 16,
        _ => 0,
    };

    /// <summary>The lower-case name ONNX uses in type strings, e.g. <c>tensor(float)</c>.</summary>
    public static string OnnxName(this ElementType t) => t switch
    {
        ElementType.Float => "float",
        ElementType.Float16 => "float16",
        ElementType.BFloat16 => "bfloat16",
        ElementType.Double => "double",
        ElementType.Int8 => "int8",
        ElementType.UInt8 => "uint8",
        ElementType.Int16 => "int16",
        ElementType.UInt16 => "uint16",
        ElementType.Int32 => "int32",
        ElementType.UInt32 => "uint32",
        ElementType.Int64 => "int64",
        ElementType.UInt64 => "uint64",
        ElementType.Bool => "bool",
        ElementType.String => "string",
        _ => t.ToString().ToLowerInvariant(),
    };
}
