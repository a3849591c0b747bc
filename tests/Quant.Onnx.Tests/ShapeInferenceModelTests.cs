using System.Text.Json;
using Quant.Onnx.Shapes;
using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Onnx.Tests;

public class ShapeInferenceModelTests(ITestOutputHelper output)
{
    private sealed record RefValue(int Type, long?[]? Shape);
    private sealed record RefCase(string Model, string Input, long[] Shape, Dictionary<string, RefValue> Values);

    /// <summary>Shapes reported by ONNX's own shape inference; see Fixtures/make_shape_reference.py.</summary>
    private static readonly List<RefCase> Reference = LoadReference();

    private static List<RefCase> LoadReference()
    {
        var path = Path.Combine(TestAssets.RepoRoot, "tests", "Quant.Onnx.Tests", "Fixtures", "onnx-shape-reference.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var list = new List<RefCase>();
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            var values = new Dictionary<string, RefValue>(StringComparer.Ordinal);
            foreach (var v in c.GetProperty("values").EnumerateObject())
            {
                var shape = v.Value.GetProperty("shape");
                values[v.Name] = new RefValue(v.Value.GetProperty("type").GetInt32(),
                    shape.ValueKind == JsonValueKind.Null ? null : shape.EnumerateArray().Select(d => d.ValueKind == JsonValueKind.Null ? (long?)null : d.GetInt64()).ToArray());
            }
            list.Add(new RefCase(c.GetProperty("model").GetString()!, c.GetProperty("input").GetString()!,
                c.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray(), values));
        }
        return list;
    }

    public static TheoryData<int> ReferenceCases => new() { 0, 1, 2, 3 };

    private static readonly Dictionary<string, OnnxModel> Models = new();
    private static OnnxModel Model(string id)
    {
        lock (Models)
        {
            if (!Models.TryGetValue(id, out var m)) Models[id] = m = OnnxModelReader.Load(RoundTripTests.ModelPath(id));
            return m;
        }
    }

    private static IEnumerable<string> NodeOutputs(OnnxModel m) => m.Graph.Nodes.SelectMany(n => n.Outputs).Where(o => o.Length > 0);

    [Theory]
    [MemberData(nameof(ReferenceCases))]
    public void ConcreteInputShapesGiveTheShapesOnnxReports(int index)
    {
        var rc = Reference[index];
        var model = Model(rc.Model);
        var inferred = ShapeInference.Run(model, new Dictionary<string, Dim[]> { [rc.Input] = rc.Shape.Select(Dim.Known).ToArray() });
        int compared = 0;
        foreach (var name in NodeOutputs(model))
        {
            var ours = inferred[name];
            // Ours must be complete everywhere, also where ONNX's inference gives up.
            Assert.True(ours.Shape is not null && ours.Shape.All(d => d.IsKnown), $"{name}: {ours}");
            Assert.NotEqual(ElementType.Undefined, ours.Type);
            if (!rc.Values.TryGetValue(name, out var r) || r.Shape is null || r.Shape.Any(d => d is null)) continue;
            Assert.Equal((ElementType)r.Type, ours.Type);
            Assert.True(r.Shape.Select(d => d!.Value).SequenceEqual(ours.Shape.Select(d => d.Value)),
                $"{name}: ONNX says [{string.Join(",", r.Shape)}], we say {ours}");
            compared++;
        }
        output.WriteLine($"{rc.Model} [{string.Join(",", rc.Shape)}]: {compared} values compared with ONNX, {NodeOutputs(model).Count()} inferred");
        Assert.True(compared > NodeOutputs(model).Count() * 3 / 4, $"only {compared} values compared");
    }

    [Theory]
    [InlineData("rec", new[] { 1, 3, 48, 100 })]
    [InlineData("det", new[] { 1, 3, 64, 96 })]
    [InlineData("cls", new[] { 2, 3, 48, 100 })]
    public void InferredOutputShapesMatchWhatOnnxRuntimeProduces(string id, int[] shape)
    {
        var model = Model(id);
        var input = model.Graph.RuntimeInputs.Single().Name;
        var inferred = ShapeInference.Run(model, new Dictionary<string, Dim[]> { [input] = shape.Select(d => Dim.Known(d)).ToArray() });
        var x = Quant.Engine.Tensor.From(new float[shape.Aggregate(1, (a, b) => a * b)], shape);
        var ort = OrtOracle.Run(RoundTripTests.ModelPath(id), new Dictionary<string, Quant.Engine.Tensor> { [input] = x });
        foreach (var o in model.Graph.Outputs)
            Assert.Equal(ort.Outputs[o.Name].Shape.Select(d => (long)d), inferred[o.Name].Shape!.Select(d => d.Value));
    }

    public static TheoryData<string, long[][]> SymbolicCases => new()
    {
        { "det", [[1, 3, 640, 640], [2, 3, 480, 320], [1, 3, 32, 96], [3, 3, 960, 64]] },
        { "rec", [[1, 3, 48, 320], [2, 3, 48, 100], [1, 3, 48, 8]] },
        { "cls", [[1, 3, 48, 192], [4, 3, 48, 100]] },
    };

    [Theory]
    [MemberData(nameof(SymbolicCases))]
    public void SymbolicInputsGiveExpressionsThatEvaluateToTheConcreteShapes(string id, long[][] concrete)
    {
        var model = Model(id);
        var input = model.Graph.RuntimeInputs.Single();
        var declared = input.Shape!;
        string[] names = ["N", "C", "H", "W"];
        var symbolic = declared.Select((d, i) => d.IsKnown ? d : Dim.Named(names[i])).ToArray();
        var sym = ShapeInference.Run(model, new Dictionary<string, Dim[]> { [input.Name] = symbolic });

        foreach (var name in NodeOutputs(model))
        {
            var v = sym[name];
            Assert.True(v.Shape is not null, $"{name}: rank unknown");
            Assert.NotEqual(ElementType.Undefined, v.Type);
            foreach (var d in v.Shape!)
                Assert.True(d.IsKnown || d.Symbol is not null, $"{name}: {v} has an unknown dim");
        }
        var outName = model.Graph.Outputs[0].Name;
        output.WriteLine($"{id} output: {sym[outName]}");
        foreach (var d in sym[outName].Shape!)
            Assert.All(SymbolicDim.Symbols(d), s => Assert.Contains(s, names));

        foreach (var shape in concrete)
        {
            var conc = ShapeInference.Run(model, new Dictionary<string, Dim[]> { [input.Name] = shape.Select(Dim.Known).ToArray() });
            var bindings = names.Select((n, i) => (n, shape[i])).ToDictionary(p => p.n, p => p.Item2);
            foreach (var name in NodeOutputs(model))
            {
                var evaluated = sym[name].Shape!.Select(d => SymbolicDim.Evaluate(d, bindings)).ToArray();
                var expected = conc[name].Shape!.Select(d => (long?)d.Value).ToArray();
                Assert.True(expected.SequenceEqual(evaluated), $"{name} at [{string.Join(",", shape)}]: symbolic {sym[name]} evaluates to [{string.Join(",", evaluated)}], concrete says {conc[name]}");
            }
        }
    }

    [Fact]
    public void DetOutputIsNOneAndTheInputSizeRoundedUpToThe32Grid()
    {
        var model = Model("det");
        var sym = ShapeInference.Run(model, new Dictionary<string, Dim[]> { ["x"] = [Dim.Named("N"), 3, Dim.Named("H"), Dim.Named("W")] });
        var o = sym[model.Graph.Outputs[0].Name].Shape!;
        Assert.Equal(Dim.Named("N"), o[0]);
        Assert.Equal(Dim.Known(1), o[1]);
        // Stride-32 backbone and FPN: every H that passes the model's internal Adds gives 32*ceil(H/32).
        foreach (var h in new long[] { 32, 64, 320, 640, 960, 1216 })
            Assert.Equal(h, SymbolicDim.Evaluate(o[2], new Dictionary<string, long> { ["H"] = h }));
        Assert.Equal(["H"], SymbolicDim.Symbols(o[2]));
        Assert.Equal(["W"], SymbolicDim.Symbols(o[3]));
    }

    [Fact]
    public void WriteToGraphStoresValueInfos()
    {
        var model = OnnxModelReader.Load(TestAssets.ClsModel);
        Assert.Empty(model.Graph.ValueInfos);
        ShapeInference.Run(model, new Dictionary<string, Dim[]> { ["x"] = [1, 3, 48, 192] }, writeToGraph: true);
        Assert.Equal(NodeOutputs(model).Count() - model.Graph.Outputs.Count, model.Graph.ValueInfos.Count);
        Assert.All(model.Graph.ValueInfos.Values, v => Assert.True(v.Shape!.All(d => d.IsKnown)));
        // And they survive saving.
        var again = OnnxModelReader.Parse(OnnxModelWriter.ToBytes(model), "x.onnx", Path.GetTempPath());
        Assert.Null(GraphComparer.FirstDifference(model, again));
    }
}
