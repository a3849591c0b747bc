using Quant.Onnx.Shapes;

namespace Quant.Onnx.Tests;

/// <summary>Per-op shape rules, including the attribute-vs-input forms that differ between opsets.</summary>
public class ShapeInferenceOpTests
{
    private static readonly Dim N = Dim.Named("N"), H = Dim.Named("H"), W = Dim.Named("W");

    private sealed class B(long opset)
    {
        public OnnxModel Model { get; } = Make(opset);
        private Graph G => Model.Graph;

        private static OnnxModel Make(long opset)
        {
            var m = new OnnxModel(new Graph { Name = "t" });
            m.Opsets[""] = opset;
            return m;
        }

        public B In(string name, params Dim[] shape) => In(name, ElementType.Float, shape);
        public B In(string name, ElementType t, params Dim[] shape) { G.Inputs.Add(new ValueInfo(name, t, shape)); return this; }
        public B Ints(string name, params long[] v) { G.Initializers[name] = TensorData.FromInt64s(name, [v.Length], v); return this; }
        public B Scalar(string name, long v) { G.Initializers[name] = TensorData.FromInt64s(name, [], [v]); return this; }
        public B Floats(string name, params float[] v) { G.Initializers[name] = TensorData.FromFloats(name, [v.Length], v); return this; }
        public B Weights(string name, params long[] dims) { G.Initializers[name] = TensorData.FromFloats(name, dims, new float[dims.Aggregate(1L, (a, b) => a * b)]); return this; }

        public B Op(string op, string[] inputs, string[] outputs, params AttributeValue[] attrs)
        {
            var n = new Node("", op, "", inputs, outputs);
            foreach (var a in attrs) n.Set(a);
            G.Nodes.Add(n);
            return this;
        }

        public B Op(string op, string input, string output, params AttributeValue[] attrs) => Op(op, [input], [output], attrs);

        public Dictionary<string, ValueInfo> Run() => ShapeInference.Run(Model);
        public string Shape(string name) => Show(Run()[name]);
    }

    private static string Show(ValueInfo v) => v.Shape is null ? $"{v.Type.OnnxName()}?" : $"{v.Type.OnnxName()}[{string.Join(",", v.Shape)}]";

    private static AttributeValue A(string n, params long[] v) => AttributeValue.Of(n, v);
    private static AttributeValue A1(string n, long v) => AttributeValue.Of(n, v);
    private static AttributeValue S(string n, string v) => AttributeValue.Of(n, v);

    [Fact]
    public void ConvExplicitPadsStridesDilations()
    {
        var b = new B(11).In("x", 1, 3, 224, 225).Weights("w", 16, 3, 3, 3)
            .Op("Conv", ["x", "w"], ["y"], A("pads", 1, 1, 1, 1), A("strides", 2, 2))
            .Op("Conv", ["x", "w"], ["z"], A("dilations", 2, 3), A("pads", 0, 1, 0, 2));
        var r = b.Run();
        Assert.Equal("float[1,16,112,113]", Show(r["y"]));
        // (224 - 5)/1+1 = 220 ; (225 + 3 - 7)+1 = 222
        Assert.Equal("float[1,16,220,222]", Show(r["z"]));
    }

    [Fact]
    public void ConvAutoPadAndGroups()
    {
        var r = new B(11).In("x", 2, 8, 15, 16).Weights("w", 8, 1, 3, 3)
            .Op("Conv", ["x", "w"], ["same"], A1("group", 8), S("auto_pad", "SAME_UPPER"), A("strides", 2, 2))
            .Op("Conv", ["x", "w"], ["valid"], A1("group", 8), S("auto_pad", "VALID"), A("strides", 2, 2))
            .Run();
        Assert.Equal("float[2,8,8,8]", Show(r["same"]));
        Assert.Equal("float[2,8,7,7]", Show(r["valid"]));
    }

    [Fact]
    public void ConvChannelMismatchIsReported()
    {
        var b = new B(11).In("x", 1, 4, 8, 8).Weights("w", 16, 3, 3, 3).Op("Conv", ["x", "w"], ["y"]);
        var e = Assert.Throws<OnnxFormatException>(() => b.Run());
        Assert.Contains("input has 4 channels but the weights expect 3", e.Message);
    }

    [Fact]
    public void ConvSymbolicSpatialDimsNestFloors()
    {
        var r = new B(11).In("x", N, 3, H, W).Weights("w", 8, 3, 3, 3).Weights("w2", 8, 8, 3, 3)
            .Op("Conv", ["x", "w"], ["y"], A("pads", 1, 1, 1, 1), A("strides", 2, 2))
            .Op("Conv", ["y", "w2"], ["z"], A("pads", 1, 1, 1, 1), A("strides", 2, 2))
            .Op("Conv", ["x", "w"], ["v"])
            .Run();
        Assert.Equal("float[N,8,floor((H+1)/2),floor((W+1)/2)]", Show(r["y"]));
        // floor((floor((H+1)/2)+1)/2) = floor((H+3)/4)
        Assert.Equal("float[N,8,floor((H+3)/4),floor((W+3)/4)]", Show(r["z"]));
        Assert.Equal("float[N,8,H-2,W-2]", Show(r["v"]));
    }

    [Fact]
    public void ConvTransposeForms()
    {
        var r = new B(11).In("x", N, 4, 10, H).Weights("w", 4, 2, 3, 3)
            .Op("ConvTranspose", ["x", "w"], ["a"], A("strides", 2, 2), A("pads", 1, 1, 1, 1), A("output_padding", 1, 1))
            .Op("ConvTranspose", ["x", "w"], ["b"], A("strides", 2, 2), A("output_shape", 21, 30))
            .Op("ConvTranspose", ["x", "w"], ["c"], A1("group", 2), A("strides", 2, 2), S("auto_pad", "SAME_UPPER"))
            .Run();
        // 2*(10-1) + 1 + 3 - 2 = 20
        Assert.Equal("float[N,2,20,2*H]", Show(r["a"]));
        Assert.Equal("float[N,2,21,30]", Show(r["b"]));
        Assert.Equal("float[N,4,20,2*H]", Show(r["c"]));
    }

    [Fact]
    public void PoolingCeilModeIndicesAndGlobal()
    {
        var r = new B(12).In("x", 1, 3, 5, 6)
            .Op("MaxPool", ["x"], ["m", "idx"], A("kernel_shape", 2, 2), A("strides", 2, 2), A1("ceil_mode", 1))
            .Op("AveragePool", "x", "a", A("kernel_shape", 3, 2), A("strides", 3, 2))
            .Op("MaxPool", "x", "d", A("kernel_shape", 2, 2), A("dilations", 2, 2))
            .Op("GlobalAveragePool", "x", "g")
            .Run();
        Assert.Equal("float[1,3,3,3]", Show(r["m"]));
        Assert.Equal("int64[1,3,3,3]", Show(r["idx"]));
        Assert.Equal("float[1,3,1,3]", Show(r["a"]));
        Assert.Equal("float[1,3,3,4]", Show(r["d"]));
        Assert.Equal("float[1,3,1,1]", Show(r["g"]));
    }

    [Fact]
    public void UnaryOpsKeepTypeAndShape()
    {
        foreach (var op in new[] { "Relu", "LeakyRelu", "Clip", "HardSigmoid", "HardSwish", "Sigmoid", "Tanh", "Erf", "Gelu", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal", "Softmax", "Identity" })
            Assert.Equal("float[N,3,H]", new B(13).In("x", N, 3, H).Op(op, "x", "y").Shape("y"));
        Assert.Equal("float16[2]", new B(13).In("x", ElementType.Float16, 2).Op("Relu", "x", "y").Shape("y"));
    }

    [Fact]
    public void BroadcastingWithSymbols()
    {
        var r = new B(13).In("a", N, 1, H).In("b", 3, 1).In("c", H).In("d", 5, Dim.Named("K"), 1)
            .Op("Add", ["a", "b"], ["ab"]).Op("Mul", ["a", "c"], ["ac"]).Op("Sub", ["d", "a"], ["da"])
            .Op("Pow", ["a", "b"], ["p"]).Op("Max", ["a", "b", "c"], ["mx"]).Op("Min", ["a"], ["mn"])
            .Op("Div", ["a", "b"], ["dv"]).Op("Equal", ["a", "b"], ["eq"]).Op("Where", ["eq", "a", "c"], ["wh"])
            .Run();
        Assert.Equal("float[N,3,H]", Show(r["ab"]));
        Assert.Equal("float[N,1,H]", Show(r["ac"]));
        // N meets 5: it must be 5; K meets 1: stays K.
        Assert.Equal("float[5,K,H]", Show(r["da"]));
        Assert.Equal("float[N,3,H]", Show(r["p"]));
        Assert.Equal("float[N,3,H]", Show(r["mx"]));
        Assert.Equal("float[N,1,H]", Show(r["mn"]));
        Assert.Equal("float[N,3,H]", Show(r["dv"]));
        Assert.Equal("bool[N,3,H]", Show(r["eq"]));
        Assert.Equal("float[N,3,H]", Show(r["wh"]));
    }

    [Fact]
    public void BroadcastMismatchNamesTheNode()
    {
        var e = Assert.Throws<OnnxFormatException>(() => new B(13).In("a", 3).In("b", 4).Op("Add", ["a", "b"], ["c"]).Run());
        Assert.Contains("Add node producing 'c'", e.Message);
        Assert.Contains("3 and 4", e.Message);
    }

    [Fact]
    public void SymbolsThatMeetAreUnified()
    {
        var r = new B(13).In("a", Dim.Named("P"), 4).In("b", Dim.Named("Q"), 4)
            .Op("Add", ["a", "b"], ["c"]).Op("Relu", "b", "d").Op("Mul", ["d", "c"], ["e"]).Run();
        Assert.Equal("float[P,4]", Show(r["c"]));
        Assert.Equal("float[P,4]", Show(r["e"]));
    }

    [Fact]
    public void LegacyBroadcastBeforeOpset7KeepsAsShape()
    {
        var r = new B(6).In("a", 2, 3, 4).In("b", 3).Op("Add", ["a", "b"], ["c"], A1("broadcast", 1), A1("axis", 1)).Run();
        Assert.Equal("float[2,3,4]", Show(r["c"]));
    }

    [Fact]
    public void MatMulAndGemm()
    {
        var r = new B(13).In("a", N, 7, 5).In("b", 5, 6).In("v", 5).In("bb", 3, 1, 5, 2).In("m", 5, 4).In("g", 4, 5)
            .Op("MatMul", ["a", "b"], ["ab"]).Op("MatMul", ["v", "b"], ["vb"]).Op("MatMul", ["a", "v"], ["av"])
            .Op("MatMul", ["a", "bb"], ["abb"])
            .Op("Gemm", ["m", "g"], ["g1"], A1("transA", 1), A1("transB", 1))
            .Op("Gemm", ["g", "m"], ["g2"])
            .Run();
        Assert.Equal("float[N,7,6]", Show(r["ab"]));
        Assert.Equal("float[6]", Show(r["vb"]));
        Assert.Equal("float[N,7]", Show(r["av"]));
        Assert.Equal("float[3,N,7,2]", Show(r["abb"]));
        Assert.Equal("float[4,4]", Show(r["g1"]));
        Assert.Equal("float[4,4]", Show(r["g2"]));
        Assert.Throws<OnnxFormatException>(() => new B(13).In("a", 2, 3).In("b", 4, 5).Op("MatMul", ["a", "b"], ["c"]).Run());
    }

    [Fact]
    public void LayerNormalizationAndBatchNormalization()
    {
        var r = new B(17).In("x", N, 10, 64).Floats("s", 1).Floats("bias", 1)
            .Op("LayerNormalization", ["x", "s", "bias"], ["y", "mean", "inv"], A1("axis", -1))
            .In("img", N, 4, H, W).Floats("c4", 1, 1, 1, 1)
            .Op("BatchNormalization", ["img", "c4", "c4", "c4", "c4"], ["bn"])
            .Run();
        Assert.Equal("float[N,10,64]", Show(r["y"]));
        Assert.Equal("float[N,10,1]", Show(r["mean"]));
        Assert.Equal("float[N,10,1]", Show(r["inv"]));
        Assert.Equal("float[N,4,H,W]", Show(r["bn"]));
    }

    [Fact]
    public void ReductionsAttributeAndInputForms()
    {
        // ReduceMean: axes attribute until opset 17, input from 18. ReduceSum: input from 13.
        Assert.Equal("float[N,1,H]", new B(13).In("x", N, 4, H).Op("ReduceMean", "x", "y", A("axes", 1)).Shape("y"));
        Assert.Equal("float[N,H]", new B(18).In("x", N, 4, H).Ints("ax", 1).Op("ReduceMean", ["x", "ax"], ["y"], A1("keepdims", 0)).Shape("y"));
        Assert.Equal("float[N,4]", new B(11).In("x", N, 4, H).Op("ReduceSum", "x", "y", A("axes", -1), A1("keepdims", 0)).Shape("y"));
        Assert.Equal("float[1,4,1]", new B(13).In("x", N, 4, H).Ints("ax", 0, 2).Op("ReduceSum", ["x", "ax"], ["y"]).Shape("y"));
        Assert.Equal("float[1,1,1]", new B(13).In("x", N, 4, H).Op("ReduceSum", "x", "y").Shape("y"));
        Assert.Equal("float[N,4,H]", new B(13).In("x", N, 4, H).Op("ReduceSum", "x", "y", A1("noop_with_empty_axes", 1)).Shape("y"));
        Assert.Equal("float[]", new B(11).In("x", N, 4).Op("ReduceMax", "x", "y", A1("keepdims", 0)).Shape("y"));
        // Axes only known at run time: rank survives with keepdims.
        Assert.Equal("float[?,?,?]", new B(13).In("x", N, 4, H).In("ax", ElementType.Int64, 1).Op("ReduceSum", ["x", "ax"], ["y"]).Shape("y"));
    }

    [Fact]
    public void ResizeOpsetForms()
    {
        // opset 10: (X, scales)
        Assert.Equal("float[N,3,2*H,2*W]", new B(10).In("x", N, 3, H, W).Floats("sc", 1, 1, 2, 2).Op("Resize", ["x", "sc"], ["y"]).Shape("y"));
        // opset 11: (X, roi, scales, sizes) with empty scales and explicit sizes
        Assert.Equal("float[1,3,7,9]", new B(11).In("x", 1, 3, 4, 4).Floats("roi").Floats("sc").Ints("sz", 1, 3, 7, 9)
            .Op("Resize", ["x", "roi", "sc", "sz"], ["y"]).Shape("y"));
        // opset 13: omitted roi/scales
        Assert.Equal("float[1,3,7,9]", new B(13).In("x", 1, 3, 4, 4).Ints("sz", 1, 3, 7, 9).Op("Resize", ["x", "", "", "sz"], ["y"]).Shape("y"));
        // floor(in * scale), and 0.5 on symbols
        Assert.Equal("float[1,3,6,floor(W/2)]", new B(13).In("x", 1, 3, 5, W).Floats("sc", 1, 1, 1.3f, 0.5f).Op("Resize", ["x", "", "sc"], ["y"]).Shape("y"));
        // sizes from a Shape computation
        Assert.Equal("float[N,3,H,W]", new B(13).In("x", N, 3, 4, 4).In("ref", N, 3, H, W).Op("Shape", "ref", "s").Op("Resize", ["x", "", "", "s"], ["y"]).Shape("y"));
    }

    [Fact]
    public void ConcatSumsSymbols()
    {
        var r = new B(13).In("a", N, H).In("b", N, 3).In("c", N, H)
            .Op("Concat", ["a", "b", "c"], ["y"], A1("axis", 1)).Op("Concat", ["a", "c"], ["z"], A1("axis", -2)).Run();
        Assert.Equal("float[N,2*H+3]", Show(r["y"]));
        Assert.Equal("float[2*N,H]", Show(r["z"]));
        Assert.Throws<OnnxFormatException>(() => new B(13).In("a", 2, 3).In("b", 4, 5).Op("Concat", ["a", "b"], ["y"], A1("axis", 0)).Run());
    }

    [Fact]
    public void SplitOpsetForms()
    {
        var r11 = new B(11).In("x", N, 10).Op("Split", ["x"], ["a", "b"], A1("axis", 1), A("split", 3, 7)).Run();
        Assert.Equal("float[N,3]", Show(r11["a"]));
        Assert.Equal("float[N,7]", Show(r11["b"]));
        var r13 = new B(13).In("x", N, 10).Ints("sp", 4, 6).Op("Split", ["x", "sp"], ["a", "b"], A1("axis", 1)).Run();
        Assert.Equal("float[N,6]", Show(r13["b"]));
        var eq = new B(13).In("x", N, 2 * 6).Op("Split", ["x"], ["a", "b", "c"], A1("axis", 1)).Run();
        Assert.Equal("float[N,4]", Show(eq["c"]));
        var sym = new B(13).In("x", H).Op("Split", ["x"], ["a", "b"]).Run();
        Assert.Equal("float[floor(H/2)]", Show(sym["b"]));
        var r18 = new B(18).In("x", 10).Op("Split", ["x"], ["a", "b", "c"], A1("num_outputs", 3)).Run();
        Assert.Equal("float[4]", Show(r18["a"]));
        Assert.Equal("float[2]", Show(r18["c"]));
    }

    [Fact]
    public void SliceOpsetForms()
    {
        // opset 9: attributes; INT_MAX end, negative start
        Assert.Equal("float[N,8,3]", new B(9).In("x", N, 10, 5).Op("Slice", "x", "y", A("starts", 2, -3), A("ends", long.MaxValue, 100), A("axes", 1, 2)).Shape("y"));
        // opset 10+: inputs, with steps
        Assert.Equal("float[N,4,2]", new B(13).In("x", N, 10, 5).Ints("s", 1, 4).Ints("e", 9, 0).Ints("ax", 1, 2).Ints("st", 2, -2)
            .Op("Slice", ["x", "s", "e", "ax", "st"], ["y"]).Shape("y"));
        // Symbolic dims: offsets from both ends
        Assert.Equal("float[H-3,W-1]", new B(13).In("x", H, W).Ints("s", 2, 0).Ints("e", -1, -1)
            .Op("Slice", ["x", "s", "e"], ["y"]).Shape("y"));
        Assert.Equal("float[H-2]", new B(13).In("x", H).Ints("s", 2).Ints("e", long.MaxValue).Op("Slice", ["x", "s", "e"], ["y"]).Shape("y"));
        // A fixed end on a symbolic dim may be clamped: unknown.
        Assert.Equal("float[?]", new B(13).In("x", H).Ints("s", 0).Ints("e", 5).Op("Slice", ["x", "s", "e"], ["y"]).Shape("y"));
        // starts only known at run time: rank kept
        Assert.Equal("float[?,5]", new B(13).In("x", 4, 5).In("s", ElementType.Int64, 1).Ints("e", 3).Ints("ax", 0).Op("Slice", ["x", "s", "e", "ax"], ["y"]).Shape("y"));
    }

    [Fact]
    public void GatherShapesAndValues()
    {
        var r = new B(13).In("x", N, 3, H).Ints("i2", 0, 2).Scalar("i0", 1).In("emb", 100, 16).In("tok", ElementType.Int64, N, 7)
            .Op("Gather", ["x", "i2"], ["g"], A1("axis", 1)).Op("Gather", ["x", "i0"], ["s"], A1("axis", -2))
            .Op("Gather", ["emb", "tok"], ["e"])
            .Run();
        Assert.Equal("float[N,2,H]", Show(r["g"]));
        Assert.Equal("float[N,H]", Show(r["s"]));
        Assert.Equal("float[N,7,16]", Show(r["e"]));
    }

    [Fact]
    public void ShapeGatherConcatReshapeChainKeepsSymbols()
    {
        // The PaddleOCR rec pattern: target = Concat(Shape(x)[0:2], [-1]) and Concat(0, Gather(Shape, 1) cast, 3, 8, 15).
        var r = new B(11).In("x", N, 120, 1, W)
            .Op("Shape", "x", "s")
            .Ints("st", 0).Ints("en", 2).Ints("ax", 0).Ints("m1", -1)
            .Op("Slice", ["s", "st", "en", "ax"], ["head"])
            .Op("Concat", ["head", "m1"], ["t1"], A1("axis", 0))
            .Op("Reshape", ["x", "t1"], ["flat"])
            .Op("Transpose", "flat", "ft", A("perm", 0, 2, 1))
            .Op("Shape", "ft", "fs")
            .Op("Cast", "fs", "s32", A1("to", (long)ElementType.Int32))
            .Scalar("one", 1).Op("Gather", ["s32", "one"], ["c"])
            .Op("Unsqueeze", "c", "cu", A("axes", 0))
            .Ints("zero", 0).Ints("k3", 3).Ints("k8", 8).Ints("k5", 5)
            .Op("Cast", "cu", "c64", A1("to", (long)ElementType.Int64))
            .Op("Concat", ["zero", "c64", "k3", "k8", "k5"], ["t2"], A1("axis", 0))
            .Op("Reshape", ["ft", "t2"], ["r2"])
            .Op("Size", "x", "size")
            .Run();
        Assert.Equal("int64[4]", Show(r["s"]));
        Assert.Equal("int64[3]", Show(r["t1"]));
        Assert.Equal("float[N,120,W]", Show(r["flat"]));
        Assert.Equal("float[N,W,120]", Show(r["ft"]));
        Assert.Equal("int32[]", Show(r["c"]));
        Assert.Equal("int64[5]", Show(r["t2"]));
        Assert.Equal("float[N,W,3,8,5]", Show(r["r2"]));
        Assert.Equal("int64[]", Show(r["size"]));
    }

    [Fact]
    public void ReshapeForms()
    {
        Assert.Equal("float[6,4]", new B(13).In("x", 2, 3, 4).Ints("t", -1, 4).Op("Reshape", ["x", "t"], ["y"]).Shape("y"));
        Assert.Equal("float[2,12]", new B(13).In("x", 2, 3, 4).Ints("t", 0, -1).Op("Reshape", ["x", "t"], ["y"]).Shape("y"));
        Assert.Equal("float[N,3,H*W]", new B(13).In("x", N, 3, H, W).Ints("t", 0, 0, -1).Op("Reshape", ["x", "t"], ["y"]).Shape("y"));
        Assert.Equal("float[N*W,H]", new B(13).In("x", N, H, W).Ints("t", -1, 0).Op("Reshape", ["x", "t"], ["y"]).Shape("y"));
        // allowzero: 0 is a real zero (opset 14)
        Assert.Equal("float[0,5]", new B(14).In("x", Dim.Known(0), 5).Ints("t", 0, 5).Op("Reshape", ["x", "t"], ["y"], A1("allowzero", 1)).Shape("y"));
        // opset 1-4: shape attribute
        Assert.Equal("float[3,8]", new B(4).In("x", 2, 3, 4).Op("Reshape", "x", "y", A("shape", 3, -1)).Shape("y"));
        // target unknown but its length known
        Assert.Equal("float[?,?]", new B(13).In("x", 2, 3).In("t", ElementType.Int64, 2).Op("Reshape", ["x", "t"], ["y"]).Shape("y"));
        var e = Assert.Throws<OnnxFormatException>(() => new B(13).In("x", 2, 3, 4).Ints("t", 5, -1).Op("Reshape", ["x", "t"], ["y"]).Run());
        Assert.Contains("cannot reshape 24 elements", e.Message);
    }

    [Fact]
    public void FlattenSqueezeUnsqueezeTranspose()
    {
        Assert.Equal("float[N,3*H]", new B(13).In("x", N, 3, H).Op("Flatten", "x", "y").Shape("y"));
        Assert.Equal("float[3*N,H]", new B(13).In("x", N, 3, H).Op("Flatten", "x", "y", A1("axis", -1)).Shape("y"));
        Assert.Equal("float[1,3*H*N]", new B(13).In("x", N, 3, H).Op("Flatten", "x", "y", A1("axis", 0)).Shape("y"));
        Assert.Equal("float[N,H]", new B(11).In("x", N, 1, H).Op("Squeeze", "x", "y", A("axes", 1)).Shape("y"));
        Assert.Equal("float[N,H]", new B(13).In("x", N, 1, H).Ints("a", -2).Op("Squeeze", ["x", "a"], ["y"]).Shape("y"));
        Assert.Equal("float[3]", new B(13).In("x", 1, 3, 1).Op("Squeeze", "x", "y").Shape("y"));
        Assert.Equal("float?", new B(13).In("x", N, 3, 1).Op("Squeeze", "x", "y").Shape("y"));
        Assert.Throws<OnnxFormatException>(() => new B(13).In("x", 2, 3).Ints("a", 0).Op("Squeeze", ["x", "a"], ["y"]).Run());
        Assert.Equal("float[1,N,H,1]", new B(11).In("x", N, H).Op("Unsqueeze", "x", "y", A("axes", 0, -1)).Shape("y"));
        Assert.Equal("float[N,1,H]", new B(13).In("x", N, H).Ints("a", 1).Op("Unsqueeze", ["x", "a"], ["y"]).Shape("y"));
        Assert.Equal("float[W,H,N]", new B(13).In("x", N, H, W).Op("Transpose", "x", "y").Shape("y"));
        Assert.Equal("float[H,N,W]", new B(13).In("x", N, H, W).Op("Transpose", "x", "y", A("perm", 1, 0, 2)).Shape("y"));
        Assert.Throws<OnnxFormatException>(() => new B(13).In("x", N, H).Op("Transpose", "x", "y", A("perm", 0, 0)).Run());
    }

    [Fact]
    public void ExpandPadCastShape()
    {
        Assert.Equal("float[2,N,3]", new B(13).In("x", N, 1).Ints("t", 2, 1, 3).Op("Expand", ["x", "t"], ["y"]).Shape("y"));
        Assert.Equal("float[N,H,W]", new B(13).In("x", 1, 1).In("ref", N, H, W).Op("Shape", "ref", "s").Op("Expand", ["x", "s"], ["y"]).Shape("y"));
        Assert.Equal("float[N,H+3]", new B(2).In("x", N, H).Op("Pad", "x", "y", A("pads", 0, 1, 0, 2)).Shape("y"));
        Assert.Equal("float[N+2,H+3]", new B(11).In("x", N, H).Ints("p", 1, 1, 1, 2).Op("Pad", ["x", "p"], ["y"]).Shape("y"));
        Assert.Equal("float[N,H+5]", new B(18).In("x", N, H).Ints("p", 2, 3).Floats("v", 0).Ints("ax", 1).Op("Pad", ["x", "p", "v", "ax"], ["y"]).Shape("y"));
        Assert.Equal("int32[N,H]", new B(13).In("x", N, H).Op("Cast", "x", "y", A1("to", 6)).Shape("y"));
        Assert.Equal("int64[2]", new B(15).In("x", N, H, W).Op("Shape", "x", "y", A1("start", 1)).Shape("y"));
        Assert.Equal("int64[1]", new B(15).In("x", N, H, W).Op("Shape", "x", "y", A1("start", -2), A1("end", -1)).Shape("y"));
        Assert.Equal("float[H]", new B(15).In("x", N, H, W).Op("Shape", "x", "s", A1("start", -2), A1("end", -1)).Op("ConstantOfShape", "s", "y").Shape("y"));
    }

    [Fact]
    public void ConstantOfShapeRangeWhereEqual()
    {
        var v = AttributeValue.Of("value", TensorData.FromInt64s("", [1], [7]));
        var r = new B(13).Ints("sh", 2, 3).Op("ConstantOfShape", ["sh"], ["c"], v)
            .Scalar("zero", 0).Scalar("ten", 10).Scalar("three", 3)
            .Op("Range", ["zero", "ten", "three"], ["rg"])
            .In("x", N, H).Op("Shape", "x", "s").Scalar("one", 1).Op("Gather", ["s", "one"], ["h"])
            .Op("Range", ["zero", "h", "one"], ["rh"])
            .Ints("a", 0, 5).Ints("b", 0, 4).Op("Equal", ["a", "b"], ["eq"])
            .Ints("t", 2, 7).Op("Where", ["eq", "t", "a"], ["wh"])
            .Op("ConstantOfShape", ["wh"], ["cw"])
            .Run();
        Assert.Equal("int64[2,3]", Show(r["c"]));
        Assert.Equal("int64[4]", Show(r["rg"]));
        Assert.Equal("int64[H]", Show(r["rh"]));
        Assert.Equal("bool[2]", Show(r["eq"]));
        // Equal gives [1,0]; Where picks [2,5].
        Assert.Equal("float[2,5]", Show(r["cw"]));
    }

    [Fact]
    public void DropoutMaskTypeDependsOnOpset()
    {
        Assert.Equal("float[N]", new B(9).In("x", N).Op("Dropout", ["x"], ["y", "m"]).Shape("m"));
        Assert.Equal("bool[N]", new B(12).In("x", N).Op("Dropout", ["x"], ["y", "m"]).Shape("m"));
        Assert.Equal("float[N]", new B(12).In("x", N).Op("Dropout", ["x"], ["y", "m"]).Shape("y"));
    }

    [Fact]
    public void ConstantForms()
    {
        var r = new B(13)
            .Op("Constant", [], ["t"], AttributeValue.Of("value", TensorData.FromFloats("", [2, 2], [1, 2, 3, 4])))
            .Op("Constant", [], ["f"], AttributeValue.Of("value_float", 1.5f))
            .Op("Constant", [], ["fs"], AttributeValue.Of("value_floats", new[] { 1f, 2f, 3f }))
            .Op("Constant", [], ["i"], AttributeValue.Of("value_int", 4L))
            .Op("Constant", [], ["is"], AttributeValue.Of("value_ints", new long[] { 2, -1 }))
            .Op("Constant", [], ["s"], AttributeValue.Of("value_string", "x"))
            .In("x", 4, 2).Op("Reshape", ["x", "is"], ["y"])
            .Run();
        Assert.Equal("float[2,2]", Show(r["t"]));
        Assert.Equal("float[]", Show(r["f"]));
        Assert.Equal("float[3]", Show(r["fs"]));
        Assert.Equal("int64[]", Show(r["i"]));
        Assert.Equal("int64[2]", Show(r["is"]));
        Assert.Equal("string[]", Show(r["s"]));
        Assert.Equal("float[2,4]", Show(r["y"]));
    }

    [Fact]
    public void QuantizeDequantizeTypes()
    {
        var r = new B(13).In("x", N, 4).Floats("sc", 0.1f)
            .Op("QuantizeLinear", ["x", "sc"], ["q8"])
            .Op("DequantizeLinear", ["q8", "sc"], ["dq"])
            .Run();
        Assert.Equal("uint8[N,4]", Show(r["q8"]));
        Assert.Equal("float[N,4]", Show(r["dq"]));
        var b = new B(13).In("x", N, 4).Floats("sc", 0.1f);
        b.Model.Graph.Initializers["zp"] = new TensorData("zp", ElementType.Int8, [1], [0]);
        b.Op("QuantizeLinear", ["x", "sc", "zp"], ["q"]);
        Assert.Equal("int8[N,4]", b.Shape("q"));
        var h = new B(19).In("x", ElementType.Int8, N).In("sc", ElementType.Float16, 1).Op("DequantizeLinear", ["x", "sc"], ["y"]);
        Assert.Equal("float16[N]", h.Shape("y"));
        Assert.Equal("int8[N]", new B(21).In("x", N).Floats("sc", 1).Op("QuantizeLinear", ["x", "sc"], ["q"], A1("output_dtype", 3)).Shape("q"));
    }

    [Fact]
    public void UnknownOpsGiveUnknownOutputsOrTheDeclaredValueInfo()
    {
        var b = new B(13).In("x", N, 4);
        b.Model.Graph.Nodes.Add(new Node("", "MysteryOp", "com.example", ["x"], ["a"]));
        b.Model.Graph.Nodes.Add(new Node("", "AlsoUnknown", "", ["x"], ["b"]));
        b.Model.Graph.ValueInfos["b"] = new ValueInfo("b", ElementType.Int32, [Dim.Named("Z")]);
        b.Op("Relu", "a", "c");
        var r = b.Run();
        Assert.Equal("undefined?", Show(r["a"]));
        Assert.Equal("int32[Z]", Show(r["b"]));
        Assert.Equal("undefined?", Show(r["c"]));
    }

    [Fact]
    public void InputShapeOverrideIsChecked()
    {
        var b = new B(13).In("x", N, 4).Op("Relu", "x", "y");
        Assert.Equal("float[2,4]", Show(ShapeInference.Run(b.Model, new Dictionary<string, Dim[]> { ["x"] = [2, 4] })["y"]));
        Assert.Throws<ArgumentException>(() => ShapeInference.Run(b.Model, new Dictionary<string, Dim[]> { ["x"] = [2, 5] }));
        Assert.Throws<ArgumentException>(() => ShapeInference.Run(b.Model, new Dictionary<string, Dim[]> { ["x"] = [2] }));
        Assert.Throws<ArgumentException>(() => ShapeInference.Run(b.Model, new Dictionary<string, Dim[]> { ["nope"] = [2] }));
    }

    [Fact]
    public void EveryListedOpHasARule()
    {
        string[] required = ["Conv", "ConvTranspose", "BatchNormalization", "Relu", "LeakyRelu", "Clip", "HardSigmoid", "HardSwish",
            "Sigmoid", "Tanh", "Erf", "Gelu", "Exp", "Log", "Sqrt", "Pow", "Neg", "Abs", "Reciprocal", "Add", "Sub", "Mul", "Div", "Max", "Min",
            "MatMul", "Gemm", "Softmax", "LayerNormalization", "ReduceMean", "ReduceSum", "ReduceMax", "GlobalAveragePool", "AveragePool",
            "MaxPool", "Resize", "Concat", "Split", "Slice", "Gather", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Expand",
            "Pad", "Cast", "Shape", "ConstantOfShape", "Range", "Where", "Equal", "Identity", "Dropout", "Constant", "QuantizeLinear", "DequantizeLinear"];
        Assert.Empty(required.Except(ShapeInference.SupportedOps));
    }
}

public class SymbolicDimTests
{
    [Fact]
    public void FloorsSimplifyAndPrintCanonically()
    {
        var h = SymExpr.Symbol("H");
        Assert.Equal("floor((H+1)/2)", (h + SymExpr.Const(1)).FloorDiv(2).ToString());
        Assert.Equal("floor((H+3)/4)", ((h + SymExpr.Const(1)).FloorDiv(2) + SymExpr.Const(1)).FloorDiv(2).ToString());
        Assert.Equal("H+floor((H+1)/2)", (h * 3 + SymExpr.Const(1)).FloorDiv(2).ToString());
        Assert.Equal("2*H+3", (h * 4 + SymExpr.Const(7)).FloorDiv(2).ToString());
        Assert.Equal("H*W", (SymExpr.Symbol("W") * h).ToString());
        Assert.Equal("0", (h - h).ToString());
        Assert.Equal("[a b]-1", (SymExpr.Symbol("a b") - SymExpr.Const(1)).ToString());
    }

    [Fact]
    public void PrintedExpressionsParseBackAndEvaluate()
    {
        var rng = new Random(7);
        for (int trial = 0; trial < 200; trial++)
        {
            var e = SymExpr.Symbol("H");
            var w = SymExpr.Symbol("p2o.Dim.1");
            for (int step = 0; step < 4; step++)
            {
                e = rng.Next(4) switch
                {
                    0 => e + SymExpr.Const(rng.Next(-5, 6)),
                    1 => e * rng.Next(1, 4),
                    2 => e.FloorDiv(rng.Next(1, 5)),
                    _ => e + w * rng.Next(-2, 3),
                };
            }
            var text = e.ToString();
            var parsed = SymbolicDim.Parse(text);
            Assert.Equal(text, parsed.ToString());
            for (long hv = 0; hv < 70; hv += 7)
            {
                var bind = new Dictionary<string, long> { ["H"] = hv, ["p2o.Dim.1"] = 5 };
                Assert.Equal(e.Evaluate(bind), SymbolicDim.Evaluate(Dim.Named(text), bind));
            }
        }
    }

    [Fact]
    public void FloorSimplificationsAgreeWithDirectEvaluation()
    {
        // floor((a*H + b)/k) built by FloorDiv must equal floor division of the evaluated numerator.
        for (long a = -3; a <= 3; a++)
            for (long b = -7; b <= 7; b++)
                for (long k = 1; k <= 5; k++)
                {
                    var e = (SymExpr.Symbol("H") * a + SymExpr.Const(b)).FloorDiv(k);
                    var nested = e.FloorDiv(3) + SymExpr.Const(2);
                    for (long hv = -10; hv <= 10; hv++)
                    {
                        long num = a * hv + b;
                        long expected = (long)Math.Floor(num / (double)k);
                        var bind = new Dictionary<string, long> { ["H"] = hv };
                        Assert.Equal(expected, e.Evaluate(bind));
                        Assert.Equal((long)Math.Floor(expected / 3.0) + 2, nested.Evaluate(bind));
                    }
                }
    }

    [Fact]
    public void UnboundOrUnparsableSymbolsEvaluateToNull()
    {
        Assert.Null(SymbolicDim.Evaluate(Dim.Named("floor((H+1)/2)"), new Dictionary<string, long>()));
        Assert.Null(SymbolicDim.Evaluate(Dim.Unknown, new Dictionary<string, long>()));
        Assert.Equal(3, SymbolicDim.Evaluate(Dim.Named("batch size"), new Dictionary<string, long> { ["batch size"] = 3 }));
        Assert.Equal(5, SymbolicDim.Evaluate(Dim.Known(5), new Dictionary<string, long>()));
        Assert.Null(SymbolicDim.Evaluate(Dim.Named("((("), new Dictionary<string, long>()));
    }
}
