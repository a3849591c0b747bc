using Google.Protobuf;
using Quant.Onnx.Proto;
using Quant.TestSupport;

namespace Quant.Onnx.Tests;

public class RoundTripTests
{
    public static TheoryData<string> RealModels => new() { "det", "rec", "cls" };

    internal static string ModelPath(string id) => id switch
    {
        "det" => TestAssets.DetModel,
        "rec" => TestAssets.RecModel,
        _ => TestAssets.ClsModel,
    };

    [Theory]
    [MemberData(nameof(RealModels))]
    public void SavingAnUnmodifiedRealModelAndLoadingItGivesAnEqualGraph(string id)
    {
        var path = ModelPath(id);
        var model = OnnxModelReader.Load(path);
        var bytes = OnnxModelWriter.ToBytes(model);
        var again = OnnxModelReader.Parse(bytes, "roundtrip.onnx", Path.GetDirectoryName(path)!);
        Assert.Null(GraphComparer.FirstDifference(model, again));

        // Deterministic: the same model gives the same bytes, and a reloaded model saves identically.
        Assert.Equal(bytes, OnnxModelWriter.ToBytes(model));
        Assert.Equal(bytes, OnnxModelWriter.ToBytes(again));
    }

    [Theory]
    [MemberData(nameof(RealModels))]
    public void SavedRealModelIsReadByOnnxItselfAsTheSameProto(string id)
    {
        // The protobuf decoded from our bytes must equal the original file's protobuf, field for field,
        // except for fields the IR does not carry (none are set in these exports).
        var original = ModelProto.Parser.ParseFrom(File.ReadAllBytes(ModelPath(id)));
        var ours = ModelProto.Parser.ParseFrom(OnnxModelWriter.ToBytes(OnnxModelReader.Load(ModelPath(id))));
        Assert.Equal(original.Graph.Node.Count, ours.Graph.Node.Count);
        for (int i = 0; i < original.Graph.Node.Count; i++)
            Assert.Equal(original.Graph.Node[i], ours.Graph.Node[i]);
        Assert.Equal(original.Graph.Input, ours.Graph.Input);
        Assert.Equal(original.Graph.Output, ours.Graph.Output);
        Assert.Equal(original.OpsetImport, ours.OpsetImport);
        Assert.Equal(original.IrVersion, ours.IrVersion);
    }

    [Fact]
    public void SaveIsAtomicAndLeavesNoTemporaryFiles()
    {
        var dir = TestAssets.TempDir("onnx-save");
        var model = OnnxModelReader.Load(TestAssets.ClsModel);
        var target = Path.Combine(dir, "m.onnx");
        File.WriteAllText(target, "old contents");
        OnnxModelWriter.Save(model, target);
        Assert.Equal(["m.onnx"], Directory.GetFiles(dir).Select(Path.GetFileName));
        Assert.Null(GraphComparer.FirstDifference(model, OnnxModelReader.Load(target)));
        Assert.Equal(OnnxModelWriter.ToBytes(model), File.ReadAllBytes(target));
    }

    [Fact]
    public void ExternalDataRoundTripOfARealModel()
    {
        var dir = TestAssets.TempDir("onnx-ext");
        var model = OnnxModelReader.Load(TestAssets.DetModel);
        var target = Path.Combine(dir, "det.onnx");
        // The Paddle exports keep their weights in Constant nodes, so move attribute tensors too.
        OnnxModelWriter.Save(model, target, new OnnxWriteOptions { ExternalData = true, ExternalAttributeTensors = true });
        var dataFile = target + ".data";
        Assert.True(File.Exists(dataFile));
        Assert.True(new FileInfo(target).Length < new FileInfo(TestAssets.DetModel).Length / 4, "weights should have moved out of the model file");

        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(target));
        var external = proto.Graph.Node.SelectMany(n => n.Attribute).Where(a => a.T is not null && a.T.DataLocation == TensorProto.Types.DataLocation.External).Select(a => a.T).ToList();
        Assert.NotEmpty(external);
        foreach (var t in external)
        {
            var kv = t.ExternalData.ToDictionary(e => e.Key, e => e.Value);
            Assert.Equal("det.onnx.data", kv["location"]);
            long offset = long.Parse(kv["offset"]), length = long.Parse(kv["length"]);
            Assert.Equal(0, offset % (length >= 64 * 1024 ? 4096 : 64));
            Assert.True(offset + length <= new FileInfo(dataFile).Length);
        }

        var again = OnnxModelReader.Load(target);
        Assert.Null(GraphComparer.FirstDifference(model, again));
        // Deterministic with external data as well.
        var target2 = Path.Combine(dir, "det.onnx");
        OnnxModelWriter.Save(again, target2, new OnnxWriteOptions { ExternalData = true, ExternalAttributeTensors = true });
        Assert.Equal(File.ReadAllBytes(target), File.ReadAllBytes(target2));
    }

    [Fact]
    public void ExternalDataOfInitializersOnly()
    {
        var model = Tiny();
        var dir = TestAssets.TempDir("onnx-ext-init");
        var target = Path.Combine(dir, "tiny.onnx");
        OnnxModelWriter.Save(model, target, new OnnxWriteOptions { ExternalData = true, ExternalDataThreshold = 16 });
        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(target));
        Assert.Equal(TensorProto.Types.DataLocation.External, proto.Graph.Initializer.Single(t => t.Name == "w").DataLocation);
        Assert.Equal(TensorProto.Types.DataLocation.Default, proto.Graph.Initializer.Single(t => t.Name == "small").DataLocation);
        // Attribute tensors stay inline unless asked.
        Assert.Equal(TensorProto.Types.DataLocation.Default, proto.Graph.Node.Single(n => n.OpType == "Constant").Attribute[0].T.DataLocation);
        Assert.Null(GraphComparer.FirstDifference(model, OnnxModelReader.Load(target)));
    }

    [Fact]
    public void NoDataFileWhenNothingIsLargeEnough()
    {
        var dir = TestAssets.TempDir("onnx-ext-none");
        var target = Path.Combine(dir, "tiny.onnx");
        OnnxModelWriter.Save(Tiny(), target, new OnnxWriteOptions { ExternalData = true, ExternalDataThreshold = 1 << 20 });
        Assert.Equal(["tiny.onnx"], Directory.GetFiles(dir).Select(Path.GetFileName));
    }

    [Fact]
    public void UnmodelledPartsSurviveARoundTrip()
    {
        // A model with everything the IR does not decode: local functions, sparse initializers,
        // quantization annotations, graph metadata, a sparse-tensor attribute; plus doc strings,
        // value_info, metadata, a subgraph, string tensors and typed (non-raw) tensor fields.
        var p = new ModelProto { IrVersion = 8, ProducerName = "test", ProducerVersion = "1", Domain = "d", ModelVersion = 3, DocString = "model doc" };
        p.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        p.OpsetImport.Add(new OperatorSetIdProto { Domain = "custom", Version = 1 });
        p.MetadataProps.Add(new StringStringEntryProto { Key = "k", Value = "v" });
        var fn = new FunctionProto { Name = "F", Domain = "custom" };
        fn.Input.Add("a"); fn.Output.Add("b");
        fn.Node.Add(new NodeProto { OpType = "Identity", Input = { "a" }, Output = { "b" } });
        p.Functions.Add(fn);
        var g = new GraphProto { Name = "main", DocString = "graph doc" };
        g.Input.Add(Vi("x", 1, [2, -1], "N"));
        g.Output.Add(Vi("z", 1, null, null));
        g.ValueInfo.Add(Vi("y", 1, [2, 3], null));
        var floatTyped = new TensorProto { Name = "ft", DataType = 1, Dims = { 3 } };
        floatTyped.FloatData.AddRange([1.5f, -2f, float.NaN]);
        g.Initializer.Add(floatTyped);
        var strings = new TensorProto { Name = "st", DataType = 8, Dims = { 2 } };
        strings.StringData.Add(ByteString.CopyFromUtf8("hello"));
        strings.StringData.Add(ByteString.CopyFromUtf8("wörld"));
        g.Initializer.Add(strings);
        var i16 = new TensorProto { Name = "i16", DataType = 5, Dims = { 2 } };
        i16.Int32Data.AddRange([-3, 7]);
        g.Initializer.Add(i16);
        g.SparseInitializer.Add(new SparseTensorProto { Dims = { 4 }, Values = new TensorProto { Name = "sp", DataType = 1, Dims = { 1 }, FloatData = { 1f } }, Indices = new TensorProto { DataType = 7, Dims = { 1 }, Int64Data = { 2 } } });
        g.QuantizationAnnotation.Add(new TensorAnnotation { TensorName = "y", QuantParameterTensorNames = { new StringStringEntryProto { Key = "SCALE_TENSOR", Value = "s" } } });
        g.MetadataProps.Add(new StringStringEntryProto { Key = "gk", Value = "gv" });
        var n1 = new NodeProto { Name = "f", OpType = "F", Domain = "custom", Input = { "x" }, Output = { "y" }, DocString = "node doc" };
        n1.Attribute.Add(new AttributeProto { Name = "sparse", Type = AttributeProto.Types.AttributeType.SparseTensor, SparseTensor = new SparseTensorProto { Dims = { 2 } } });
        n1.Attribute.Add(new AttributeProto { Name = "fs", Type = AttributeProto.Types.AttributeType.Floats, Floats = { 0.5f, -0f } });
        n1.Attribute.Add(new AttributeProto { Name = "ss", Type = AttributeProto.Types.AttributeType.Strings, Strings = { ByteString.CopyFromUtf8("a"), ByteString.CopyFrom(0xff, 0x00) } });
        g.Node.Add(n1);
        var sub = new GraphProto { Name = "then" };
        sub.Output.Add(Vi("y", 1, null, null));
        var ifNode = new NodeProto { OpType = "If", Input = { "c" }, Output = { "z" } };
        ifNode.Attribute.Add(new AttributeProto { Name = "then_branch", Type = AttributeProto.Types.AttributeType.Graph, G = sub });
        ifNode.Attribute.Add(new AttributeProto { Name = "else_branch", Type = AttributeProto.Types.AttributeType.Graph, G = sub });
        g.Node.Add(ifNode);
        p.Graph = g;

        var model = OnnxModelReader.Parse(p.ToByteArray(), "crafted.onnx", Path.GetTempPath());
        var bytes = OnnxModelWriter.ToBytes(model);
        var again = OnnxModelReader.Parse(bytes, "again.onnx", Path.GetTempPath());
        Assert.Null(GraphComparer.FirstDifference(model, again));
        Assert.Equal(bytes, OnnxModelWriter.ToBytes(again));

        var back = ModelProto.Parser.ParseFrom(bytes);
        Assert.Equal(p.Functions, back.Functions);
        Assert.Equal(p.Graph.SparseInitializer, back.Graph.SparseInitializer);
        Assert.Equal(p.Graph.QuantizationAnnotation, back.Graph.QuantizationAnnotation);
        Assert.Equal(p.Graph.MetadataProps, back.Graph.MetadataProps);
        Assert.Equal(p.Graph.Node[0].Attribute[0], back.Graph.Node[0].Attribute[0]);
        Assert.Equal(p.Graph.ValueInfo, back.Graph.ValueInfo);
        Assert.Equal(p.Graph.Input, back.Graph.Input);
        Assert.Equal(p.MetadataProps, back.MetadataProps);
        Assert.Equal("node doc", back.Graph.Node[0].DocString);
        Assert.Equal(["hello", "wörld"], again.Graph.Initializers["st"].Strings!);
        Assert.Equal(new short[] { -3, 7 }, again.Graph.Initializers["i16"].As<short>().ToArray());
        Assert.True(float.IsNaN(again.Graph.Initializers["ft"].As<float>()[2]));
    }

    [Fact]
    public void ComparerReportsTheFirstDifferenceReadably()
    {
        var a = Tiny();
        var b = Tiny();
        Assert.Null(GraphComparer.FirstDifference(a, b));
        b.Graph.Nodes[1].Set(AttributeValue.Of("alpha", 0.25f));
        Assert.Equal("graph 'tiny': node 1 node 'act' (LeakyRelu): attribute 'alpha': alpha=0.1 vs alpha=0.25", GraphComparer.FirstDifference(a, b));
        var c = Tiny();
        c.Graph.Initializers["w"].Raw[5] ^= 1;
        Assert.Contains("initializer 'w': data differs from byte 5", GraphComparer.FirstDifference(a, c));
        var d = Tiny();
        d.Opsets[""] = 12;
        Assert.Contains("opset imports", GraphComparer.FirstDifference(a, d));
        var e = Tiny();
        e.Graph.Outputs[0].Shape = [Dim.Named("M"), 4];
        Assert.Contains("output 'y' shape", GraphComparer.FirstDifference(a, e));
    }

    internal static ValueInfoProto Vi(string name, int type, long[]? dims, string? symbol)
    {
        var tt = new TypeProto.Types.Tensor { ElemType = type };
        if (dims is not null)
        {
            tt.Shape = new TensorShapeProto();
            foreach (var d in dims)
                tt.Shape.Dim.Add(d >= 0 ? new TensorShapeProto.Types.Dimension { DimValue = d } : new TensorShapeProto.Types.Dimension { DimParam = symbol ?? "" });
        }
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tt } };
    }

    /// <summary>x[N,4] -> MatMul(w[4,4]) -> LeakyRelu -> Add(Constant) -> y.</summary>
    internal static OnnxModel Tiny()
    {
        var g = new Graph { Name = "tiny" };
        g.Inputs.Add(new ValueInfo("x", ElementType.Float, [Dim.Named("N"), 4]));
        g.Outputs.Add(new ValueInfo("y", ElementType.Float, [Dim.Named("N"), 4]));
        g.Initializers["w"] = TensorData.FromFloats("w", [4, 4], Enumerable.Range(0, 16).Select(i => i * 0.5f).ToArray());
        g.Initializers["small"] = TensorData.FromFloats("small", [1], [1f]);
        g.Nodes.Add(new Node("mm", "MatMul", "", ["x", "w"], ["h"]));
        var act = new Node("act", "LeakyRelu", "", ["h"], ["a"]);
        act.Set(AttributeValue.Of("alpha", 0.1f));
        g.Nodes.Add(act);
        var k = new Node("k", "Constant", "", [], ["kc"]);
        k.Set(AttributeValue.Of("value", TensorData.FromFloats("", [4], [1f, 2f, 3f, 4f])));
        g.Nodes.Add(k);
        g.Nodes.Add(new Node("add", "Add", "", ["a", "kc"], ["y"]));
        var m = new OnnxModel(g) { IrVersion = 8, ProducerName = "tests" };
        m.Opsets[""] = 13;
        return m;
    }
}
