using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Engine.Tests.Conformance;

/// <summary>
/// ONNX's own backend node tests (Debian libonnx-testdata, ONNX 1.12): every test whose model uses an
/// op the engine registers runs here and must match the stored outputs. A test the engine cannot
/// pass is listed with its reason in excluded-node-tests.txt; a listed test that starts passing
/// fails too, so the list stays true.
/// </summary>
public class OnnxNodeTests
{
    // ONNX's backend runner compares with rtol=1e-3, atol=1e-7; we use its rtol and a slightly larger
    // atol because our float kernels may sum in a different order than the reference numpy code.
    private const double Rtol = 1e-3;
    private const double Atol = 1e-5;

    private static readonly Lazy<Dictionary<string, string>> Exclusions = new(() =>
    {
        var file = Path.Combine(TestAssets.RepoRoot, "tests", "Quant.Engine.Tests", "Conformance", "excluded-node-tests.txt");
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var raw in File.ReadAllLines(file))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            int hash = line.IndexOf('#');
            Assert.True(hash > 0, $"excluded-node-tests.txt: '{line}' needs a '# reason'");
            map[line[..hash].Trim()] = line[(hash + 1)..].Trim();
        }
        return map;
    });

    /// <summary>
    /// The ops a test is about: the ops of its own model, or for an "_expanded" test (the op's function body
    /// spelled out in other ops) the ops of the unexpanded test it expands. So the expansion of a loss
    /// function is not counted as a test of Mul just because it multiplies.
    /// </summary>
    private static IEnumerable<string> OpsUnderTest(string dir)
    {
        var name = Path.GetFileName(dir);
        var owner = name.EndsWith("_expanded", StringComparison.Ordinal)
            ? Path.Combine(Path.GetDirectoryName(dir)!, name[..^"_expanded".Length])
            : dir;
        if (!Directory.Exists(owner)) owner = dir;
        try { return OnnxModelReader.Load(Path.Combine(owner, "model.onnx")).Graph.Nodes.Where(n => n.IsDefaultDomain).Select(n => n.OpType).ToList(); }
        catch (OnnxFormatException) { return []; }
    }

    public static IEnumerable<object[]> Cases()
    {
        var registered = new HashSet<string>(KernelRegistry.Default.OpTypes(), StringComparer.Ordinal);
        foreach (var dir in Directory.GetDirectories(TestAssets.OnnxNodeTests).Order(StringComparer.Ordinal))
            if (OpsUnderTest(dir).Any(registered.Contains))
                yield return [Path.GetFileName(dir)];
    }

    [Fact]
    public void Every_registered_op_has_node_tests()
    {
        var covered = new HashSet<string>(StringComparer.Ordinal);
        foreach (var dir in Directory.GetDirectories(TestAssets.OnnxNodeTests))
        {
            try { foreach (var n in OnnxModelReader.Load(Path.Combine(dir, "model.onnx")).Graph.Nodes) covered.Add(n.OpType); }
            catch (OnnxFormatException) { }
        }
        // Ops newer than ONNX 1.12's test data are tested against ONNX Runtime instead; each is named here with the test that does it.
        var newer = new Dictionary<string, string>
        {
            ["Gelu"] = "opset 20; ActivationsTests compares it with ONNX Runtime (Fixtures/elem_gelu_opset20.onnx)",
        };
        var missing = KernelRegistry.Default.OpTypes().Where(op => !covered.Contains(op) && !newer.ContainsKey(op)).ToList();
        Assert.True(missing.Count == 0, $"registered ops with no ONNX node test: {string.Join(", ", missing)}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Node_test_matches_stored_outputs(string testName)
    {
        bool excluded = Exclusions.Value.TryGetValue(testName, out var reason);
        Exception? failure = null;
        try { RunTest(testName); }
        catch (Exception e) { failure = e; }
        if (excluded)
            Assert.True(failure is not null, $"{testName} passes now; remove it from excluded-node-tests.txt (was: {reason})");
        else if (failure is not null)
            throw new Xunit.Sdk.XunitException($"{testName}: {failure.Message}\n(if the engine cannot support this case, list it in excluded-node-tests.txt with the reason)");
    }

    private static void RunTest(string testName)
    {
        var dir = Path.Combine(TestAssets.OnnxNodeTests, testName);
        var model = OnnxModelReader.Load(Path.Combine(dir, "model.onnx"));
        var session = new InferenceSession(model, new SessionOptions { Threads = 2 });
        var inputs = model.Graph.RuntimeInputs.ToList();
        foreach (var set in Directory.GetDirectories(dir, "test_data_set_*").Order(StringComparer.Ordinal))
        {
            var feeds = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            for (int i = 0; i < inputs.Count; i++)
            {
                var file = Path.Combine(set, $"input_{i}.pb");
                if (File.Exists(file)) feeds[inputs[i].Name] = Tensor.FromData(OnnxTensorFile.Load(file));
            }
            var results = session.Run(feeds);
            for (int o = 0; o < model.Graph.Outputs.Count; o++)
            {
                var name = model.Graph.Outputs[o].Name;
                var expected = Tensor.FromData(OnnxTensorFile.Load(Path.Combine(set, $"output_{o}.pb")));
                TensorAssert.Close(expected, results[name], Rtol, Atol, $"{Path.GetFileName(set)} output '{name}'");
            }
        }
    }
}
