using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.ShapeKernelHarness;

namespace Quant.Engine.Tests.Kernels;

public class ConstantTests
{
    private static Tensor Run(params AttributeValue[] attrs) => Run1("Constant", 13, attrs);

    [Fact]
    public void Every_value_attribute_kind()
    {
        var t = Run(AttributeValue.Of("value", TensorData.From("c", ElementType.Int32, [2, 2], new[] { 1, 2, 3, 4 })));
        Assert.Equal([2, 2], t.Shape);
        Assert.Equal([1, 2, 3, 4], t.Span<int>().ToArray());

        var f = Run(AttributeValue.Of("value_float", 2.5f));
        Assert.Empty(f.Shape);
        Assert.Equal(2.5f, f.Span<float>()[0]);

        var fs = Run(AttributeValue.Of("value_floats", new[] { 1f, -1f, 0.5f }));
        Assert.Equal([3], fs.Shape);
        Assert.Equal([1f, -1f, 0.5f], fs.Span<float>().ToArray());

        var i = Run(AttributeValue.Of("value_int", 7L));
        Assert.Equal(ElementType.Int64, i.Type);
        Assert.Empty(i.Shape);
        Assert.Equal(7L, i.Span<long>()[0]);

        var iz = Run(AttributeValue.Of("value_ints", Array.Empty<long>()));
        Assert.Equal([0], iz.Shape);

        var s = Run(AttributeValue.Of("value_string", "héllo"));
        Assert.Equal(["héllo"], s.Strings().ToArray());

        var ss = Run(new AttributeValue("value_strings", AttributeKind.Strings) { StringList = [[0x61], [0x62, 0x63]] });
        Assert.Equal(["a", "bc"], ss.Strings().ToArray());

        var st = Run(AttributeValue.Of("value", new TensorData("c", ElementType.String, [2], [], ["x", "y"])));
        Assert.Equal(["x", "y"], st.Strings().ToArray());
    }

    [Fact]
    public void Missing_or_duplicate_value_is_a_plan_error()
    {
        var e = Assert.Throws<EngineException>(() => Run());
        Assert.Contains("none", e.Message);
        Assert.Contains(NodeName, e.Message);
        e = Assert.Throws<EngineException>(() => Run(AttributeValue.Of("value_int", 1L), AttributeValue.Of("value_float", 1f)));
        Assert.Contains("value_int", e.Message);
    }

    [Fact]
    public void Output_is_a_copy_that_survives_buffer_reuse()
    {
        // Constant without folding runs per call; a consumer must not see the kernel's own array.
        var g = new Graph();
        var n = new Node("c", "Constant", "", [], ["y"]);
        n.Set(AttributeValue.Of("value_floats", new[] { 1f, 2f }));
        g.Nodes.Add(n);
        g.Outputs.Add(new ValueInfo("y", ElementType.Float, null));
        var model = new OnnxModel(g);
        model.Opsets[""] = 13;
        var session = new InferenceSession(model, new SessionOptions { FoldConstants = false, Threads = 1 });
        var a = session.Run(new Dictionary<string, Tensor>())["y"];
        a.Span<float>()[0] = 99f;
        var b = session.Run(new Dictionary<string, Tensor>())["y"];
        Assert.Equal([1f, 2f], b.Span<float>().ToArray());
    }
}
