using Quant.Core.Passes;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;
using static Quant.Core.Tests.Passes.PassAssert;

namespace Quant.Core.Tests.Passes;

/// <summary>Cross-layer equalization: weight ranges even out across channels, the function stays (engine and ONNX Runtime).</summary>
public class CrossLayerEqualizationTests
{
    /// <summary>conv1 (channel 2 fifty times larger) -Relu-> depthwise -LeakyRelu-> conv3 -HardSwish-> conv4 -> conv5 (ConvTranspose).</summary>
    private static OnnxModel Chain()
    {
        var b = new PassGraph().Input("x", 1, 3, 10, 10);
        string w1 = b.Init("w1", [8, 3, 3, 3]);
        var v = b.G.Initializers[w1].As<float>().ToArray();
        for (int k = 2 * 27; k < 3 * 27; k++) v[k] *= 50;
        b.G.Initializers[w1] = TensorData.FromFloats(w1, [8, 3, 3, 3], v);
        var pads = AttributeValue.Of("pads", new long[] { 1, 1, 1, 1 });
        b.Add("conv1", "Conv", ["x", w1, b.Init("b1", [8])], ["c1"], pads);
        b.Add("relu1", "Relu", ["c1"], ["a1"]);
        b.Add("dw", "Conv", ["a1", b.Init("w2", [8, 1, 3, 3]), b.Init("b2", [8])], ["c2"], pads, AttributeValue.Of("group", 8L));
        b.Add("leaky", "LeakyRelu", ["c2"], ["a2"], AttributeValue.Of("alpha", 0.1f));
        b.Add("conv3", "Conv", ["a2", b.Init("w3", [6, 8, 1, 1]), b.Init("b3", [6])], ["c3"]);
        b.Add("hswish", "HardSwish", ["c3"], ["a3"]);
        b.Add("conv4", "Conv", ["a3", b.Init("w4", [4, 6, 1, 1])], ["c4"]);
        b.Add("convT", "ConvTranspose", ["c4", b.Init("w5", [4, 2, 2, 2]), b.Init("b5", [2])], ["y"], AttributeValue.Of("strides", new long[] { 2, 2 }));
        b.Output("y");
        return b.Model(14);
    }

    [Fact]
    public void Pairs_through_relu_like_activations_are_equalized_and_the_function_stays()
    {
        var model = Chain();
        var p = GraphPreparation.Prepare(model, new PreparationOptions { Equalize = true });
        var e = p.Equalizations.ToDictionary(r => r.First);

        Assert.True(e["conv1"] is { Equalized: true, Second: "dw", Activation: "Relu" });
        Assert.True(e["dw"] is { Equalized: true, Second: "conv3", Activation: "LeakyRelu" });
        Assert.True(e["conv4"] is { Equalized: true, Second: "convT", Activation: "" });
        Assert.False(e["conv3"].Equalized);
        Assert.Equal("conv4", e["conv3"].Second);
        Assert.Contains("HardSwish 'hswish' between them is not positively homogeneous", e["conv3"].Reason);
        Assert.Equal(4, p.Equalizations.Count);

        // conv1's outlier channel is ~50x the depthwise's range for it; afterwards every channel is balanced.
        Assert.True(e["conv1"].ImbalanceBefore > 20, e["conv1"].ToString());
        Assert.True(e["conv1"].ImbalanceAfter < 1.01, e["conv1"].ToString());
        // At the fixed point every channel's range is the same on both sides of the pair.
        var g = p.Model.Graph;
        var conv1 = g.Nodes.Single(n => n.Name == "conv1");
        var dw = g.Nodes.Single(n => n.Name == "dw");
        var w1 = g.Initializers[conv1.Inputs[1]].As<float>().ToArray();
        var w2 = g.Initializers[dw.Inputs[1]].As<float>().ToArray();
        for (int c = 0; c < 8; c++)
        {
            double r1 = w1.Skip(27 * c).Take(27).Max(Math.Abs), r2 = w2.Skip(9 * c).Take(9).Max(Math.Abs);
            Assert.True(Math.Abs(r1 - r2) <= 1e-3 * r1, $"channel {c}: conv1 range {r1}, depthwise range {r2}");
        }
        // The original is untouched.
        Assert.Equal(model.Graph.Initializers["w1"].As<float>()[2 * 27], Chain().Graph.Initializers["w1"].As<float>()[2 * 27]);

        AssertSameEverywhere(model, p, new() { ["x"] = Random(31, 1, 3, 10, 10) });
    }

    [Fact]
    public void Without_the_option_nothing_is_equalized()
    {
        var model = Chain();
        var p = GraphPreparation.Prepare(model);
        Assert.Empty(p.Equalizations);
        Assert.Equal(model.Graph.Initializers["w1"].Raw, p.Model.Graph.Initializers["w1"].Raw);
    }
}
