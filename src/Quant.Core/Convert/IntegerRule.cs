using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Conversion;

/// <summary>
/// The integer format of a tensor in the quantized model (docs/quantization-spec.md §1): int8 or int16 after the
/// foreign uint8/uint16 mapping of §3.3, one float32 scale, one zero point.
/// </summary>
public readonly record struct IntFormat(ElementType Type, float Scale, int ZeroPoint)
{
    public int QMin => Type == ElementType.Int8 ? sbyte.MinValue : short.MinValue;
    public int QMax => Type == ElementType.Int8 ? sbyte.MaxValue : short.MaxValue;
    /// <summary>Bitwise equal scale, same type and zero point: integers pass unchanged between the two (spec §7).</summary>
    public bool SameAs(IntFormat other) =>
        Type == other.Type && ZeroPoint == other.ZeroPoint && BitConverter.SingleToInt32Bits(Scale) == BitConverter.SingleToInt32Bits(other.Scale);
    public override string ToString() => $"{Type.OnnxName()}(s={Scale:R}, z={ZeroPoint})";
}

/// <summary>An integer version of a qat node's input: the tensor the quantized graph holds and its format.</summary>
public sealed record IntegerInput(string Tensor, IntFormat Format)
{
    /// <summary>True for an integer initializer (a weight, P2/P3, or an int32 bias, P4); false for an activation edge (P1).</summary>
    public bool IsConstant { get; init; }
    /// <summary>Every scale of the DequantizeLinear (one, or one per channel along <see cref="Axis"/>).</summary>
    public IReadOnlyList<float> Scales { get; init; } = [Format.Scale];
    /// <summary>Every zero point, same layout as <see cref="Scales"/>.</summary>
    public IReadOnlyList<int> ZeroPoints { get; init; } = [Format.ZeroPoint];
    /// <summary>The per-channel axis of a weight, or null for per-tensor.</summary>
    public int? Axis { get; init; }
    /// <summary>The DequantizeLinear node the value comes through (for messages).</summary>
    public string DequantizeNode { get; init; } = "";
    /// <summary>The tensor's name in the model file (a mapped uint8/uint16 initializer gets a new name, spec §3.3).</summary>
    public string FileTensor { get; init; } = "";
    /// <summary>What to add to <see cref="ZeroPoints"/> to get the zero points the file stores (128 / 32768 for mapped uint8 / uint16).</summary>
    public int StoredZeroPointOffset { get; init; }
}

/// <summary>One integer output a qat node's readers want: the tensor name (the replaced QuantizeLinear's output) and its format.</summary>
public sealed record IntegerOutput(string Tensor, IntFormat Format);

/// <summary>
/// What a rule sees for one candidate integer group: the qat node (its float op and attributes), the integer
/// versions of its inputs and the integer outputs its QuantizeLinear readers want (docs/quantized-model.md).
/// </summary>
public sealed class LoweringRequest
{
    public LoweringRequest(Node node, IReadOnlyList<IntegerInput?> inputs, IReadOnlyList<IntegerOutput> outputs,
        Func<string, TensorData?> constant, LoweringEmitter emit)
    {
        Node = node; Inputs = inputs; Outputs = outputs; Constant = constant; Emit = emit;
    }

    /// <summary>The qat model's node (float op). Do not mutate it.</summary>
    public Node Node { get; }
    /// <summary>Per input index: the integer version of a data input, or null when the input is not an integer edge
    /// (a shape/axes/roi input, an absent optional input, or a plain float tensor); then <c>Node.Inputs[i]</c> is the
    /// tensor to use as-is.</summary>
    public IReadOnlyList<IntegerInput?> Inputs { get; }
    /// <summary>For output 0: every integer format its readers want (at least one).</summary>
    public IReadOnlyList<IntegerOutput> Outputs { get; }
    /// <summary>A constant (initializer) of the qat graph by name, or null.</summary>
    public Func<string, TensorData?> Constant { get; }
    public LoweringEmitter Emit { get; }
    /// <summary>A Relu or Clip fused into a GEMM-type node (pattern P6): the group's output is its output.</summary>
    public Node? FusedActivation { get; init; }
    /// <summary>The qat model file, for the errors of spec §3.6.</summary>
    public string ModelFile { get; init; } = "model";
    /// <summary>
    /// For rules implementing <see cref="IFloatOutputRule"/>: the float tensor the group's float readers (a float or
    /// float16 node, a graph output) read, to be written from the accumulator (spec §4.4 "Float output"); null when
    /// there are none. <see cref="Outputs"/> may then be empty.
    /// </summary>
    public string? FloatOutput { get; init; }
    /// <summary>The inferred shape of a tensor of the qat graph, or null when unknown.</summary>
    public Func<string, Dim[]?> Shape { get; init; } = _ => null;
    /// <summary>The model's opset for the default ONNX domain (operator semantics changed across versions, e.g. Softmax at 13).</summary>
    public long Opset { get; init; } = 21;
}

/// <summary>Where a rule writes its replacement: nodes and initializers added to the quantized graph.</summary>
public abstract class LoweringEmitter
{
    /// <summary>The operator domain of the quantized model's own ops.</summary>
    public const string Domain = Quant.Engine.Kernels.Integer.QuantBuildOps.Domain;

    /// <summary>Adds a node (domain "" for standard ONNX ops, <see cref="Domain"/> for ours); its name is made unique from <paramref name="nameHint"/>.</summary>
    public abstract Node AddNode(string nameHint, string opType, string domain, IEnumerable<string> inputs, IEnumerable<string> outputs);

    /// <summary>Adds an initializer under a name made unique from <paramref name="nameHint"/>; returns that name.</summary>
    public abstract string AddInitializer(string nameHint, TensorData data);

    /// <summary>A fresh tensor name for an intermediate value (e.g. an accumulator read by several QRequantize nodes).</summary>
    public abstract string NewTensorName(string hint);
}

/// <summary>
/// Turns one kind of qat node into <c>quant.build</c> ops. <see cref="Lower"/> either emits the full replacement and
/// returns null, or emits nothing and returns the reason the node stays a float island ("Resize mode cubic has no
/// integer rule"). Convert errors (spec §3.6) are thrown as <c>QuantException</c>.
/// </summary>
public interface IIntegerRule
{
    /// <summary>The ONNX op types (default domain) this rule lowers.</summary>
    IReadOnlyList<string> OpTypes { get; }

    string? Lower(LoweringRequest request);
}

/// <summary>
/// A rule that can also write its group's float output directly (GEMM-type ops, spec §4.4: y = fl32(acc·S_m)), so
/// the float node does not have to stay beside it for float readers.
/// </summary>
public interface IFloatOutputRule : IIntegerRule;
