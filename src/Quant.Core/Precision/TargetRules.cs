namespace Quant.Core.Precision;

/// <summary>What an input of a node is, as far as quantization is concerned.</summary>
public enum InputRole
{
    /// <summary>A float tensor computed at run time (or a graph input): quantized with activation parameters.</summary>
    Activation,
    /// <summary>A float initializer at a data position (Conv/MatMul weights, constant operands of Add/Mul/...): pre-quantized.</summary>
    Weight,
    /// <summary>Conv/ConvTranspose/Gemm bias: stays float (the convert stage quantizes it to int32 with scale_x * scale_w).</summary>
    Bias,
    /// <summary>Not data: shapes, axes, scales, Clip bounds, non-float tensors, omitted inputs. Never converted.</summary>
    Parameter,
}

/// <summary>What the target can run one op type with.</summary>
public sealed record OpSupport(string OpType, bool Int8, bool Int16, bool Int16Weights, bool Gemm)
{
    public bool Quantizable => Int8;
}

/// <summary>
/// The rules of our J6-like target (documented in docs/config-reference.md, "Precision rules and presets"). Every float op can run
/// in float16 or float32; the table lists the ops that also run with integer inputs.
/// </summary>
public static class TargetRules
{
    /// <summary>GEMM-type ops: int8 or int16 activations, int8 or int16 weights ("dual int16").</summary>
    public static readonly IReadOnlySet<string> GemmOps = new HashSet<string>(StringComparer.Ordinal) { "Conv", "ConvTranspose", "MatMul", "Gemm" };

    /// <summary>Ops with int8 and int16 inputs (elementwise, activations through lookup tables, pools, data movement).</summary>
    private static readonly string[] Int8And16 =
    [
        "Add", "Sub", "Mul",
        "Relu", "Clip", "LeakyRelu", "PRelu",
        "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Softmax", "Sqrt", "Exp",
        "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
        "ReduceMean", "ReduceMax", "ReduceSum",
        "Concat", "Resize",
        "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Slice", "Split", "Gather",
    ];

    /// <summary>Ops with int8 inputs only: Div runs as a reciprocal lookup table followed by an int8 multiply.</summary>
    private static readonly string[] Int8Only = ["Div"];

    /// <summary>Activations that fold into the preceding GEMM-type op when graph preparation fuses them.</summary>
    public static readonly IReadOnlySet<string> FusableActivations = new HashSet<string>(StringComparer.Ordinal) { "Relu", "Clip" };

    /// <summary>Ops that only read the metadata of their float input: they carry no float data.</summary>
    private static readonly HashSet<string> MetadataOps = new(StringComparer.Ordinal) { "Shape", "Size" };

    private static readonly Dictionary<string, OpSupport> Table = Build();

    private static Dictionary<string, OpSupport> Build()
    {
        var t = new Dictionary<string, OpSupport>(StringComparer.Ordinal);
        foreach (var op in GemmOps) t[op] = new OpSupport(op, true, true, true, true);
        foreach (var op in Int8And16) t[op] = new OpSupport(op, true, true, false, false);
        foreach (var op in Int8Only) t[op] = new OpSupport(op, true, false, false, false);
        return t;
    }

    /// <summary>The quantizable op types, sorted (for documentation and error messages).</summary>
    public static IEnumerable<OpSupport> QuantizableOps => Table.Values.OrderBy(s => s.OpType, StringComparer.Ordinal);

    /// <summary>How the target runs <paramref name="opType"/> (default domain); float only when not listed.</summary>
    public static OpSupport For(string opType) =>
        Table.TryGetValue(opType, out var s) ? s : new OpSupport(opType, false, false, false, false);

    public static bool IsMetadataOp(string opType) => MetadataOps.Contains(opType);

    /// <summary>
    /// Whether input <paramref name="index"/> of <paramref name="opType"/> carries data (as opposed to shapes,
    /// axes, bounds, scales). Unlisted ops: every input is data.
    /// </summary>
    public static bool IsDataInput(string opType, int index) => opType switch
    {
        "Conv" or "ConvTranspose" or "Gemm" => index <= 1,
        "MatMul" or "Add" or "Sub" or "Mul" or "Div" or "PRelu" => index <= 1,
        "Concat" or "Sum" or "Max" or "Min" or "Mean" => true,
        "Where" => index >= 1,
        "BatchNormalization" or "InstanceNormalization" or "LayerNormalization" => index == 0,
        "Pow" => index == 0,
        _ when Table.ContainsKey(opType) => index == 0,
        "Pad" or "Expand" or "Tile" or "Dropout" or "TopK" or "Upsample" => index == 0,
        _ => true,
    };

    /// <summary>Whether input <paramref name="index"/> is the bias of a GEMM-type op.</summary>
    public static bool IsBiasInput(string opType, int index) => index == 2 && opType is "Conv" or "ConvTranspose" or "Gemm";
}
