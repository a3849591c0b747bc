using Quant.Onnx;

namespace Quant.Core.Tests.Precision;

/// <summary>Small hand-built models whose precision plans can be worked out by hand.</summary>
internal static class SmallModels
{
    private static TensorData Random(Random rng, string name, params long[] dims)
    {
        long n = 1;
        foreach (var d in dims) n *= d;
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)(rng.NextDouble() * 2 - 1);
        return TensorData.FromFloats(name, dims, v);
    }

    private static Node N(string name, string op, string[] inputs, string[] outputs, params AttributeValue[] attrs)
    {
        var n = new Node(name, op, "", inputs, outputs);
        foreach (var a in attrs) n.Set(a);
        return n;
    }

    private static OnnxModel Model(Graph g, long opset)
    {
        var m = new OnnxModel(g) { IrVersion = 8, ProducerName = "quant-tests" };
        m.Opsets[""] = opset;
        return m;
    }

    /// <summary>
    /// x → c1 Conv → t1 → r1 Relu → t2; t2 → c2 Conv → t3; t2 → s1 Sigmoid → t4; add1 Add(t3, t4) → t5;
    /// div1 Div(t5, six) → t7; sm Softmax → y (output). Side branch: pow1 Pow(t2, two) → side (output).
    /// </summary>
    public static OnnxModel Branchy()
    {
        var rng = new Random(1234);
        var g = new Graph { Name = "branchy" };
        g.Inputs.Add(new ValueInfo("x", ElementType.Float, [1, 4, 8, 8]));
        g.Outputs.Add(new ValueInfo("y", ElementType.Float, [1, 8, 8, 8]));
        g.Outputs.Add(new ValueInfo("side", ElementType.Float, [1, 8, 8, 8]));
        foreach (var t in new[] { Random(rng, "w1", 8, 4, 3, 3), Random(rng, "b1", 8), Random(rng, "w2", 8, 8, 1, 1) }) g.Initializers[t.Name] = t;
        g.Initializers["six"] = TensorData.FromFloats("six", [], [6f]);
        g.Initializers["two"] = TensorData.FromFloats("two", [], [2f]);
        g.Nodes.Add(N("c1", "Conv", ["x", "w1", "b1"], ["t1"], AttributeValue.Of("pads", new long[] { 1, 1, 1, 1 })));
        g.Nodes.Add(N("r1", "Relu", ["t1"], ["t2"]));
        g.Nodes.Add(N("c2", "Conv", ["t2", "w2"], ["t3"]));
        g.Nodes.Add(N("s1", "Sigmoid", ["t2"], ["t4"]));
        g.Nodes.Add(N("add1", "Add", ["t3", "t4"], ["t5"]));
        g.Nodes.Add(N("pow1", "Pow", ["t2", "two"], ["side"]));
        g.Nodes.Add(N("div1", "Div", ["t5", "six"], ["t7"]));
        g.Nodes.Add(N("sm", "Softmax", ["t7"], ["y"], AttributeValue.Of("axis", 1L)));
        return Model(g, 13);
    }

    /// <summary>
    /// x [1,4,4,4] → ct ConvTranspose (w [4,6,2,2], stride 2) → u1 → gap GlobalAveragePool → u2 → fl Flatten → u3 [1,6]
    /// → mm MatMul (B [6,5]) → u4 → gm Gemm (B [3,5], transB=1, C [3]) → out. Also twice: Add(u3, u3) → dbl (output).
    /// </summary>
    public static OnnxModel Gemms()
    {
        var rng = new Random(4321);
        var g = new Graph { Name = "gemms" };
        g.Inputs.Add(new ValueInfo("x", ElementType.Float, [1, 4, 4, 4]));
        g.Outputs.Add(new ValueInfo("out", ElementType.Float, [1, 3]));
        g.Outputs.Add(new ValueInfo("dbl", ElementType.Float, [1, 6]));
        foreach (var t in new[] { Random(rng, "wt", 4, 6, 2, 2), Random(rng, "bm", 6, 5), Random(rng, "bg", 3, 5), Random(rng, "cg", 3) }) g.Initializers[t.Name] = t;
        g.Nodes.Add(N("ct", "ConvTranspose", ["x", "wt"], ["u1"], AttributeValue.Of("strides", new long[] { 2, 2 })));
        g.Nodes.Add(N("gap", "GlobalAveragePool", ["u1"], ["u2"]));
        g.Nodes.Add(N("fl", "Flatten", ["u2"], ["u3"]));
        g.Nodes.Add(N("mm", "MatMul", ["u3", "bm"], ["u4"]));
        g.Nodes.Add(N("gm", "Gemm", ["u4", "bg", "cg"], ["out"], AttributeValue.Of("transB", 1L)));
        g.Nodes.Add(N("twice", "Add", ["u3", "u3"], ["dbl"]));
        return Model(g, 13);
    }

    public static float[] RandomInput(int seed, int count)
    {
        var r = new Random(seed);
        var v = new float[count];
        for (int i = 0; i < count; i++) v[i] = (float)(r.NextDouble() * 2 - 1);
        return v;
    }
}
