using Quant.Engine.Kernels;
using Quant.Onnx;
using Quant.TestSupport;
using static Quant.Engine.Tests.Kernels.ElementwiseReference;

namespace Quant.Engine.Tests.Plan;

/// <summary>
/// The fused QuantizeLinear → DequantizeLinear pass (<see cref="FakeQuantizeKernel"/>) against the two separate
/// kernels: bit for bit on hard values (ties, saturation, infinities, NaN, -0) and on every activation of a real rec
/// run, in every integer type; and the plan: which pairs fuse, and that observers, kept values and downstream re-runs
/// still see the separate nodes.
/// </summary>
public class FakeQuantFusionTests
{
    private static readonly ElementType[] QTypes = [ElementType.UInt8, ElementType.Int8, ElementType.UInt16, ElementType.Int16];

    private static Tensor Scalar(ElementType t, int v) => t switch
    {
        ElementType.UInt8 => Tensor.From(new[] { (byte)v }),
        ElementType.Int8 => Tensor.From(new[] { (sbyte)v }),
        ElementType.UInt16 => Tensor.From(new[] { (ushort)v }),
        _ => Tensor.From(new[] { (short)v }),
    };

    /// <summary>Ties at k + 0.5 steps, magnitudes far past the range, infinities, NaN and -0 among ordinary values.</summary>
    private static float[] HardValues(int n, int seed, float scale)
    {
        var rng = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++)
            a[i] = (i % 9) switch
            {
                0 => (rng.Next(-40000, 40000) + 0.5f) * scale,
                1 => float.NaN,
                2 => rng.Next(2) == 0 ? float.PositiveInfinity : float.NegativeInfinity,
                3 => (float)(rng.NextDouble() - 0.5) * 1e7f * scale,
                4 => -0f,
                _ => (float)(rng.NextDouble() - 0.5) * 600 * scale,
            };
        return a;
    }

    /// <summary>The separate kernels, each as a one-node graph (nothing to fuse there).</summary>
    private static Tensor Unfused(Tensor x, float scale, Tensor zp, float dqScale, Tensor dqZp)
    {
        var q = RunNode("QuantizeLinear", 13, [x, Tensor.From(new[] { scale }), zp])[0];
        return RunNode("DequantizeLinear", 13, [q, Tensor.From(new[] { dqScale }), dqZp])[0];
    }

    private static Tensor Fused(Tensor x, float scale, Tensor zp, float dqScale, Tensor dqZp)
    {
        var p = FakeQuantParams.Of(Tensor.From(new[] { scale }), zp, Tensor.From(new[] { dqScale }), dqZp);
        var y = new float[x.Length];
        FakeQuantRun.Run(x.ReadOnlySpan<float>(), p, y);
        return Tensor.From(y, x.Shape.ToArray());
    }

    [Fact]
    public void Vector_and_scalar_paths_equal_the_separate_kernels_on_hard_values_of_every_length_and_type()
    {
        foreach (var t in QTypes)
        {
            var (qmin, qmax) = QuantizeLinearKernels.Range(t);
            int zp = qmin + (qmax - qmin) / 3;
            for (int n = 0; n <= 70; n++)
            {
                var x = Tensor.From(HardValues(n, n * 31 + (int)t, 0.01f), n);
                var a = Unfused(x, 0.01f, Scalar(t, zp), 0.01f, Scalar(t, zp));
                var b = Fused(x, 0.01f, Scalar(t, zp), 0.01f, Scalar(t, zp));
                Assert.Equal(a.Bytes().ToArray(), b.Bytes().ToArray());
                // The one-element path alone (the tails of the vector paths use it).
                var p = FakeQuantParams.Of(Tensor.From(new[] { 0.01f }), Scalar(t, zp), Tensor.From(new[] { 0.01f }), Scalar(t, zp));
                var xs = x.ReadOnlySpan<float>();
                var ys = a.ReadOnlySpan<float>();
                for (int i = 0; i < n; i++)
                    Assert.Equal(BitConverter.SingleToInt32Bits(ys[i]), BitConverter.SingleToInt32Bits(FakeQuantRun.Scalar(xs[i], p)));
            }
            // A dequantizer with its own scale and zero point (legal, if unusual): still the two kernels' bits.
            var big = Tensor.From(HardValues(4099, 3, 0.02f), 4099);
            Assert.Equal(Unfused(big, 0.02f, Scalar(t, zp), 0.37f, Scalar(t, qmin + 1)).Bytes().ToArray(),
                Fused(big, 0.02f, Scalar(t, zp), 0.37f, Scalar(t, qmin + 1)).Bytes().ToArray());
        }
    }

    [Fact]
    public void Fused_pass_equals_the_separate_kernels_on_every_activation_of_a_real_rec_run()
    {
        var session = new InferenceSession(OnnxModelReader.Load(TestAssets.RecModel), new SessionOptions { Threads = 1 });
        var kept = new ValueCache();
        session.Run(new Dictionary<string, Tensor> { ["x"] = OcrSamples.Rec(OcrSamples.RecFiles[2]) }, new RunOptions { KeepValues = kept });
        int checkedValues = 0;
        foreach (var name in kept.Names.Order(StringComparer.Ordinal))
        {
            var x = kept[name];
            if (x.Type != ElementType.Float || x.Length == 0 || session.ConstantValue(name) is not null) continue;
            float absMax = x.ReadOnlySpan<float>().ToArray().Where(float.IsFinite).Select(MathF.Abs).DefaultIfEmpty(1f).Max();
            // Alternate the integer types; a scale a little below absmax/qmax also exercises saturation.
            var t = QTypes[checkedValues % QTypes.Length];
            var (qmin, qmax) = QuantizeLinearKernels.Range(t);
            float scale = MathF.Max(absMax, 1e-6f) / (qmax - qmin) * 1.7f;
            int zp = (qmin + qmax + 1) / 2;
            var a = Unfused(x, scale, Scalar(t, zp), scale, Scalar(t, zp));
            var b = Fused(x, scale, Scalar(t, zp), scale, Scalar(t, zp));
            Assert.True(a.Bytes().SequenceEqual(b.Bytes()), $"{name} ({t.OnnxName()}): the fused pass differs from Q then DQ");
            checkedValues++;
        }
        Assert.True(checkedValues > 300, $"only {checkedValues} activations checked");
    }

    /// <summary>
    /// x → Q → DQ pairs of each type (one feeding a second pair through a Mul), a per-axis pair, a pair whose integer
    /// value is also a graph output, and a Q read by two DQs: only the qualifying pairs fuse.
    /// </summary>
    private static OnnxModel PairsModel()
    {
        int[] shape = [2, 8, 9, 13];
        var g = new Graph { Name = "pairs" };
        g.Inputs.Add(new ValueInfo("x", ElementType.Float, shape.Select(d => Dim.Known(d)).ToArray()));
        int k = 0;
        void Pair(string input, string output, ElementType t, float scale, int zp, bool integerOut = false, int[]? axisScales = null)
        {
            string id = $"{k++}";
            if (axisScales is null)
            {
                g.Initializers[$"s{id}"] = Tensor.From(new[] { scale }).ToData($"s{id}");
                g.Initializers[$"z{id}"] = Scalar(t, zp).ToData($"z{id}");
            }
            else
            {
                g.Initializers[$"s{id}"] = Tensor.From(axisScales.Select(v => scale * v).ToArray(), axisScales.Length).ToData($"s{id}");
                g.Initializers[$"z{id}"] = Tensor.From(axisScales.Select(_ => (sbyte)zp).ToArray(), axisScales.Length).ToData($"z{id}");
            }
            g.Nodes.Add(new Node($"q{id}", "QuantizeLinear", "", [input, $"s{id}", $"z{id}"], [$"q{id}"]));
            g.Nodes.Add(new Node($"d{id}", "DequantizeLinear", "", [$"q{id}", $"s{id}", $"z{id}"], [output]));
            if (integerOut) g.Outputs.Add(new ValueInfo($"q{id}", t, null));
        }
        Pair("x", "y0", ElementType.Int8, 0.05f, 3);
        g.Initializers["two"] = Tensor.From(new[] { 2f }).ToData("two");
        g.Nodes.Add(new Node("mul", "Mul", "", ["y0", "two"], ["m"]));
        Pair("m", "y1", ElementType.UInt8, 0.1f, 128);
        Pair("x", "y2", ElementType.Int16, 0.001f, -7);
        Pair("x", "y3", ElementType.UInt16, 0.0005f, 30000);
        Pair("x", "y4", ElementType.Int8, 0.05f, 0, axisScales: [1, 2, 3, 4, 5, 6, 7, 8]); // per axis 1: not fused
        Pair("x", "y5", ElementType.Int8, 0.07f, -2, integerOut: true);                    // q is an output: not fused
        g.Nodes.Add(new Node("d6b", "DequantizeLinear", "", ["q6", "s6", "z6"], ["y6b"]));
        Pair("x", "y6", ElementType.Int8, 0.03f, 1);                                         // read by two DQs: not fused
        foreach (var y in new[] { "y0", "y1", "y2", "y3", "y4", "y5", "y6", "y6b" }) g.Outputs.Add(new ValueInfo(y, ElementType.Float, null));
        // d6b was added before q6 exists in the node list; the plan orders nodes topologically.
        var model = new OnnxModel(g);
        model.Opsets[""] = 13;
        return model;
    }

    private static Dictionary<string, Tensor> PairFeeds() =>
        new() { ["x"] = Tensor.From(HardValues(2 * 8 * 9 * 13, 11, 0.05f), [2, 8, 9, 13]) };

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Only_qualifying_pairs_fuse_and_the_fused_plan_gives_the_same_bits(int threads)
    {
        var model = PairsModel();
        var fused = new InferenceSession(model, new SessionOptions { Threads = threads });
        var separate = new InferenceSession(model, new SessionOptions { Threads = threads, FuseFakeQuant = false });
        var pairs = fused.FastPlanNodes.Where(n => n.OpType == "FakeQuantize").Select(n => n.Name).Order().ToList();
        Assert.Equal(["fakequant[q0,d0]", "fakequant[q1,d1]", "fakequant[q2,d2]", "fakequant[q3,d3]"], pairs);
        Assert.DoesNotContain(separate.FastPlanNodes, n => n.OpType == "FakeQuantize");
        var a = fused.Run(PairFeeds());
        var b = separate.Run(PairFeeds());
        Assert.Equal(b.Keys.Order(), a.Keys.Order());
        foreach (var (name, t) in b) Assert.True(t.Bytes().SequenceEqual(a[name].Bytes()), $"{name} differs");
    }

    private sealed class Recorder : IValueObserver
    {
        public List<string> Seen { get; } = [];
        public Tensor? OnValue(in ObservedValue value) { Seen.Add(value.Name); return null; }
    }

    [Fact]
    public void Observers_kept_values_and_downstream_reruns_see_the_separate_nodes()
    {
        var model = PairsModel();
        var session = new InferenceSession(model);
        var plain = session.Run(PairFeeds());

        // An observer sees every integer value; a kept-values run keeps them and gives the fused run's outputs.
        var recorder = new Recorder();
        session.Run(PairFeeds(), new RunOptions { Observer = recorder });
        Assert.Contains("q0", recorder.Seen);
        Assert.Contains("q3", recorder.Seen);
        var cache = new ValueCache();
        var kept = session.Run(PairFeeds(), new RunOptions { KeepValues = cache });
        Assert.Equal(ElementType.Int8, cache["q0"].Type);
        foreach (var (name, t) in plain) Assert.True(t.Bytes().SequenceEqual(kept[name].Bytes()), $"{name}: kept-values run differs");

        // A changed scale (what the layer-wise search tries) re-runs downstream and equals a fresh fused session
        // whose initializer has that scale.
        var newScale = Tensor.From(new[] { 0.08f });
        var partial = session.RunDownstream(cache, new Dictionary<string, Tensor> { ["s1"] = newScale });
        var changedModel = PairsModel();
        changedModel.Graph.Initializers["s1"] = newScale.ToData("s1");
        var fresh = new InferenceSession(changedModel).Run(PairFeeds());
        foreach (var (name, t) in fresh) Assert.True(t.Bytes().SequenceEqual(partial[name].Bytes()), $"{name}: downstream re-run differs");
        Assert.False(fresh["y1"].Bytes().SequenceEqual(plain["y1"].Bytes()), "the new scale should change y1");

        // A replaced integer value (an observer's) reaches the dequantizer, as without the fusion.
        var zeros = Tensor.From(new sbyte[cache["q0"].Length], cache["q0"].Shape.ToArray());
        var replaced = session.RunDownstream(cache, new Dictionary<string, Tensor> { ["q0"] = zeros });
        var expected = (0 - 3) * 0.05f;
        Assert.All(replaced["y0"].ReadOnlySpan<float>().ToArray(), v => Assert.Equal(expected, v));
    }
}
