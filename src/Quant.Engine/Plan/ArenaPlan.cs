using Quant.Engine.Kernels.Integer;
using Quant.Onnx;

namespace Quant.Engine;

/// <summary>Where one value lives in the arena: a byte range, reserved from the step that produces it to its last reader (inclusive).</summary>
public sealed record ArenaPlacement(string Value, long Offset, long Bytes, int FirstStep, int LastStep);

/// <summary>
/// A static memory plan (a compiled model's): values at fixed offsets of one arena of <see cref="Bytes"/> bytes, where
/// two values share bytes only if their lifetimes over the session's planned steps do not overlap. The caller
/// guarantees that (the .qbm loader validates it); the session checks that each lifetime is the one its own steps give.
/// </summary>
public sealed record ArenaPlan(long Bytes, IReadOnlyList<ArenaPlacement> Placements);

/// <summary>
/// Which nodes may read and write arena values: those whose kernels touch tensors only through
/// <see cref="Tensor.Span{T}"/> (never <see cref="Tensor.Buffer"/>, which an arena view does not have). A value is
/// placed in the arena only if its producer and every reader are such nodes; the rest keep the buffer pool.
/// </summary>
internal static class ArenaOps
{
    public static bool Supports(Node node) =>
        node.Domain == QuantBuildOps.Domain
        || node.IsDefaultDomain && node.OpType is "QuantizeLinear" or "DequantizeLinear" or "Cast" or "Concat" or "Slice" or "Transpose"
            or "Reshape" or "Flatten" or "Squeeze" or "Unsqueeze" or "Shape" or "Gather";
}

/// <summary>One run's arena: a pinned byte array whose element <see cref="Base"/> is 64-byte aligned.</summary>
internal sealed class ArenaBuffer
{
    public const int Alignment = 64;

    public unsafe ArenaBuffer(long bytes)
    {
        Bytes = GC.AllocateUninitializedArray<byte>(checked((int)bytes + Alignment), pinned: true);
        fixed (byte* p = Bytes) Base = (int)((Alignment - (long)p % Alignment) % Alignment);
    }

    public byte[] Bytes { get; }
    public int Base { get; }
    public long Length => Bytes.Length - Alignment;
}
