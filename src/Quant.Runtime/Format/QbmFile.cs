using Quant.Engine;
using Quant.Onnx;

namespace Quant.Runtime;

/// <summary>How a value enters the program: given by the caller, stored in the constant section, or produced by an op.</summary>
public enum QbmValueKind : byte { Input = 0, Constant = 1, Intermediate = 2 }

/// <summary>A value of the program: its name, element type and its shape at the planned (static) input shapes.</summary>
public sealed record QbmValue(string Name, ElementType Type, QbmValueKind Kind, long[] Dims);

/// <summary>Scale and zero point of an integer graph input or output (real = scale · (q − zero point)).</summary>
public sealed record QbmQuantization(float Scale, int ZeroPoint);

/// <summary>A graph input or output: its value, its declared (possibly symbolic) shape and, for integers, its quantization.</summary>
public sealed record QbmIo(int Value, Dim[]? Shape, QbmQuantization? Quantization);

/// <summary>One scheduled op. Value ids index <see cref="QbmFile.Values"/>; <see cref="QbmFile.Omitted"/> marks an omitted optional input/output.</summary>
public sealed record QbmOp(string Name, string OpType, string Domain, int[] Inputs, int[] Outputs, IReadOnlyList<AttributeValue> Attributes);

/// <summary>The bytes of a constant value (little-endian, dense).</summary>
public sealed record QbmConstant(int Value, byte[] Data);

/// <summary>
/// One weight matrix of an op, stored in its kernel's packed layout (loading hands it to the kernel without packing):
/// the op's <paramref name="Step"/>, the kernel's slot name (e.g. QConv's <c>int8</c>, one matrix per group) and the group.
/// </summary>
public sealed record QbmPackedWeights(int Step, string Slot, int Group, PackedGemmWeights Weights);

/// <summary>Where an intermediate value lives in the arena and for which steps (inclusive) it is live.</summary>
public sealed record QbmPlacement(int Value, int FirstStep, int LastStep, long Offset, long Bytes);

public sealed record QbmMemoryPlan(long ArenaBytes, int Alignment, IReadOnlyList<QbmPlacement> Placements);

/// <summary>
/// One op family of the cost model (what the kernel does, e.g. int8 depthwise QConv): per op of the family,
/// µs = <see cref="Microseconds"/> + <see cref="MicrosecondsPerMac"/> · MACs + <see cref="MicrosecondsPerByte"/> · bytes moved
/// (docs/artifact-format.md, "cost model").
/// </summary>
public sealed record QbmCostFamily(string Name, double Microseconds, double MicrosecondsPerMac, double MicrosecondsPerByte);

/// <summary>The cost model the estimate was made with: every family the compiler knows, in its fixed order.</summary>
public sealed record QbmCostModel(IReadOnlyList<QbmCostFamily> Families);

/// <summary>
/// One op's estimate: its family (index into <see cref="QbmCostModel.Families"/>), multiply-accumulates (of
/// <see cref="MacType"/> operands), bytes read and written, latency.
/// </summary>
public sealed record QbmOpCost(int Family, long Macs, ElementType MacType, long BytesRead, long BytesWritten, double Microseconds);

public sealed record QbmCost(QbmCostModel Model, IReadOnlyList<QbmOpCost> Ops)
{
    public double TotalMicroseconds => Ops.Sum(o => o.Microseconds);
}

/// <summary>The decoded content of a .qbm (docs/artifact-format.md); <see cref="QbmCodec"/> reads and writes it.</summary>
public sealed class QbmFile
{
    public const int Omitted = -1;

    public required IReadOnlyList<(string Domain, long Version)> Opsets { get; init; }
    public required IReadOnlyList<QbmValue> Values { get; init; }
    public required IReadOnlyList<QbmIo> Inputs { get; init; }
    public required IReadOnlyList<QbmIo> Outputs { get; init; }
    public required IReadOnlyList<QbmOp> Ops { get; init; }
    public required IReadOnlyList<QbmConstant> Constants { get; init; }
    public required QbmMemoryPlan MemoryPlan { get; init; }
    public required QbmCost Cost { get; init; }
    /// <summary>Integer GEMM weights pre-packed for their kernels (each op's constant weights are also in <see cref="Constants"/>).</summary>
    public IReadOnlyList<QbmPackedWeights> PackedWeights { get; init; } = [];
}
