using Quant.Core.Compilation;
using Quant.Engine;
using Quant.Onnx;
using Quant.Runtime;
using Quant.TestSupport;

namespace Quant.Core.Tests.Compile;

public class IntegerIoTests
{
    /// <summary>int8 in → DequantizeLinear → Relu → QuantizeLinear → int8 out: the IO carries the Q/DQ parameters.</summary>
    [Fact]
    public void Integer_inputs_and_outputs_carry_their_scale_and_zero_point()
    {
        var g = new Graph { Name = "int-io" };
        g.Inputs.Add(new ValueInfo("q_in", ElementType.Int8, [Dim.Named("batch"), 4]));
        g.Outputs.Add(new ValueInfo("q_out", ElementType.Int8, [Dim.Named("batch"), 4]));
        g.Initializers["s_in"] = TensorData.FromFloats("s_in", [], [0.5f]);
        g.Initializers["z_in"] = TensorData.From<sbyte>("z_in", ElementType.Int8, [], [3]);
        g.Initializers["s_out"] = TensorData.FromFloats("s_out", [], [0.25f]);
        g.Initializers["z_out"] = TensorData.From<sbyte>("z_out", ElementType.Int8, [], [-2]);
        g.Nodes.Add(new Node("dq", "DequantizeLinear", "", ["q_in", "s_in", "z_in"], ["x"]));
        g.Nodes.Add(new Node("relu", "Relu", "", ["x"], ["y"]));
        g.Nodes.Add(new Node("q", "QuantizeLinear", "", ["y", "s_out", "z_out"], ["q_out"]));
        var model = new OnnxModel(g);
        model.Opsets[""] = 17;
        var dir = TestAssets.TempDir("compile-int-io");
        var onnx = Path.Combine(dir, "int-io.onnx");
        OnnxModelWriter.Save(model, onnx);

        var summary = CompileStage.Run(onnx, Path.Combine(dir, "int-io.qbm"));
        var compiled = QbmModel.Load(summary.QbmPath);
        Assert.Equal(new QbmQuantization(0.5f, 3), compiled.File.Inputs[0].Quantization);
        Assert.Equal(new QbmQuantization(0.25f, -2), compiled.File.Outputs[0].Quantization);
        Assert.Equal("batch", compiled.File.Inputs[0].Shape![0].Symbol);
        Assert.Equal(new long[] { 1, 4 }, compiled.File.Values[compiled.File.Inputs[0].Value].Dims);

        var input = Tensor.From(new sbyte[] { -128, 0, 3, 127, 5, -5, 100, -100 }, 2, 4);
        var expected = new InferenceSession(OnnxModelReader.Load(onnx)).Run(new Dictionary<string, Tensor> { ["q_in"] = input })["q_out"];
        var actual = compiled.Run(new Dictionary<string, Tensor> { ["q_in"] = input })["q_out"];
        Assert.Equal(expected.Span<sbyte>().ToArray(), actual.Span<sbyte>().ToArray());
        // real = 0.5·(q − 3), relu, then q = round(real / 0.25) − 2: hand-computed for the first four.
        Assert.Equal(new sbyte[] { -2, -2, -2, 127 }, actual.Span<sbyte>()[..4].ToArray());
    }
}
