using Quant.Core.DeploymentRuntime;
using Quant.Core.Passes;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Passes;

/// <summary>Builds small graphs for the pass tests, with random weights from a fixed seed.</summary>
internal sealed class PassGraph
{
    private readonly Random _rng = new(7);
    public Graph G { get; } = new() { Name = "t" };
    public PassGraph Input(string name, params long[] shape) { G.Inputs.Add(new ValueInfo(name, ElementType.Float, shape.Select(Dim.Known).ToArray())); return this; }
    public PassGraph Output(string name) { G.Outputs.Add(new ValueInfo(name, ElementType.Float, null)); return this; }
    public string Init(string name, long[] dims, float lo = -1, float hi = 1)
    {
        long n = dims.Aggregate(1L, (a, b) => a * b);
        G.Initializers[name] = TensorData.FromFloats(name, dims, Enumerable.Range(0, (int)n).Select(_ => lo + (float)_rng.NextDouble() * (hi - lo)).ToArray());
        return name;
    }
    public Node Add(string name, string op, string[] inputs, string[] outputs, params AttributeValue[] attrs)
    {
        var n = new Node(name, op, "", inputs, outputs);
        foreach (var a in attrs) n.Set(a);
        G.Nodes.Add(n);
        return n;
    }
    public void ConstantNode(string output, TensorData value) => Add("", "Constant", [], [output], AttributeValue.Of("value", value));
    public void BatchNorm(string name, string x, string y, int channels)
    {
        Add(name, "BatchNormalization", [x, Init(name + ".g", [channels], 0.5f, 2), Init(name + ".b", [channels]), Init(name + ".m", [channels]), Init(name + ".v", [channels], 0.1f, 3)], [y],
            AttributeValue.Of("epsilon", 1e-3f));
    }
    public OnnxModel Model(int opset = 13) { var m = new OnnxModel(G); m.Opsets[""] = opset; return m; }
}

/// <summary>Runs original and prepared models on the same inputs.</summary>
internal static class PassAssert
{
    public static void AssertSameFunction(OnnxModel original, PreparedModel prepared, Dictionary<string, Tensor> feeds)
    {
        var a = new InferenceSession(original).Run(feeds);
        var b = new InferenceSession(prepared.Model).Run(feeds);
        foreach (var (name, t) in a)
        {
            Assert.True(TensorAssert.MaxAbsDiff(t, b[name]) <= 1e-5 * Math.Max(1, TensorAssert.MaxAbs(t)), $"output {name}: {TensorAssert.MaxAbsDiff(t, b[name])}");
        }
    }

    public static Tensor Random(int seed, params int[] shape)
    {
        var rng = new Random(seed);
        var d = new float[Tensor.ElementCount(shape)];
        for (int i = 0; i < d.Length; i++) d[i] = (float)(rng.NextDouble() * 4 - 2);
        return Tensor.From(d, shape);
    }

    /// <summary>Prepared vs original in ONNX Runtime and in the engine, within float rounding.</summary>
    public static void AssertSameEverywhere(OnnxModel original, PreparedModel prepared, Dictionary<string, Tensor> feeds, double tolerance = 1e-5)
    {
        AssertSameFunction(original, prepared, feeds);
        var dir = TestAssets.TempDir("prepared");
        try
        {
            string a = Path.Combine(dir, "original.onnx"), b = Path.Combine(dir, "prepared.onnx");
            OnnxModelWriter.Save(original, a);
            OnnxModelWriter.Save(prepared.Model, b);
            var expected = OrtOracle.Run(a, feeds, optimization: OrtOptimization.Disabled).Outputs;
            var actual = OrtOracle.Run(b, feeds, optimization: OrtOptimization.Disabled).Outputs;
            foreach (var (name, t) in expected)
            {
                double err = TensorAssert.MaxAbsDiff(t, actual[name]);
                Assert.True(err <= tolerance * Math.Max(1, TensorAssert.MaxAbs(t)), $"ONNX Runtime output {name}: max abs error {err}");
            }
        }
        finally { Directory.Delete(dir, true); }
    }
}
