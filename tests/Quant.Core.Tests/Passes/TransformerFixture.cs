using Quant.Onnx;

namespace Quant.Core.Tests.Passes;

/// <summary>
/// A small transformer encoder block with LayerNorm and GELU written out the ways exporters write them:
/// x [2, 5, 16] → LN (Pow/Div, γ β [16]) → single-head attention → residual → LN (Mul(d, d)/Reciprocal, γ [1, 1, 16])
/// → MLP 16→32→16 with GELU (x·a)·½ → residual → LN without γ/β → Linear → GELU (x·½)·a → GELU x·(a·½) → y.
/// </summary>
internal static class TransformerFixture
{
    public const int Tokens = 5, Width = 16;

    public static OnnxModel Build(int opset)
    {
        var b = new PassGraph().Input("x", 2, Tokens, Width).Output("y");
        string S(string name, float v) => b.Init(name, [], v, v);
        string Linear(string name, string input, int i, int o)
        {
            b.Add(name + ".matmul", "MatMul", [input, b.Init(name + ".w", [i, o], -0.5f, 0.5f)], [name + ".mm"]);
            b.Add(name + ".bias", "Add", [name + ".mm", b.Init(name + ".b", [o], -0.1f, 0.1f)], [name + ".out"]);
            return name + ".out";
        }
        Node Reduce(string name, string input, string output)
        {
            if (opset >= 18) return b.Add(name, "ReduceMean", [input, Axes(name)], [output]);
            return b.Add(name, "ReduceMean", [input], [output], AttributeValue.Of("axes", new long[] { -1 }));
        }
        string Axes(string name)
        {
            var n = name + ".axes";
            b.G.Initializers[n] = TensorData.FromInt64s(n, [1], [2]); // the last axis, counted from the front
            return n;
        }
        string LayerNorm(string name, string x, bool squareByMul, long[]? gammaDims, bool beta)
        {
            Reduce(name + ".mean", x, name + ".mu");
            b.Add(name + ".sub", "Sub", [x, name + ".mu"], [name + ".d"]);
            if (squareByMul) b.Add(name + ".sq", "Mul", [name + ".d", name + ".d"], [name + ".d2"]);
            else b.Add(name + ".sq", "Pow", [name + ".d", S(name + ".two", 2)], [name + ".d2"]);
            Reduce(name + ".var", name + ".d2", name + ".v");
            b.Add(name + ".eps", "Add", [name + ".v", S(name + ".epsilon", 1e-5f)], [name + ".ve"]);
            b.Add(name + ".sqrt", "Sqrt", [name + ".ve"], [name + ".std"]);
            string y = name + ".n";
            if (squareByMul)
            {
                b.Add(name + ".rcp", "Reciprocal", [name + ".std"], [name + ".inv"]);
                b.Add(name + ".div", "Mul", [name + ".d", name + ".inv"], [y]);
            }
            else b.Add(name + ".div", "Div", [name + ".d", name + ".std"], [y]);
            if (gammaDims is not null)
            {
                b.Add(name + ".scale", "Mul", [b.Init(name + ".gamma", gammaDims, 0.5f, 1.5f), y], [name + ".g"]);
                y = name + ".g";
            }
            if (beta)
            {
                b.Add(name + ".shift", "Add", [y, b.Init(name + ".beta", [Width], -0.2f, 0.2f)], [name + ".out"]);
                y = name + ".out";
            }
            return y;
        }
        string Gelu(string name, string x, char form)
        {
            b.Add(name + ".scale", form == 'a' ? "Div" : "Mul", [x, S(name + ".k", form == 'a' ? MathF.Sqrt(2) : 1 / MathF.Sqrt(2))], [name + ".u"]);
            b.Add(name + ".erf", "Erf", [name + ".u"], [name + ".e"]);
            b.Add(name + ".one", "Add", [S(name + ".c1", 1), name + ".e"], [name + ".a"]);
            switch (form)
            {
                case 'a': // (x · a) · ½
                    b.Add(name + ".mul", "Mul", [x, name + ".a"], [name + ".xa"]);
                    b.Add(name + ".half", "Mul", [name + ".xa", S(name + ".h", 0.5f)], [name + ".out"]);
                    break;
                case 'b': // x · (a / 2)
                    b.Add(name + ".half", "Div", [name + ".a", S(name + ".two", 2)], [name + ".ah"]);
                    b.Add(name + ".mul", "Mul", [name + ".ah", x], [name + ".out"]);
                    break;
                default: // (x · ½) · a
                    b.Add(name + ".half", "Mul", [S(name + ".h", 0.5f), x], [name + ".xh"]);
                    b.Add(name + ".mul", "Mul", [name + ".xh", name + ".a"], [name + ".out"]);
                    break;
            }
            return name + ".out";
        }

        var h = LayerNorm("ln1", "x", false, [Width], true);
        string q = Linear("q", h, Width, Width), k = Linear("k", h, Width, Width), v = Linear("v", h, Width, Width);
        b.Add("kt", "Transpose", [k], ["kt"], AttributeValue.Of("perm", new long[] { 0, 2, 1 }));
        b.Add("scores", "MatMul", [q, "kt"], ["scores"]);
        b.Add("scaled", "Mul", ["scores", S("inv_sqrt_d", 0.25f)], ["scaled"]);
        b.Add("softmax", "Softmax", ["scaled"], ["attn"], AttributeValue.Of("axis", -1L));
        b.Add("context", "MatMul", ["attn", v], ["ctx"]);
        var o = Linear("o", "ctx", Width, Width);
        b.Add("residual1", "Add", ["x", o], ["r1"]);
        var h2 = LayerNorm("ln2", "r1", true, [1, 1, Width], true);
        var m = Gelu("gelu1", Linear("fc1", h2, Width, 2 * Width), 'a');
        b.Add("residual2", "Add", ["r1", Linear("fc2", m, 2 * Width, Width)], ["r2"]);
        var h3 = LayerNorm("ln3", "r2", false, null, false);
        var g = Gelu("gelu3", Gelu("gelu2", Linear("fc3", h3, Width, Width), 'c'), 'b');
        b.Add("out", "Identity", [g], ["y"]);
        return b.Model(opset);
    }
}
