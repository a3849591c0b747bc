using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Engine.Tests.Kernels;

/// <summary>Runs single nodes through the engine and gives naive references for the elementwise kernel tests.</summary>
internal static class ElementwiseReference
{
    /// <summary>Runs one node (all inputs fed at run time, so nothing is constant-folded).</summary>
    public static Tensor[] RunNode(string op, int opset, Tensor?[] inputs, int outputs = 1, int threads = 1,
        IEnumerable<AttributeValue>? attributes = null, string domain = "")
    {
        var g = new Graph { Name = op };
        var names = new List<string>();
        for (int i = 0; i < inputs.Length; i++)
        {
            if (inputs[i] is null) { names.Add(""); continue; }
            names.Add($"in{i}");
            g.Inputs.Add(new ValueInfo($"in{i}", inputs[i]!.Type, null));
        }
        var outNames = Enumerable.Range(0, outputs).Select(o => $"out{o}").ToList();
        var node = new Node("n", op, domain, names, outNames);
        foreach (var a in attributes ?? []) node.Set(a);
        g.Nodes.Add(node);
        foreach (var o in outNames) g.Outputs.Add(new ValueInfo(o, ElementType.Undefined, null));
        var model = new OnnxModel(g);
        model.Opsets[""] = opset;
        if (domain.Length > 0) model.Opsets[domain] = 1;
        var session = new InferenceSession(model, new SessionOptions { Threads = threads });
        var feeds = new Dictionary<string, Tensor>();
        for (int i = 0; i < inputs.Length; i++) if (inputs[i] is { } t) feeds[$"in{i}"] = t;
        var r = session.Run(feeds);
        return outNames.Select(o => r[o]).ToArray();
    }

    public static Tensor Run1(string op, int opset, params Tensor?[] inputs) => RunNode(op, opset, inputs)[0];

    public static float[] RandomFloats(int n, int seed, float lo = -4, float hi = 4)
    {
        var rng = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = lo + (float)rng.NextDouble() * (hi - lo);
        return a;
    }

    public static Tensor RandomTensor(int seed, int[] shape, float lo = -4, float hi = 4) =>
        Tensor.From(RandomFloats(Tensor.ElementCount(shape), seed, lo, hi), shape);

    /// <summary>Numpy broadcasting by explicit index arithmetic: the flat input offsets of output element <paramref name="flat"/>.</summary>
    public static int Offset(int[] outShape, int[] inShape, int flat)
    {
        int off = 0, stride = 1;
        for (int d = outShape.Length - 1; d >= 0; d--)
        {
            int idx = flat % outShape[d];
            flat /= outShape[d];
            int j = d - (outShape.Length - inShape.Length);
            if (j < 0) continue;
            if (inShape[j] != 1) off += idx * stride;
            stride *= inShape[j];
        }
        return off;
    }

    public static int[] BroadcastShape(int[] a, int[] b)
    {
        int r = Math.Max(a.Length, b.Length);
        var s = new int[r];
        for (int d = 0; d < r; d++)
        {
            int x = d - (r - a.Length) >= 0 ? a[d - (r - a.Length)] : 1;
            int y = d - (r - b.Length) >= 0 ? b[d - (r - b.Length)] : 1;
            s[d] = x == 1 ? y : x;
        }
        return s;
    }

    /// <summary>Distance in float ulps (0 for identical values, both NaN, or ±0).</summary>
    public static long Ulps(float a, float b)
    {
        if (float.IsNaN(a) && float.IsNaN(b)) return 0;
        if (a == b) return 0;
        if (float.IsNaN(a) || float.IsNaN(b)) return long.MaxValue;
        long ia = BitConverter.SingleToInt32Bits(a), ib = BitConverter.SingleToInt32Bits(b);
        if (ia < 0) ia = int.MinValue - ia;
        if (ib < 0) ib = int.MinValue - ib;
        return Math.Abs(ia - ib);
    }

    /// <summary>Runs a committed fixture through the engine and ONNX Runtime and compares every output.</summary>
    public static void CompareWithOrt(string fixture, IReadOnlyDictionary<string, Tensor> inputs, double rtol = 1e-5, double atol = 1e-6)
    {
        var path = Path.Combine(TestAssets.RepoRoot, "tests", "Quant.Engine.Tests", "Fixtures", fixture);
        var model = OnnxModelReader.Load(path);
        var ours = new InferenceSession(model, new SessionOptions { Threads = 2 }).Run(inputs);
        var ort = OrtOracle.Run(path, inputs);
        Assert.Equal(model.Graph.Outputs.Count, ort.Outputs.Count);
        foreach (var o in model.Graph.Outputs)
            TensorAssert.Close(ort.Outputs[o.Name], ours[o.Name], rtol, atol, $"{fixture} output '{o.Name}'");
    }
}
