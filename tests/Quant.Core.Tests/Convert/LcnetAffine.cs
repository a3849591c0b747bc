using Quant.Onnx;

namespace Quant.Core.Tests.Convert;

/// <summary>
/// PP-OCRv4 det (PP-LCNetV3) writes a scalar affine between most convs and their hard-swish: Conv → Mul(a) → Add(c)
/// → HardSwish. Graph preparation does not fold that affine into the conv, so the exported det has a quantization
/// point between every Conv and HardSwish and never reaches the fused QConv epilogue. This folds it the way such a
/// pass would (W' = a·W, b' = a·b + c), giving a real model with Conv → HardSwish to test that epilogue on.
/// </summary>
internal static class LcnetAffine
{
    /// <summary>Folds every Conv → Mul(scalar const) → Add(scalar const) with single readers; returns how many.</summary>
    public static int Fold(OnnxModel model)
    {
        var g = model.Graph;
        var producers = new Dictionary<string, Node>(StringComparer.Ordinal);
        foreach (var n in g.Nodes) foreach (var o in n.Outputs) producers[o] = n;
        var readers = g.Nodes.SelectMany(n => n.Inputs.Select(i => (Input: i, Node: n))).GroupBy(p => p.Input)
            .ToDictionary(p => p.Key, p => p.Select(x => x.Node).ToList(), StringComparer.Ordinal);
        TensorData? Const(string t) =>
            g.Initializers.TryGetValue(t, out var d) ? d : producers.TryGetValue(t, out var p) && p.OpType == "Constant" ? p.Attributes["value"].Tensor : null;
        Node? OnlyReader(string t, string op) => readers.TryGetValue(t, out var r) && r.Count == 1 && r[0].OpType == op ? r[0] : null;
        float? Scalar(Node n, string other) => Const(n.Inputs[0] == other ? n.Inputs[1] : n.Inputs[0]) is { ElementCount: 1 } t ? t.As<float>()[0] : null;

        int folded = 0;
        foreach (var conv in g.Nodes.Where(n => n.OpType == "Conv").ToList())
        {
            if (OnlyReader(conv.Outputs[0], "Mul") is not { } mul || Scalar(mul, conv.Outputs[0]) is not { } a) continue;
            if (OnlyReader(mul.Outputs[0], "Add") is not { } add || Scalar(add, mul.Outputs[0]) is not { } c) continue;
            if (Const(conv.Inputs[1]) is not { } w) continue;
            int m = (int)w.Dims[0];
            var wv = w.As<float>().ToArray();
            for (int i = 0; i < wv.Length; i++) wv[i] *= a;
            var bv = conv.Inputs.Count > 2 && conv.Inputs[2].Length > 0 ? Const(conv.Inputs[2])!.As<float>().ToArray() : new float[m];
            for (int i = 0; i < m; i++) bv[i] = bv[i] * a + c;
            string wName = conv.Name + "_affine_w", bName = conv.Name + "_affine_b";
            g.Initializers[wName] = TensorData.FromFloats(wName, w.Dims, wv);
            g.Initializers[bName] = TensorData.FromFloats(bName, [m], bv);
            conv.Inputs[1] = wName;
            if (conv.Inputs.Count > 2) conv.Inputs[2] = bName; else conv.Inputs.Add(bName);
            conv.Outputs[0] = add.Outputs[0];
            g.Nodes.Remove(mul);
            g.Nodes.Remove(add);
            folded++;
        }
        return folded;
    }
}
