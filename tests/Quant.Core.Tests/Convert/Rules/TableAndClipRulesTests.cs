using Quant.Core.Conversion;
using Quant.Engine;
using Quant.Onnx;
using Xunit.Abstractions;
using static Quant.Core.Tests.Convert.Rules.RuleHarness;

namespace Quant.Core.Tests.Convert.Rules;

/// <summary>
/// Lookup-table ops (spec §9) and standalone Clip/Relu (§6.4) lowered by their rules against the qat-style graph on
/// every input integer: tables must match exactly; Clip/Relu exactly when the formats are equal, else within the
/// ties of one requantization. Scales from PaddleOCR rec/det performance exports.
/// </summary>
public class TableAndClipRulesTests(ITestOutputHelper output)
{
    private static Node Unary(string op, params AttributeValue[] attrs)
    {
        var n = new Node($"p2o.{op}.0", op, "", ["x0"], ["f"]);
        foreach (var a in attrs) n.Set(a);
        return n;
    }

    [Theory]
    [InlineData("rec SE gate", "HardSigmoid", 0.027237361f, 0.005629944f)]
    [InlineData("det SE gate alpha 0.2", "HardSigmoid", 0.07003471f, 0.007874016f)]
    [InlineData("rec Sigmoid", "Sigmoid", 0.031131633f, 0.007646068f)]
    [InlineData("det Sigmoid", "Sigmoid", 0.8733208f, 0.007874016f)]
    [InlineData("rec LayerNorm Sqrt", "Sqrt", 0.022625877f, 0.013347528f)]
    [InlineData("Tanh", "Tanh", 0.0231f, 0.00787f)]
    [InlineData("Exp", "Exp", 0.0377f, 0.4113f)]
    [InlineData("HardSwish", "HardSwish", 0.0521f, 0.0433f)]
    [InlineData("LeakyRelu", "LeakyRelu", 0.0311f, 0.0207f)]
    public void Int8_tables_equal_the_qat_node_on_every_integer(string name, string op, float sx, float sy)
    {
        var attrs = op switch
        {
            "HardSigmoid" => [AttributeValue.Of("alpha", name.Contains("0.2") ? 0.2f : 0.1666666716337204f), AttributeValue.Of("beta", 0.5f)],
            "LeakyRelu" => new[] { AttributeValue.Of("alpha", 0.1f) },
            _ => [],
        };
        // HardSwish is an opset-14 op; the others are checked at the opset of our exports.
        Check(output, name, Unary(op, attrs), [new DataInput(I8(sx), AllInt8(2, 1))], [I8(sy), I8(sy * 1.7f, -20), I16(sy / 200)], 0, opset: op == "HardSwish" ? 14 : 13);
    }

    [Fact]
    public void Int16_tables_equal_the_qat_node_on_every_integer()
    {
        var all = Tensor.From(Enumerable.Range(-32768, 65536).Select(v => (short)v).ToArray(), 1, 65536);
        Check(output, "int16 Sigmoid", Unary("Sigmoid"), [new DataInput(I16(0.00031f), all)], [I16(1f / 32767), I8(1f / 127)], 0);
        Check(output, "int16 Tanh", Unary("Tanh"), [new DataInput(I16(0.00021f, 40), all)], [I16(1f / 32767)], 0);
    }

    [Theory]
    [InlineData("rec HardSwish Clip(x+3, 0, 6)", 0.15661693f, 0.047244094f, 0f, 6f)]
    [InlineData("det HardSwish Clip(x+3, 0, 6)", 0.5493837f, 0.047244094f, 0f, 6f)]
    [InlineData("equal formats", 0.047244094f, 0.047244094f, 0f, 6f)]
    [InlineData("negative bound", 0.0311527f, 0.0201983f, -1.5f, 2f)]
    public void Clip_is_a_clamped_requantization(string name, float sx, float sy, float lo, float hi)
    {
        var op = new Node("p2o.Clip.0", "Clip", "", ["x0", "min", "max"], ["f"]);
        var constants = new Dictionary<string, TensorData> { ["min"] = TensorData.FromFloats("min", [], [lo]), ["max"] = TensorData.FromFloats("max", [], [hi]) };
        bool same = sx == sy;
        Check(output, name, op, [new DataInput(I8(sx), AllInt8(2, 1))], [I8(sy), I8(sy, -30)], same ? 0 : 1e-3, constants);
        if (same) Check(output, name + " (copy)", op, [new DataInput(I8(sx), AllInt8(2, 1))], [I8(sy)], 0, constants);
    }

    [Fact]
    public void Relu_copies_in_its_input_format_and_requantizes_otherwise()
    {
        var data = new[] { new DataInput(I8(0.1205394f), AllInt8(2, 1)) };
        Check(output, "Relu same format", Unary("Relu"), data, [I8(0.1205394f)], 0);
        Check(output, "Relu new format", Unary("Relu"), data, [I8(0.0731f, -10), I16(0.00071f)], 1e-3);
        Check(output, "Relu asymmetric input", Unary("Relu"), [new DataInput(I8(0.05f, 17), AllInt8(2, 1))], [I8(0.05f, 17)], 0);
    }

    [Fact]
    public void Clip_with_a_computed_bound_is_an_island()
    {
        var op = new Node("clip", "Clip", "", ["x0", "lo"], ["f"]);
        var request = new LoweringRequest(op, [new IntegerInput("q0", I8(0.1f)), null], [new IntegerOutput("y0", I8(0.1f))], _ => null, new GraphEmitter(new Graph()));
        Assert.Equal("Clip bound 'lo' is not a float constant", RuleFor("Clip").Lower(request));
    }
}
