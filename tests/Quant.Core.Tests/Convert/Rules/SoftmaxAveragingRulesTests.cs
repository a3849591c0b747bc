using Quant.Core.Conversion;
using Quant.Onnx;
using Xunit.Abstractions;
using static Quant.Core.Tests.Convert.Rules.RuleHarness;

namespace Quant.Core.Tests.Convert.Rules;

/// <summary>
/// Softmax (spec §10), the averaging ops (§8.1) and Resize (§8.3–8.4) lowered by their rules against the qat-style
/// graph on random integers. Scales and shapes from PaddleOCR rec/det performance exports.
/// </summary>
public class SoftmaxAveragingRulesTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("rec attention softmax", 0.043666f, 0.003750573f, 3, new[] { 1, 8, 40, 40 })]
    [InlineData("rec attention softmax 2", 0.51269054f, 0.0076529123f, 3, new[] { 1, 8, 40, 40 })]
    [InlineData("rec output softmax (6625 classes)", 0.49458513f, 0.00787398f, 2, new[] { 1, 20, 6625 })]
    [InlineData("cls softmax", 0.25f, 0.0078740157f, 1, new[] { 64, 2 })]
    [InlineData("softmax along a middle axis", 0.061f, 0.0039f, 1, new[] { 2, 30, 7 })]
    public void Softmax_matches_the_qat_node_within_one_LSB(string name, float sx, float sy, int axis, int[] shape)
    {
        var rng = new Random(shape.Sum());
        var x = new DataInput(I8(sx), RandomInts(rng, ElementType.Int8, shape));
        Check(output, name, Op("Softmax", ["x0"], AttributeValue.Of("axis", (long)axis)), [x], [I8(sy), I16(sy / 256)], 1e-3);
    }

    [Fact]
    public void Softmax_before_opset_13_is_lowered_only_along_its_last_axis()
    {
        // Opset 11 Softmax(axis=1) on [1,4,5] normalizes over all 20 values; QSoftmax would normalize over 4.
        LoweringRequest Request(long axis, long opset) =>
            new(new Node("sm", "Softmax", "", ["x0"], ["s"]) { Attributes = { ["axis"] = AttributeValue.Of("axis", axis) } },
                [new IntegerInput("q0", I8(0.1f))], [new IntegerOutput("y0", I8(1f / 127))], _ => null, new GraphEmitter(new Graph()))
            { Opset = opset, Shape = _ => [1, 4, 5] };
        Assert.Contains("normalizes over every axis from 1 on", RuleFor("Softmax").Lower(Request(1, 11)));
        Assert.Null(RuleFor("Softmax").Lower(Request(2, 11)));
        Assert.Null(RuleFor("Softmax").Lower(Request(1, 13)));
    }

    [Fact]
    public void Int16_softmax_matches_within_one_LSB()
    {
        var rng = new Random(5);
        var x = new DataInput(I16(0.0004f), RandomInts(rng, ElementType.Int16, [4, 300], -6000, 6000));
        // The int16 output grid is finer than float32's rounding of qat's exp/sum (spec §10: 0.15 LSB at full scale).
        Check(output, "int16 softmax", Op("Softmax", ["x0"], AttributeValue.Of("axis", -1L)), [x], [I16(1f / 32767), I8(1f / 127)], 2e-2);
    }

    [Theory]
    [InlineData("rec SE pool", 0.14280647f, 0.047231946f, new[] { 1, 96, 10, 40 })]
    [InlineData("det SE pool", 0.62913334f, 0.046973344f, new[] { 1, 64, 32, 32 })]
    public void GlobalAveragePool_matches_within_one_LSB(string name, float sx, float sy, int[] shape)
    {
        var rng = new Random(shape[1]);
        var x = new DataInput(I8(sx), RandomInts(rng, ElementType.Int8, shape));
        Check(output, name, Op("GlobalAveragePool", ["x0"]), [x], [I8(sy), I8(sy, 11)], 1e-3);
    }

    [Fact]
    public void AveragePool_and_ReduceMean_match_within_one_LSB()
    {
        var rng = new Random(8);
        var pool = Op("AveragePool", ["x0"], AttributeValue.Of("kernel_shape", new long[] { 3, 2 }), AttributeValue.Of("strides", new long[] { 3, 2 }),
            AttributeValue.Of("pads", new long[] { 0, 0, 0, 0 }), AttributeValue.Of("count_include_pad", 0L));
        Check(output, "rec AveragePool 3x2", pool, [new DataInput(I8(0.70598143f), RandomInts(rng, ElementType.Int8, [1, 64, 12, 80]))], [I8(0.37259623f)], 1e-3);
        var padded = Op("AveragePool", ["x0"], AttributeValue.Of("kernel_shape", new long[] { 3, 3 }), AttributeValue.Of("pads", new long[] { 1, 1, 1, 1 }),
            AttributeValue.Of("count_include_pad", 1L));
        Check(output, "AveragePool 3x3 padded, count_include_pad", padded, [new DataInput(I8(0.0513f, 4), RandomInts(rng, ElementType.Int8, [2, 16, 9, 13]))], [I8(0.0377f, -2)], 1e-3);
        var mean = Op("ReduceMean", ["x0"], AttributeValue.Of("axes", new long[] { -1 }));
        Check(output, "rec LayerNorm mean", mean, [new DataInput(I8(0.07154733f), RandomInts(rng, ElementType.Int8, [1, 80, 120]))], [I8(0.0160051f)], 1e-3);
        Check(output, "rec LayerNorm variance mean", mean, [new DataInput(I8(0.5307947f), RandomInts(rng, ElementType.Int8, [1, 80, 120], 0))], [I8(0.022625796f)], 1e-3);
        var mean18 = Op("ReduceMean", ["x0", "axes"]);
        Check(output, "ReduceMean-18 axes input", mean18, [new DataInput(I16(0.00071f), RandomInts(rng, ElementType.Int16, [3, 50, 20]))], [I16(0.00013f)], 1e-2,
            new() { ["axes"] = Longs("axes", 1) }, opset: 21);
    }

    [Fact]
    public void Resize_nearest_is_the_standard_op_on_integers_and_linear_is_QResize()
    {
        var rng = new Random(9);
        var scales = new Dictionary<string, TensorData> { ["scales"] = Floats("scales", 1, 1, 2, 2) };
        var nearest = Op("Resize", ["x0", "", "scales"], AttributeValue.Of("mode", "nearest"), AttributeValue.Of("coordinate_transformation_mode", "asymmetric"),
            AttributeValue.Of("nearest_mode", "floor"));
        var x = new DataInput(I8(0.767646f), RandomInts(rng, ElementType.Int8, [1, 24, 20, 20]));
        Check(output, "det Resize nearest (copy)", nearest, [x], [I8(0.767646f)], 0, scales);
        Check(output, "Resize nearest, other format", nearest, [x], [I8(0.81f, 2)], 1e-3, scales);
        var linear = Op("Resize", ["x0", "", "scales"], AttributeValue.Of("mode", "linear"), AttributeValue.Of("coordinate_transformation_mode", "half_pixel"));
        Check(output, "Resize linear half_pixel", linear, [x], [I8(0.7691f, -3)], 1e-3, scales);
        var aligned = Op("Resize", ["x0", "", "scales"], AttributeValue.Of("mode", "linear"), AttributeValue.Of("coordinate_transformation_mode", "align_corners"));
        Check(output, "Resize linear align_corners", aligned, [x], [I8(0.7691f)], 1e-3, new() { ["scales"] = Floats("scales", 1, 1, 1.5f, 3) });
        var cubic = Op("Resize", ["x0", "", "scales"], AttributeValue.Of("mode", "cubic"));
        Assert.Equal("Resize mode cubic has no integer rule", RuleHarness.Run(cubic, [x], [I8(0.7f)], scales).Island);
    }
}
