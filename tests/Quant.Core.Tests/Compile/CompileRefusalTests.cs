using Quant.Core.Compilation;
using Quant.Core.Diagnostics;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Compile;

/// <summary>What compile refuses, with one positioned error each, and writes nothing then.</summary>
public class CompileRefusalTests
{
    private static QuantException Refused(string model, CompileOptions options, ErrorCode code, string mentions)
    {
        var dir = TestAssets.TempDir("compile-refused");
        var qbm = Path.Combine(dir, "m.qbm");
        var e = Assert.Throws<QuantException>(() => CompileStage.Run(model, qbm, options));
        Assert.Equal(code, e.Code);
        Assert.Equal(model, e.Where.File);
        Assert.Contains(mentions, e.Message);
        Assert.Empty(Directory.GetFiles(dir));
        return e;
    }

    [Fact]
    public void A_planned_shape_for_a_name_that_is_no_input_is_refused() =>
        Refused(TestAssets.ClsModel, new CompileOptions { InputShapes = new Dictionary<string, int[]> { ["image"] = [1, 3, 48, 192] } },
            ErrorCode.CompileInvalidInputShape, "'image' is not an input of the model; its inputs are x");

    [Fact]
    public void A_planned_shape_that_contradicts_the_declared_dims_is_refused() =>
        Refused(TestAssets.RecModel, new CompileOptions { InputShapes = new Dictionary<string, int[]> { ["x"] = [1, 3, 32, 320] } },
            ErrorCode.CompileInvalidInputShape, "shape [1,3,32,320] does not fit the declared");

    [Fact]
    public void A_subgraph_attribute_is_refused_naming_the_node()
    {
        var g = new Graph { Name = "with-if" };
        g.Inputs.Add(new ValueInfo("c", ElementType.Bool, []));
        g.Outputs.Add(new ValueInfo("y", ElementType.Float, null));
        var branch = new Graph { Name = "branch" };
        branch.Initializers["k"] = TensorData.FromFloats("k", [1], [1f]);
        branch.Outputs.Add(new ValueInfo("k", ElementType.Float, [1]));
        var node = new Node("choose", "If", "", ["c"], ["y"]);
        node.Set(new AttributeValue("then_branch", AttributeKind.Graph) { Graph = branch });
        node.Set(new AttributeValue("else_branch", AttributeKind.Graph) { Graph = branch });
        g.Nodes.Add(node);
        var model = new OnnxModel(g);
        model.Opsets[""] = 17;
        var path = Path.Combine(TestAssets.TempDir("compile-if"), "if.onnx");
        OnnxModelWriter.Save(model, path);
        Refused(path, new CompileOptions(), ErrorCode.CompileUnsupportedModel, "node 'choose' (If): attribute 'then_branch' (Graph) cannot be stored");
    }
}
