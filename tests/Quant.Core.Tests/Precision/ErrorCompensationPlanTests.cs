using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Core.Precision;
using Quant.Core.Tests.Export;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Precision;

/// <summary>node_config inputN: ec: where it applies (an int8 weight of an integer GEMM) and the positioned refusals elsewhere.</summary>
public class ErrorCompensationPlanTests
{
    private static QuantConfig Config(string node, int input, Preset? preset = null, QType? qtype = null) => new()
    {
        SourceFile = "q.yaml", Preset = preset,
        Nodes = { [node] = new NodeConfig { NodeName = node, QType = qtype, Inputs = { [input] = new InputQType(null, true, new SourcePosition("q.yaml", 7, 13)) } } },
    };

    [Fact]
    public void Ec_marks_the_int8_weight_of_an_integer_gemm_and_is_logged()
    {
        var m = SmallModels.Branchy();
        var plan = PrecisionPlanner.Plan(m, Config("c2", 1));
        var w = plan.ByName("c2")!.Inputs[1];
        Assert.True(w.ErrorCompensation);
        Assert.Equal(QType.Int8, w.QType);
        Assert.False(plan.ByName("c1")!.Inputs[1].ErrorCompensation);
        var entry = Assert.Single(plan.ChangeLog, c => c.NodeName == "c2");
        Assert.Equal((ChangeSite.Input, 1, "w2"), (entry.Site, entry.Index, entry.Tensor));
        Assert.Contains("'c2' + 'c2_split_low'", entry.Reason);

        // upper_bound gives GEMMs int16 weights; ec asks for the int8 split instead, on an int16-activation node.
        plan = PrecisionPlanner.Plan(m, Config("c2", 1, Preset.UpperBound));
        var c2 = plan.ByName("c2")!;
        Assert.Equal((QType.Int16, QType.Int8, true), (c2.Compute, c2.Inputs[1].QType, c2.Inputs[1].ErrorCompensation));
        Assert.Equal(QType.Int16, plan.ByName("c1")!.Inputs[1].QType);
    }

    [Theory]
    [InlineData("c2", 0, null, "q.yaml(7,13): error QB1004: node_config 'c2': input0: ec needs a constant weight; input0 't2' is computed at run time (ec splits weights, not activations)")]
    [InlineData("div1", 1, null, "q.yaml(7,13): error QB1004: node_config 'div1': input1: ec applies to the weight (input1) of Conv, ConvTranspose, MatMul and Gemm only; node 'div1' (Div) is a Div")]
    [InlineData("c2", 1, QType.Float16, "q.yaml(7,13): error QB1004: node_config 'c2': input1: ec splits an int8 weight, but the node runs in float16 (node_config); give it qtype: int8 or int16, or remove ec")]
    public void Ec_where_it_cannot_apply_is_a_positioned_error(string node, int input, QType? qtype, string expected)
    {
        var e = Assert.Throws<QuantException>(() => PrecisionPlanner.Plan(SmallModels.Branchy(), Config(node, input, qtype: qtype)));
        Assert.Equal(expected, e.ToDiagnostic());
    }

    [Fact]
    public void Ec_on_the_feature_input_of_a_real_resize_is_refused_as_not_supported()
    {
        var det = ExportFixtures.Prepare(TestAssets.DetModel);
        var resize = det.Graph.Nodes.First(n => n.OpType == "Resize").Name;
        var e = Assert.Throws<QuantException>(() => PrecisionPlanner.Plan(det, Config(resize, 0)));
        Assert.Equal(ErrorCode.ConfigInvalidValue, e.Code);
        Assert.Equal($"q.yaml(7,13): error QB1004: node_config '{resize}': input0: ec (error compensation of the feature input of Resize) is not supported yet; " +
                     "remove it, or give the input a wider qtype (input0: int16)", e.ToDiagnostic());
    }
}
