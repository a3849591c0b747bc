namespace Quant.Runtime;

/// <summary>The fixed numbers of the .qbm layout (docs/artifact-format.md): shared by the writer and the reader.</summary>
public static class QbmLayout
{
    /// <summary>"\x89QBM\r\n\x1A\n": a non-ASCII first byte and the line-ending bytes catch text-mode transfers.</summary>
    public static ReadOnlySpan<byte> Magic => [0x89, (byte)'Q', (byte)'B', (byte)'M', 0x0D, 0x0A, 0x1A, 0x0A];
    public const uint FormatVersion = 4;
    public const int HeaderBytes = 64;
    public const int HashOffset = 24;
    public const int SectionEntryBytes = 24;
    public const int SectionCount = 9;
    public const int ConstantAlignment = 64;
    public const int ArenaAlignment = 64;
    public const uint NoValue = 0xFFFFFFFF;

    /// <summary>The sections, in the order they appear (the section table lists them in this order).</summary>
    public enum Section : uint
    {
        Strings = 1, Values = 2, Io = 3, Program = 4, ConstantTable = 5, ConstantData = 6, MemoryPlan = 7, Cost = 8, PackedWeights = 9,
    }

    public static long Align(long n, int alignment) => (n + alignment - 1) / alignment * alignment;

    /// <summary>Element types a .qbm may carry (those the engine runs; no strings, no complex).</summary>
    public static bool IsStorable(Quant.Onnx.ElementType t) => t is Quant.Onnx.ElementType.Float or Quant.Onnx.ElementType.UInt8
        or Quant.Onnx.ElementType.Int8 or Quant.Onnx.ElementType.UInt16 or Quant.Onnx.ElementType.Int16 or Quant.Onnx.ElementType.Int32
        or Quant.Onnx.ElementType.Int64 or Quant.Onnx.ElementType.Bool or Quant.Onnx.ElementType.Float16 or Quant.Onnx.ElementType.Double
        or Quant.Onnx.ElementType.UInt32 or Quant.Onnx.ElementType.UInt64 or Quant.Onnx.ElementType.BFloat16;
}
