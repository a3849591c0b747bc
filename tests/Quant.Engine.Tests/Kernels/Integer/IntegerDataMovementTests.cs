using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.Integer.IntegerReference;

namespace Quant.Engine.Tests.Kernels.Integer;

/// <summary>
/// Spec §7: the data-movement and selection ops of the quantized model run the standard ONNX kernels on int8/int16.
/// Each op on integers must give exactly the integers the same op gives on their float values (which are exact).
/// </summary>
public class IntegerDataMovementTests
{
    private static Tensor L(params long[] v) => Tensor.From(v, v.Length);

    public static TheoryData<string, string> Cases()
    {
        var d = new TheoryData<string, string>();
        foreach (var op in new[] { "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Split", "Gather", "Concat",
                     "MaxPool", "GlobalMaxPool", "ReduceMax", "Resize" })
            foreach (var t in new[] { "int8", "int16" })
                d.Add(op, t);
        return d;
    }

    private static (Tensor?[] Extra, AttributeValue[] Attrs, int Outputs) Setup(string op) => op switch
    {
        "Reshape" => ([L(3, -1)], [], 1),
        "Flatten" => ([], [AttributeValue.Of("axis", 2L)], 1),
        "Squeeze" => ([L(0)], [], 1),
        "Unsqueeze" => ([L(1)], [], 1),
        "Transpose" => ([], [AttributeValue.Of("perm", new long[] { 0, 3, 1, 2 })], 1),
        "Slice" => ([L(1, 0), L(3, 9), L(1, 2), L(1, 3)], [], 1),
        "Split" => ([L(1, 2)], [AttributeValue.Of("axis", 1L)], 2),
        "Gather" => ([L(2, 0, 2)], [AttributeValue.Of("axis", 1L)], 1),
        "MaxPool" => ([], [AttributeValue.Of("kernel_shape", new long[] { 3, 2 }), AttributeValue.Of("pads", new long[] { 1, 0, 1, 1 }), AttributeValue.Of("strides", new long[] { 2, 1 })], 1),
        "ReduceMax" => ([], [AttributeValue.Of("axes", new long[] { 1, 3 })], 1),
        "Resize" => ([null, Tensor.From(new float[] { 1, 1, 2, 3 }, 4)], [AttributeValue.Of("mode", "nearest"), AttributeValue.Of("coordinate_transformation_mode", "asymmetric"), AttributeValue.Of("nearest_mode", "floor")], 1),
        _ => ([], [], 1),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Integer_data_movement_equals_the_float_op_on_the_same_values(string op, string type)
    {
        var t = type == "int8" ? ElementType.Int8 : ElementType.Int16;
        var rng = new Random(op.Length * 31 + (int)t);
        var q = RandomInts(rng, t, [1, 3, 5, 11]);
        var f = Tensor.From(Enumerable.Range(0, q.Length).Select(i => (float)At(q, i)).ToArray(), q.Shape);
        var (extra, attrs, outputs) = Setup(op);
        Tensor?[] Inputs(Tensor x) => op == "Concat" ? [x, x] : [x, .. extra];
        var yq = ElementwiseReference.RunNode(op, 13, Inputs(q), outputs, 2, op == "Concat" ? [AttributeValue.Of("axis", 2L)] : attrs);
        var yf = ElementwiseReference.RunNode(op, 13, Inputs(f), outputs, 2, op == "Concat" ? [AttributeValue.Of("axis", 2L)] : attrs);
        for (int k = 0; k < outputs; k++)
        {
            Assert.Equal(t, yq[k].Type);
            Assert.Equal(yf[k].Shape, yq[k].Shape);
            for (int i = 0; i < yq[k].Length; i++) Assert.Equal(yf[k].ReadOnlySpan<float>()[i], (float)At(yq[k], i));
        }
    }
}
