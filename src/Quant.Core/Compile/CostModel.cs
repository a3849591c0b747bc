using Quant.Onnx;
using Quant.Runtime;

namespace Quant.Core.Compilation;

/// <summary>
/// The latency estimate (docs/artifact-format.md, "cost model"): each op belongs to one family, what its kernel really
/// does (int8 depthwise QConv, integer elementwise, data movement, ...), and costs
/// µs = a + b · MACs + c · (bytes read + bytes written) with its family's constants. The constants are fitted on per-op
/// timings of real compiled models at 1 thread (<c>dotnet run -c Release --project benchmarks/Quant.Engine.Benchmarks --
/// costmodel</c> regenerates <see cref="CostModelConstants"/>); nothing is measured at compile time, so the same model
/// compiles to the same estimate.
/// </summary>
public static class CostModel
{
    /// <summary>The pooled fit of all ops: the constants of a family no calibration model had.</summary>
    public const string Other = "other";

    /// <summary>Every family, in the fixed order a .qbm lists them.</summary>
    public static IReadOnlyList<string> Families { get; } =
    [
        "qconv.depthwise.int8", "qconv.pointwise.int8", "qconv.general.int8",
        "qconv.depthwise.int16", "qconv.pointwise.int16", "qconv.general.int16",
        "qconvtranspose", "qmatmul", "int.elementwise", "int.table", "int.requantize", "int.averaging", "int.resize",
        "float.conv", "float.conv.depthwise", "float.matmul", "float.elementwise", "float.reduce",
        "data.movement", "qdq", Other,
    ];

    private static readonly HashSet<string> DataMovement =
    [
        "Reshape", "Transpose", "Concat", "Slice", "Split", "Squeeze", "Unsqueeze", "Flatten", "Gather", "Pad", "Identity",
        "Shape", "Expand", "Tile", "Resize", "DepthToSpace", "SpaceToDepth", "MaxPool", "GlobalMaxPool",
    ];

    private static readonly HashSet<string> FloatReduce =
    [
        "AveragePool", "GlobalAveragePool", "ReduceMean", "ReduceSum", "ReduceMax", "Softmax", "LogSoftmax", "ArgMax",
    ];

    /// <summary>
    /// Where a family no calibration model had takes its constants from: the nearest kernel that was fitted (an
    /// optimistic guess: int16 and transposed convolutions are slower than their int8 and direct forms), else
    /// <see cref="Other"/>, the pooled fit of all ops.
    /// </summary>
    private static readonly Dictionary<string, string> StandIn = new(StringComparer.Ordinal)
    {
        ["qconv.depthwise.int16"] = "qconv.depthwise.int8", ["qconv.pointwise.int16"] = "qconv.pointwise.int8",
        ["qconv.general.int16"] = "qconv.general.int8", ["qconvtranspose"] = "qconv.general.int8",
        ["qmatmul"] = "qconv.pointwise.int8", ["float.conv.depthwise"] = "float.conv", ["float.matmul"] = "float.conv",
        ["int.averaging"] = "int.elementwise", ["int.resize"] = "data.movement", ["int.table"] = "int.elementwise",
        ["int.requantize"] = "int.elementwise", ["float.reduce"] = "float.elementwise",
    };

    /// <summary>A model over every family: the fitted ones as given, the others from their stand-in (see <see cref="StandIn"/>).</summary>
    public static QbmCostModel Build(IEnumerable<QbmCostFamily> fitted)
    {
        var byName = fitted.ToDictionary(f => f.Name, StringComparer.Ordinal);
        var other = byName.GetValueOrDefault(Other) ?? new QbmCostFamily(Other, 0, 0, 0);
        QbmCostFamily For(string name) =>
            byName.TryGetValue(name, out var f) ? f
            : StandIn.TryGetValue(name, out var near) && byName.TryGetValue(near, out var g) ? g with { Name = name }
            : other with { Name = name };
        return new QbmCostModel(Families.Select(For).ToList());
    }

    // Declared after StandIn: static initializers run in text order.
    /// <summary>The committed constants as the model a .qbm carries.</summary>
    public static QbmCostModel Committed { get; } = Build(CostModelConstants.Fitted.Select(f => new QbmCostFamily(f.Family, f.Microseconds, f.MicrosecondsPerMac, f.MicrosecondsPerByte)));

    public static QbmOpCost Estimate(QbmOp op, IReadOnlyList<QbmValue> values, QbmCostModel m)
    {
        var (family, macs, type, read, written) = Features(op, values);
        return new QbmOpCost(family, macs, type, read, written, Microseconds(m.Families[family], macs, read + written));
    }

    /// <summary>The model's formula for one op of family <paramref name="f"/>.</summary>
    public static double Microseconds(QbmCostFamily f, long macs, long bytes) =>
        f.Microseconds + f.MicrosecondsPerMac * macs + f.MicrosecondsPerByte * bytes;

    /// <summary>What the estimate of one op is made of: its family (index into <see cref="Families"/>), MACs, bytes.</summary>
    public static (int Family, long Macs, ElementType MacType, long BytesRead, long BytesWritten) Features(QbmOp op, IReadOnlyList<QbmValue> values)
    {
        long read = op.Inputs.Where(i => i >= 0).Sum(i => MemoryPlanner.Bytes(values[i]));
        long written = op.Outputs.Where(o => o >= 0).Sum(o => MemoryPlanner.Bytes(values[o]));
        var (macs, depthwise) = Macs(op, values);
        var type = macs > 0 ? values[op.Inputs[0]].Type : ElementType.Undefined;
        var name = FamilyOf(op, values, depthwise);
        return (IndexOf(name), macs, type, read, written);
    }

    private static int IndexOf(string family)
    {
        for (int i = 0; i < Families.Count; i++) if (Families[i] == family) return i;
        throw new InvalidOperationException($"cost family '{family}' is not listed");
    }

    private static string FamilyOf(QbmOp op, IReadOnlyList<QbmValue> values, bool depthwise)
    {
        var inType = op.Inputs.Length > 0 && op.Inputs[0] >= 0 ? values[op.Inputs[0]].Type : ElementType.Undefined;
        bool wide = inType is ElementType.Int16 or ElementType.UInt16;
        if (op.Domain == Conversion.LoweringEmitter.Domain)
            return op.OpType switch
            {
                "QConv" when depthwise => wide ? "qconv.depthwise.int16" : "qconv.depthwise.int8",
                "QConv" when IsPointwise(op, values) => wide ? "qconv.pointwise.int16" : "qconv.pointwise.int8",
                "QConv" => wide ? "qconv.general.int16" : "qconv.general.int8",
                "QConvTranspose" => "qconvtranspose",
                "QMatMul" or "QGemm" => "qmatmul",
                "QAdd" or "QSub" or "QMul" or "QDiv" => "int.elementwise",
                "QTable" or "QSoftmax" => "int.table",
                "QRequantize" => "int.requantize",
                "QAveragePool" or "QGlobalAveragePool" or "QReduceMean" => "int.averaging",
                "QResize" => "int.resize",
                _ => Other,
            };
        if (op.Domain.Length > 0 && op.Domain != "ai.onnx") return Other;
        return op.OpType switch
        {
            "Conv" or "ConvTranspose" => depthwise ? "float.conv.depthwise" : "float.conv",
            "MatMul" or "Gemm" => "float.matmul",
            "MatMulInteger" or "ConvInteger" => "qmatmul",
            "QuantizeLinear" or "DequantizeLinear" or "Cast" => "qdq",
            _ when DataMovement.Contains(op.OpType) => "data.movement",
            _ when FloatReduce.Contains(op.OpType) => "float.reduce",
            _ => "float.elementwise",
        };
    }

    /// <summary>A 1x1 convolution with unit strides and one group: a plain GEMM over the positions.</summary>
    private static bool IsPointwise(QbmOp op, IReadOnlyList<QbmValue> values)
    {
        if (op.Inputs.Length < 2 || op.Inputs[1] < 0) return false;
        var w = values[op.Inputs[1]].Dims;
        long group = op.Attributes.FirstOrDefault(a => a.Name == "group")?.Int ?? 1;
        return group == 1 && w.Length > 2 && w.Skip(2).All(d => d == 1);
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
