using Quant.Core.Passes;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;
using static Quant.Core.Tests.Passes.PassAssert;

namespace Quant.Core.Tests.Passes;

/// <summary>Composite ops written out in smaller ops become one op; the prepared model computes the same in the engine and in ONNX Runtime.</summary>
public class CompositeFusionTests
{
    /// <summary>Four HardSwish forms in a row, the way Paddle (opset 9, Clip bounds as attributes) and others write them.</summary>
    private static OnnxModel HardSwishForms(int opset)
    {
        var b = new PassGraph().Input("x", 1, 3, 8, 8);
        string three = b.Init("three", [], 3, 3), six = b.Init("six", [1], 6, 6), sixth = b.Init("sixth", [], 1f / 6, 1f / 6);
        string zero = b.Init("zero", [], 0, 0);
        AttributeValue[] ClipAttrs() => opset < 11 ? [AttributeValue.Of("min", 0f), AttributeValue.Of("max", 6f)] : [];
        string[] ClipInputs(string v) => opset < 11 ? [v] : [v, zero, six];
        b.Add("c0", "Conv", ["x", b.Init("w0", [3, 3, 3, 3]), b.Init("b0", [3])], ["y0"], AttributeValue.Of("pads", new long[] { 1, 1, 1, 1 }));
        // Paddle: Add(x, 3) -> Clip(0, 6) -> Mul(x, .) -> Div(., 6)
        b.Add("a1", "Add", ["y0", three], ["a1"]);
        b.Add("k1", "Clip", ClipInputs("a1"), ["k1"], ClipAttrs());
        b.Add("m1", "Mul", ["y0", "k1"], ["m1"]);
        b.Add("d1", "Div", ["m1", six], ["h1"]);
        // constant first, division before the product, as a multiplication by 1/6
        b.Add("a2", "Add", [three, "h1"], ["a2"]);
        b.Add("k2", "Clip", ClipInputs("a2"), ["k2"], ClipAttrs());
        b.Add("d2", "Mul", [sixth, "k2"], ["d2"]);
        b.Add("m2", "Mul", ["d2", "h1"], ["h2"]);
        // x * HardSigmoid(x; 1/6, 0.5)
        b.Add("s3", "HardSigmoid", ["h2"], ["s3"], AttributeValue.Of("alpha", 1f / 6), AttributeValue.Of("beta", 0.5f));
        b.Add("m3", "Mul", ["h2", "s3"], ["h3"]);
        // not HardSwish: HardSigmoid with Paddle's default slope 0.2
        b.Add("s4", "HardSigmoid", ["h3"], ["s4"], AttributeValue.Of("alpha", 0.2f), AttributeValue.Of("beta", 0.5f));
        b.Add("m4", "Mul", ["h3", "s4"], ["h4"]);
        b.Output("h4");
        return b.Model(opset);
    }

    [Theory]
    [InlineData(9)]
    [InlineData(13)]
    public void HardSwish_forms_become_one_node_each_and_the_opset_is_raised(int opset)
    {
        var model = HardSwishForms(opset);
        var p = GraphPreparation.Prepare(model);
        var g = p.Model.Graph;

        Assert.Equal(14, p.Model.OpsetFor(""));
        Assert.Equal(["h1", "h2", "h3"], g.Nodes.Where(n => n.OpType == "HardSwish").Select(n => n.Outputs[0]));
        Assert.Equal(3, p.Composites.Count);
        Assert.All(p.Composites, c => Assert.True(c.Fused, c.ToString()));
        Assert.Equal(["a1", "k1", "m1", "d1"], p.Composites[0].FromNodes);
        Assert.Equal(["a2", "k2", "d2", "m2"], p.Composites[1].FromNodes);
        Assert.Equal(["s3", "m3"], p.Composites[2].FromNodes);
        Assert.Equal(("y0", "h1"), (p.Composites[0].Input, p.Composites[0].Output));
        // The fused node is named after the value it produces; the pieces are gone, with the reason.
        Assert.Equal("h1", p.Composites[0].Node);
        Assert.Contains(p.RemovedNodes, r => r is { Name: "k1", OpType: "Clip" } && r.Reason == "fused into HardSwish 'h1'");
        Assert.Null(p.PreparedValueName("k1"));
        Assert.Contains("HardSwish 'h1'", p.WhyVanished("k1"));
        Assert.Equal("h1", p.PreparedValueName("h1"));
        // The slope-0.2 HardSigmoid times its input stays as it is.
        Assert.Contains(g.Nodes, n => n is { Name: "s4", OpType: "HardSigmoid" });
        // The Conv + HardSwish pair is decided on the fused node.
        Assert.Contains(p.Fusions, f => f is { ProducerNode: "c0", Activation: "HardSwish", Fused: true } && f.ActivationNodes.SequenceEqual(["h1"]));

        AssertSameEverywhere(model, p, new() { ["x"] = Random(11, 1, 3, 8, 8) });
    }

    [Fact]
    public void A_hardswish_whose_pieces_are_read_elsewhere_stays_written_out()
    {
        var b = new PassGraph().Input("x", 1, 4);
        string three = b.Init("three", [], 3, 3), six = b.Init("six", [], 6, 6), zero = b.Init("zero", [], 0, 0);
        b.Add("a1", "Add", ["x", three], ["a1"]);
        b.Add("k1", "Clip", ["a1", zero, six], ["k1"]);
        b.Add("m1", "Mul", ["x", "k1"], ["m1"]);
        b.Add("d1", "Div", ["m1", six], ["h1"]);
        b.Add("side", "Neg", ["k1"], ["n"]); // the clipped value is used on its own
        // Clip to 5, not 6: not HardSwish.
        b.Add("a2", "Add", ["h1", three], ["a2"]);
        b.Add("k2", "Clip", ["a2", zero, b.Init("five", [], 5, 5)], ["k2"]);
        b.Add("m2", "Mul", ["h1", "k2"], ["m2"]);
        b.Add("d2", "Div", ["m2", six], ["h2"]);
        b.Output("h2").Output("n");
        var model = b.Model();
        var p = GraphPreparation.Prepare(model);
        Assert.Empty(p.Composites);
        Assert.DoesNotContain(p.Model.Graph.Nodes, n => n.OpType == "HardSwish");
        Assert.Equal(13, p.Model.OpsetFor("")); // nothing fused, nothing raised
    }

    [Fact]
    public void When_the_opset_cannot_be_raised_nothing_is_fused_and_the_record_says_why()
    {
        var b = new PassGraph().Input("x", 1, 2, 4, 4);
        b.Add("up", "Upsample", ["x"], ["u"], AttributeValue.Of("scales", new[] { 1f, 1f, 2f, 2f }));
        b.Add("hs", "HardSigmoid", ["u"], ["s"], AttributeValue.Of("alpha", 1f / 6), AttributeValue.Of("beta", 0.5f));
        b.Add("m", "Mul", ["u", "s"], ["y"]);
        b.Output("y");
        var p = GraphPreparation.Prepare(b.Model(8));
        var c = Assert.Single(p.Composites);
        Assert.False(c.Fused);
        Assert.Equal("", c.Node);
        Assert.Contains("HardSwish needs opset 14 and the model's opset 8 cannot be raised", c.Reason);
        Assert.Contains("Upsample", c.Reason);
        Assert.Equal(8, p.Model.OpsetFor(""));
        Assert.Equal(["Upsample", "HardSigmoid", "Mul"], p.Model.Graph.Nodes.Select(n => n.OpType));
    }

    [Theory]
    [InlineData(13)] // ReduceMean axes as an attribute
    [InlineData(18)] // ReduceMean axes as an input
    public void Transformer_layer_norms_and_gelus_become_one_node_each(int opset)
    {
        var model = TransformerFixture.Build(opset);
        var p = GraphPreparation.Prepare(model);
        var g = p.Model.Graph;

        Assert.Equal(21, p.Model.OpsetFor("")); // Gelu is opset 20; the exporter writes 21 at most
        Assert.Equal(["ln1.out", "ln2.out", "ln3.n"], g.Nodes.Where(n => n.OpType == "LayerNormalization").Select(n => n.Outputs[0]));
        Assert.Equal(3, g.Nodes.Count(n => n.OpType == "Gelu"));
        Assert.DoesNotContain(g.Nodes, n => n.OpType is "ReduceMean" or "Sqrt" or "Pow" or "Erf" or "Reciprocal" or "Div" or "Sub");
        Assert.All(p.Composites, c => Assert.True(c.Fused, c.ToString()));
        Assert.Equal(["ln1.mean", "ln1.sub", "ln1.sq", "ln1.var", "ln1.eps", "ln1.sqrt", "ln1.div", "ln1.scale", "ln1.shift"],
            p.Composites.Single(c => c.Node == "ln1.out").FromNodes);
        Assert.Equal(["ln2.mean", "ln2.sub", "ln2.sq", "ln2.var", "ln2.eps", "ln2.sqrt", "ln2.rcp", "ln2.div", "ln2.scale", "ln2.shift"],
            p.Composites.Single(c => c.Node == "ln2.out").FromNodes);
        Assert.Equal(["gelu2.half", "gelu2.scale", "gelu2.erf", "gelu2.one", "gelu2.mul"], p.Composites.Single(c => c.Output == "gelu2.out").FromNodes);

        var ln1 = g.Nodes.Single(n => n.Name == "ln1.out");
        Assert.Equal(["x", "ln1.gamma", "ln1.beta"], ln1.Inputs);
        Assert.Equal(2, ln1.GetInt("axis", -1));
        Assert.Equal(1e-5f, ln1.GetFloat("epsilon", 0));
        // γ [1, 1, 16] takes the normalized shape [16]; a LayerNorm without γ and β gets Scale = ones and no B.
        var ln2 = g.Nodes.Single(n => n.Name == "ln2.out");
        Assert.Equal([16L], g.Initializers[ln2.Inputs[1]].Dims);
        Assert.Equal(model.Graph.Initializers["ln2.gamma"].As<float>().ToArray(), g.Initializers[ln2.Inputs[1]].As<float>().ToArray());
        var ln3 = g.Nodes.Single(n => n.Name == "ln3.n");
        Assert.Equal(2, ln3.Inputs.Count);
        Assert.All(g.Initializers[ln3.Inputs[1]].As<float>().ToArray(), v => Assert.Equal(1f, v));

        AssertSameEverywhere(model, p, new() { ["x"] = Random(21, 2, TransformerFixture.Tokens, TransformerFixture.Width) });
    }
}
