using Quant.Core.Passes;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;
using static Quant.Core.Tests.Passes.PassAssert;

namespace Quant.Core.Tests.Passes;

/// <summary>Small hand-built graphs, one behaviour each; every numeric fold is checked by running both models.</summary>
public class GraphPreparationTests
{
    [Fact]
    public void Batchnorm_folds_into_conv_grouped_conv_transpose_and_gemm()
    {
        var b = new PassGraph().Input("x", 1, 4, 6, 6).Input("v", 3, 5);
        b.ConstantNode("w", TensorData.FromFloats("w", [6, 2, 3, 3], Enumerable.Range(0, 108).Select(i => (float)Math.Sin(i)).ToArray()));
        b.Add("conv", "Conv", ["x", "w"], ["c"], AttributeValue.Of("group", 2L), AttributeValue.Of("pads", new long[] { 1, 1, 1, 1 }));
        b.BatchNorm("bn1", "c", "c_bn", 6);
        b.Add("deconv", "ConvTranspose", ["c_bn", b.Init("wt", [6, 2, 2, 2]), b.Init("bt", [4])], ["d"], AttributeValue.Of("group", 2L), AttributeValue.Of("strides", new long[] { 2, 2 }));
        b.BatchNorm("bn2", "d", "d_bn", 4);
        b.Add("gemm", "Gemm", ["v", b.Init("gw", [7, 5]), b.Init("gc", [7])], ["g"], AttributeValue.Of("transB", 1L), AttributeValue.Of("alpha", 0.5f), AttributeValue.Of("beta", 2f));
        b.BatchNorm("bn3", "g", "g_bn", 7);
        b.Output("d_bn").Output("g_bn");
        var model = b.Model();
        var p = GraphPreparation.Prepare(model);

        Assert.Equal(["bn1", "bn2", "bn3"], p.FoldedBatchNorms.Select(f => f.Node));
        Assert.Equal(["conv", "deconv", "gemm"], p.FoldedBatchNorms.Select(f => f.IntoNode));
        Assert.DoesNotContain(p.Model.Graph.Nodes, n => n.OpType is "BatchNormalization" or "Constant");
        Assert.Equal(1, p.ConstantNodesConverted);
        Assert.Equal(["c_bn"], p.Model.Graph.Nodes.Single(n => n.Name == "conv").Outputs);
        Assert.Equal(3, p.Model.Graph.Nodes.Single(n => n.Name == "conv").Inputs.Count); // a bias was created
        Assert.Null(p.PreparedValueName("c"));
        Assert.Contains("bn1", p.WhyVanished("c"));
        Assert.Equal(1f, p.Model.Graph.Nodes.Single(n => n.Name == "gemm").GetFloat("beta", 0));
        AssertSameFunction(model, p, new() { ["x"] = Random(1, 1, 4, 6, 6), ["v"] = Random(2, 3, 5) });
        Assert.Equal(4, model.Graph.Nodes.Count(n => n.OpType is "BatchNormalization" or "Constant")); // the input model is untouched
    }

    [Fact]
    public void Batchnorm_that_cannot_fold_stays_with_reason()
    {
        var b = new PassGraph().Input("x", 1, 3, 4, 4).Input("mean", 3);
        b.Add("conv", "Conv", ["x", b.Init("w", [3, 3, 1, 1])], ["c"]);
        b.BatchNorm("bn_shared", "c", "y1", 3);             // conv output also read by relu_side
        b.Add("relu_side", "Relu", ["c"], ["y2"]);
        b.Add("relu", "Relu", ["y1"], ["r"]);
        b.BatchNorm("bn_after_relu", "r", "y3", 3);         // producer is not a conv
        b.Add("conv2", "Conv", ["y3", b.Init("w2", [3, 3, 1, 1])], ["c2"]);
        b.Add("bn_runtime", "BatchNormalization", ["c2", b.Init("g", [3], 1, 2), b.Init("bb", [3]), "mean", b.Init("var", [3], 1, 2)], ["y4"]);
        b.Output("y2").Output("y4");
        var model = b.Model();
        var p = GraphPreparation.Prepare(model);

        Assert.Empty(p.FoldedBatchNorms);
        var reasons = p.UnfoldedBatchNorms.ToDictionary(f => f.Node, f => f.Reason);
        Assert.Contains("also feeds 1 other node(s) ('relu_side')", reasons["bn_shared"]);
        Assert.Contains("comes from Relu 'relu'", reasons["bn_after_relu"]);
        Assert.Contains("mean is not constant", reasons["bn_runtime"]);
        Assert.Equal(3, p.Model.Graph.Nodes.Count(n => n.OpType == "BatchNormalization"));
        // The conv whose output feeds BN and Relu: that Relu cannot fuse; the Relu behind the unfolded BN cannot either.
        Assert.Contains(p.Fusions, f => f is { ProducerNode: "conv", Activation: "Relu", Fused: false } && f.Reason.Contains("also feeds 1 other node"));
        Assert.Contains(p.Fusions, f => f is { ProducerNode: "conv", Fused: false } && f.Reason.Contains("BatchNormalization 'bn_shared' stands between"));
        AssertSameFunction(model, p, new() { ["x"] = Random(3, 1, 3, 4, 4), ["mean"] = Random(4, 3) });
    }

    [Fact]
    public void Identity_and_dropout_go_and_output_names_stay()
    {
        var b = new PassGraph().Input("x", 2, 3);
        b.Add("relu", "Relu", ["x"], ["r"]);
        b.Add("id1", "Identity", ["r"], ["r_id"]);
        b.Add("drop", "Dropout", ["r_id"], ["r_drop"]);
        b.Add("neg", "Neg", ["r_drop"], ["n"]);
        b.Add("id_out", "Identity", ["n"], ["out"]);
        b.Add("keep_mask", "Dropout", ["n"], ["n2", "mask"]);
        b.Add("cast", "Cast", ["mask"], ["mask_f"], AttributeValue.Of("to", (long)ElementType.Float));
        b.Add("sum", "Add", ["n2", "mask_f"], ["out2"]);
        b.Output("out").Output("out2");
        var model = b.Model(13);
        var p = GraphPreparation.Prepare(model);

        var ops = p.Model.Graph.Nodes.Select(n => n.Name).ToList();
        Assert.DoesNotContain("id1", ops);
        Assert.DoesNotContain("drop", ops);
        Assert.DoesNotContain("id_out", ops);
        Assert.Contains("keep_mask", ops); // its mask is read
        Assert.Equal(["r"], p.Model.Graph.Nodes.Single(n => n.Name == "neg").Inputs);
        Assert.Equal(["out"], p.Model.Graph.Nodes.Single(n => n.Name == "neg").Outputs); // renamed to the graph output
        Assert.Equal("r", p.PreparedValueName("r_drop"));
        Assert.Equal("out", p.PreparedValueName("n"));
        Assert.Equal(["out", "n"], p.OriginalValueNames("out"));
        Assert.Equal(["r", "r_drop", "r_id"], p.OriginalValueNames("r").Order(StringComparer.Ordinal));
        Assert.Contains(p.RemovedNodes, r => r.Name == "drop" && r.Reason.Contains("Dropout in inference mode"));
        AssertSameFunction(model, p, new() { ["x"] = Random(5, 2, 3) });
    }

    [Fact]
    public void Constant_folding_evaluates_constant_nodes_but_keeps_runtime_shape_arithmetic()
    {
        var b = new PassGraph().Input("x", 2, 3);
        b.ConstantNode("a", TensorData.FromFloats("a", [3], [1, 2, 3]));
        b.ConstantNode("shape", TensorData.FromInt64s("shape", [2], [1, 3]));
        b.Add("scale", "Mul", ["a", "a"], ["a2"]);                      // constant: folds
        b.Add("reshape_c", "Reshape", ["a2", "shape"], ["a2r"]);        // constant chain: folds
        b.Add("sh", "Shape", ["x"], ["xs"]);                            // runtime: stays
        b.Add("rs", "Reshape", ["x", "xs"], ["xr"]);
        b.Add("mul", "Mul", ["xr", "a2r"], ["y"]);
        b.Add("unused", "Neg", ["a2"], ["dead"]);                      // dead: reaches no output
        b.Output("y");
        var model = b.Model();
        var p = GraphPreparation.Prepare(model);

        Assert.Equal(2, p.ConstantNodesConverted);
        Assert.Equal(["scale", "reshape_c"], p.ConstantFoldedNodes.Select(r => r.Name));
        Assert.Equal(new[] { 1f, 4f, 9f }, p.Model.Graph.Initializers["a2r"].As<float>().ToArray());
        Assert.Equal([1L, 3L], p.Model.Graph.Initializers["a2r"].Dims);
        Assert.Contains(p.Model.Graph.Nodes, n => n.Name == "sh");
        Assert.Equal(["unused"], p.DeadNodes.Select(d => d.Name));
        Assert.DoesNotContain(p.Model.Graph.Nodes, n => n.Name == "unused");
        Assert.Contains("a2", p.RemovedInitializers);
        Assert.Contains("a", p.RemovedInitializers);
        Assert.Contains("shape", p.RemovedInitializers);
        AssertSameFunction(model, p, new() { ["x"] = Random(6, 2, 3) });
    }

    [Fact]
    public void Fusion_decisions_name_their_reasons()
    {
        var b = new PassGraph().Input("x", 1, 2, 5, 5).Input("hi", 1);
        string W(string n) => b.Init(n, [2, 2, 1, 1]);
        b.Add("c_relu", "Conv", ["x", W("w1")], ["c1"]);
        b.Add("relu", "Relu", ["c1"], ["a1"]);
        b.Add("c_clip", "Conv", ["a1", W("w2")], ["c2"]);
        b.Add("clip", "Clip", ["c2", b.Init("zero", [], 0, 0), b.Init("six", [], 6, 6)], ["a2"]);
        b.Add("c_clip_rt", "Conv", ["a2", W("w3")], ["c3"]);
        b.Add("clip_rt", "Clip", ["c3", "", "hi"], ["a3"]);
        b.Add("c_hsig", "Conv", ["a3", W("w4")], ["c4"]);
        b.Add("hsig", "HardSigmoid", ["c4"], ["a4"]);
        b.Add("c_two", "Conv", ["a4", W("w5")], ["c5"]);
        b.Add("relu5", "Relu", ["c5"], ["a5"]);
        b.Add("side", "Neg", ["c5"], ["n5"]);
        b.Add("sum", "Add", ["a5", "n5"], ["s"]);
        // Decomposed HardSwish: x * Clip(x + 3, 0, 6) / 6.
        b.Add("c_hs", "Conv", ["s", W("w6")], ["c6"]);
        b.Add("hs_add", "Add", ["c6", b.Init("three", [], 3, 3)], ["h1"]);
        b.Add("hs_clip", "Clip", ["h1", "zero", "six"], ["h2"]);
        b.Add("hs_mul", "Mul", ["c6", "h2"], ["h3"]);
        b.Add("hs_div", "Div", ["h3", "six"], ["y"]);
        b.Output("y");
        var model = b.Model();
        // Composite fusion off: the decomposed HardSwish is recognised piece by piece.
        var p = GraphPreparation.Prepare(model, new PreparationOptions { FuseCompositeOps = false });
        var f = p.Fusions.ToDictionary(r => r.ProducerNode);

        Assert.True(f["c_relu"].Fused);
        Assert.True(f["c_clip"].Fused);
        Assert.Equal("Clip bounds not constant", f["c_clip_rt"].Reason);
        Assert.False(f["c_hsig"].Fused);
        Assert.Contains("not supported for fusion", f["c_hsig"].Reason);
        Assert.False(f["c_two"].Fused);
        Assert.Contains("also feeds 1 other node(s) ('side' (Neg))", f["c_two"].Reason);
        Assert.True(f["c_hs"].Fused);
        Assert.Equal("HardSwish", f["c_hs"].Activation);
        Assert.Equal(["hs_add", "hs_clip", "hs_mul", "hs_div"], f["c_hs"].ActivationNodes);
        Assert.Equal("y", f["c_hs"].OutputValue);
        // A target that keeps HardSigmoid fused, and one without HardSwish.
        var p2 = GraphPreparation.Prepare(model, new PreparationOptions { FusibleActivations = new HashSet<string> { "Relu", "HardSigmoid" } });
        Assert.True(p2.Fusions.Single(r => r.ProducerNode == "c_hsig").Fused);
        Assert.False(p2.Fusions.Single(r => r.ProducerNode == "c_hs").Fused);
        Assert.Equal(model.Graph.Nodes.Count, p.Model.Graph.Nodes.Count); // decisions only: the graph is not rewritten

        // Composite fusion on (the default): the same decision for the one HardSwish node that replaced the pieces.
        var fused = GraphPreparation.Prepare(model).Fusions.Single(r => r.ProducerNode == "c_hs");
        Assert.True(fused.Fused);
        Assert.Equal("HardSwish", fused.Activation);
        Assert.Equal(["y"], fused.ActivationNodes);
        Assert.Equal("y", fused.OutputValue);
    }

    [Fact]
    public void Bias_add_after_conv_transpose_folds_only_when_per_channel()
    {
        var b = new PassGraph().Input("x", 1, 3, 4, 4);
        b.Add("ct", "ConvTranspose", ["x", b.Init("w", [3, 2, 2, 2])], ["t"], AttributeValue.Of("strides", new long[] { 2, 2 }));
        b.Add("bias", "Add", ["t", b.Init("b", [1, 2, 1, 1])], ["tb"]);
        b.BatchNorm("bn", "tb", "y", 2);
        b.Add("c2", "Conv", ["y", b.Init("w2", [2, 2, 1, 1])], ["z"]);
        b.Add("not_bias", "Add", ["z", b.Init("pos", [8])], ["out"]); // varies along W, not per channel
        b.Output("out");
        var model = b.Model();
        var p = GraphPreparation.Prepare(model);
        Assert.Contains(p.Folds, r => r is { Node: "bias", Folded: true, IntoNode: "ct" });
        Assert.Contains(p.Folds, r => r is { Node: "bn", Folded: true, IntoNode: "ct" });
        Assert.Contains(p.Folds, r => r is { Node: "not_bias", Folded: false } && r.Reason.Contains("not one value per output channel"));
        Assert.Equal(["y"], p.Model.Graph.Nodes.Single(n => n.Name == "ct").Outputs);
        AssertSameFunction(model, p, new() { ["x"] = Random(8, 1, 3, 4, 4) });
    }
}
