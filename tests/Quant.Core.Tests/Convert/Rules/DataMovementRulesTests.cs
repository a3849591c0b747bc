using Quant.Core.Conversion;
using Quant.Onnx;
using Xunit.Abstractions;
using static Quant.Core.Tests.Convert.Rules.RuleHarness;

namespace Quant.Core.Tests.Convert.Rules;

/// <summary>
/// Data movement, selection and Concat (spec §7) lowered by their rules against the qat-style graph: equal formats
/// copy integers (exact), different formats requantize once (within the ties of one requantization).
/// </summary>
public class DataMovementRulesTests(ITestOutputHelper output)
{
    public static TheoryData<string> Ops => new() { "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Gather", "MaxPool", "GlobalMaxPool", "ReduceMax" };

    private static (Node Op, Dictionary<string, TensorData> Constants) Setup(string op) => op switch
    {
        "Reshape" => (Op(op, ["x0", "shape"]), new() { ["shape"] = Longs("shape", 1, -1, 40) }),
        "Flatten" => (Op(op, ["x0"], AttributeValue.Of("axis", 2L)), []),
        "Squeeze" => (Op(op, ["x0", "axes"]), new() { ["axes"] = Longs("axes", 0) }),
        "Unsqueeze" => (Op(op, ["x0", "axes"]), new() { ["axes"] = Longs("axes", 2) }),
        "Transpose" => (Op(op, ["x0"], AttributeValue.Of("perm", new long[] { 0, 2, 1, 3 })), []),
        "Slice" => (Op(op, ["x0", "starts", "ends", "axes"]), new() { ["starts"] = Longs("starts", 1, 3), ["ends"] = Longs("ends", 7, 37), ["axes"] = Longs("axes", 1, 3) }),
        "Gather" => (Op(op, ["x0", "indices"], AttributeValue.Of("axis", 1L)), new() { ["indices"] = Longs("indices", 3, 0, 7, 7) }),
        "MaxPool" => (Op(op, ["x0"], AttributeValue.Of("kernel_shape", new long[] { 2, 2 }), AttributeValue.Of("strides", new long[] { 2, 2 })), []),
        "GlobalMaxPool" => (Op(op, ["x0"]), []),
        "ReduceMax" => (Op(op, ["x0"], AttributeValue.Of("axes", new long[] { 1 })), []),
        _ => throw new ArgumentException(op),
    };

    [Theory]
    [MemberData(nameof(Ops))]
    public void Integers_pass_unchanged_or_are_requantized_once(string op)
    {
        var rng = new Random(op.Length);
        var (node, constants) = Setup(op);
        var x = new DataInput(I8(0.07154733f), RandomInts(rng, ElementType.Int8, [1, 8, 10, 40]));
        Check(output, op + " (copy)", node, [x], [I8(0.07154733f)], 0, constants);
        Check(output, op + " (new formats)", node, [x], [I8(0.0731f, -4), I16(0.00061f)], 1e-3, constants);
        var x16 = new DataInput(I16(0.00031f, 9), RandomInts(rng, ElementType.Int16, [1, 8, 10, 40]));
        Check(output, op + " int16 (copy)", node, [x16], [I16(0.00031f, 9)], 0, constants, opset: 21);
    }

    [Fact]
    public void Concat_requantizes_each_input_not_in_the_output_format()
    {
        var rng = new Random(4);
        // det's FPN concat: four inputs of their own scales into the largest one's format.
        float[] scales = [6.44901f, 11.030814f, 15.875003f, 14.932216f];
        var data = scales.Select(s => new DataInput(I8(s), RandomInts(rng, ElementType.Int8, [1, 24, 8, 8]))).ToArray();
        var concat = Op("Concat", ["x0", "x1", "x2", "x3"], AttributeValue.Of("axis", 1L));
        Check(output, "det Concat", concat, data, [I8(15.875003f), I16(0.0071f)], 1e-3);
    }

    [Fact]
    public void Split_and_MaxPool_indices_stay_float_islands()
    {
        var split = new Node("split", "Split", "", ["x0"], ["a", "b"]);
        var request = new LoweringRequest(split, [new IntegerInput("q0", I8(0.1f))], [new IntegerOutput("y0", I8(0.1f))], _ => null, new GraphEmitter(new Graph()));
        Assert.Contains("Split has several outputs", RuleFor("Split").Lower(request));
        var pool = new Node("pool", "MaxPool", "", ["x0"], ["a", "idx"]);
        request = new LoweringRequest(pool, [new IntegerInput("q0", I8(0.1f))], [new IntegerOutput("y0", I8(0.1f))], _ => null, new GraphEmitter(new Graph()));
        Assert.Equal("MaxPool's second output is used", RuleFor("MaxPool").Lower(request));
    }
}
