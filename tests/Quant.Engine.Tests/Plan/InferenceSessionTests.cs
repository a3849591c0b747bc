using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Engine.Tests.Plan;

/// <summary>Observers and downstream-only re-runs on the real rec model.</summary>
public class InferenceSessionTests
{
    private static readonly Lazy<OnnxModel> RecModel = new(() => OnnxModelReader.Load(TestAssets.RecModel));

    private sealed class CloneAll : IValueObserver
    {
        public readonly Dictionary<string, Tensor> Seen = new(StringComparer.Ordinal);
        public readonly List<string> Order = [];
        public Tensor? OnValue(in ObservedValue v)
        {
            Seen[v.Name] = v.Value.Clone();
            Order.Add(v.Name);
            return null;
        }
    }

    private sealed class Replace(string name, Func<Tensor, Tensor> f) : IValueObserver
    {
        public Tensor? OnValue(in ObservedValue v) => v.Name == name ? f(v.Value) : null;
    }

    private static Dictionary<string, Tensor> Feeds(string file = "calib_0000.npy") => new() { ["x"] = OcrSamples.Rec(file) };

    [Fact]
    public void Observer_sees_every_planned_value_with_the_same_bits_as_a_kept_run()
    {
        var session = new InferenceSession(RecModel.Value);
        var observer = new CloneAll();
        session.Run(Feeds(), new RunOptions { Observer = observer });
        var kept = new ValueCache();
        session.Run(Feeds(), new RunOptions { KeepValues = kept });

        var expected = session.PlannedNodes.SelectMany(n => n.Outputs).Where(o => o.Length > 0).Prepend("x").ToList();
        Assert.Equal(expected, observer.Order);
        foreach (var name in expected)
            Assert.Equal(kept[name].Bytes().ToArray(), observer.Seen[name].Bytes().ToArray());
    }

    /// <summary>Clones whole values and concatenates the pieces of values inside fused chains (lane by lane).</summary>
    private sealed class Pieces(bool takesTiles, int lanes = 1) : ITileObserver
    {
        public readonly Dictionary<string, List<float>> Seen = new(StringComparer.Ordinal);
        public readonly HashSet<string> InPieces = new(StringComparer.Ordinal);
        private readonly Dictionary<(string Name, int Lane), List<float>> _lanePieces = [];
        public int HighestLane = -1;
        public bool TakesTiles => takesTiles;
        public int TileLanes => lanes;
        public Tensor? OnValue(in ObservedValue v)
        {
            Assert.False(Seen.ContainsKey(v.Name), $"{v.Name} seen twice");
            Seen[v.Name] = v.Value.Type == ElementType.Float ? [.. v.Value.ReadOnlySpan<float>()] : [];
            // A replacement a tile observer returns is ignored (an ordinary observer's would be used).
            return takesTiles && v.Value.Type == ElementType.Float ? Tensor.From(new float[v.Value.Length], v.Value.Shape) : null;
        }
        public void OnTile(string name, ReadOnlySpan<float> tile, int lane)
        {
            Assert.InRange(lane, 0, lanes - 1);
            var copy = tile.ToArray(); // lanes run at once: take the piece before waiting for the lock
            lock (_lanePieces)
            {
                if (!_lanePieces.TryGetValue((name, lane), out var l)) _lanePieces[(name, lane)] = l = [];
                InPieces.Add(name);
                HighestLane = Math.Max(HighestLane, lane);
                l.AddRange(copy);
            }
        }
        /// <summary>Each value that came in pieces: its lanes' pieces in lane order.</summary>
        public void Assemble()
        {
            foreach (var name in InPieces)
                Seen[name] = _lanePieces.Where(kv => kv.Key.Name == name).OrderBy(kv => kv.Key.Lane).SelectMany(kv => kv.Value).ToList();
        }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(2, 2)]
    public void A_tile_observer_keeps_the_fused_plan_and_sees_every_value_once_whole_or_in_pieces(int threads, int lanes)
    {
        var session = new InferenceSession(RecModel.Value, new SessionOptions { Threads = threads });
        Assert.Contains(session.FastPlanNodes, n => n.OpType == "FusedElementwise");
        var kept = new ValueCache();
        var plain = session.Run(Feeds(), new RunOptions { KeepValues = kept });
        var expected = session.PlannedNodes.SelectMany(n => n.Outputs).Where(o => o.Length > 0).Prepend("x").ToList();
        foreach (var takesTiles in new[] { true, false })
        {
            var observer = new Pieces(takesTiles, lanes);
            var outputs = session.Run(Feeds(), new RunOptions { Observer = observer });
            observer.Assemble();
            // Every planned value exactly once with the bits of the kept run; a tile observer's replacements are ignored.
            Assert.Equal(expected.Order(StringComparer.Ordinal), observer.Seen.Keys.Order(StringComparer.Ordinal));
            foreach (var name in expected.Where(n => kept[n].Type == ElementType.Float))
                Assert.True(kept[name].ReadOnlySpan<float>().SequenceEqual(observer.Seen[name].ToArray()), $"{name} differs (tiles {takesTiles})");
            foreach (var (name, t) in plain) Assert.Equal(t.Bytes().ToArray(), outputs[name].Bytes().ToArray());
            if (takesTiles) Assert.True(observer.InPieces.Count >= 28, $"{observer.InPieces.Count} values came in pieces");
            else Assert.Empty(observer.InPieces);
            // Lanes are used when both the observer and the session have them (rec's larger chains split in two).
            if (takesTiles) Assert.Equal(Math.Min(threads, lanes) - 1, observer.HighestLane);
        }
    }

    [Fact]
    public void Observed_intermediates_equal_the_same_values_made_graph_outputs()
    {
        // Arena reuse must not corrupt what the observer is shown: compare against a session where the
        // intermediates are graph outputs (so never recycled).
        var session = new InferenceSession(RecModel.Value);
        var observer = new CloneAll();
        session.Run(Feeds(), new RunOptions { Observer = observer });

        var exposed = OnnxModelReader.Load(TestAssets.RecModel);
        var picks = session.PlannedNodes.Where((_, i) => i % 37 == 5).Select(n => n.Outputs[0]).ToList();
        foreach (var p in picks) exposed.Graph.Outputs.Add(new ValueInfo(p, ElementType.Undefined, null));
        var direct = new InferenceSession(exposed).Run(Feeds());
        Assert.True(picks.Count >= 10);
        foreach (var p in picks)
            Assert.Equal(direct[p].Bytes().ToArray(), observer.Seen[p].Bytes().ToArray());
    }

    [Fact]
    public void Downstream_rerun_equals_a_full_run_with_the_value_replaced()
    {
        var session = new InferenceSession(RecModel.Value);
        var cache = new ValueCache();
        session.Run(Feeds(), new RunOptions { KeepValues = cache });

        // A value in the middle of the graph, perturbed as fake quantization would.
        var planned = session.PlannedNodes;
        var target = planned[planned.Count / 2].Outputs[0];
        Tensor Perturb(Tensor t)
        {
            var c = t.Clone();
            var s = c.Span<float>();
            for (int i = 0; i < s.Length; i++) s[i] = MathF.Round(s[i] * 16) / 16;
            return c;
        }
        var changed = Perturb(cache[target]);

        var full = session.Run(Feeds(), new RunOptions { Observer = new Replace(target, Perturb) });
        var partial = session.RunDownstream(cache, new Dictionary<string, Tensor> { [target] = changed });

        Assert.True(session.LastRunNodeCount < planned.Count / 2 + 1, $"re-ran {session.LastRunNodeCount} of {planned.Count} nodes");
        foreach (var (name, t) in full)
            Assert.Equal(t.Bytes().ToArray(), partial[name].Bytes().ToArray());
        // And the perturbation did change the output, so the comparison above means something.
        var baseline = session.Run(Feeds());
        Assert.NotEqual(baseline.Values.Single().Bytes().ToArray(), partial.Values.Single().Bytes().ToArray());
    }

    [Theory]
    [InlineData("det")]
    [InlineData("rec")]
    [InlineData("cls")]
    public void Fused_elementwise_chains_give_the_same_bits_as_unfused_nodes(string which)
    {
        var (path, x) = which switch
        {
            "det" => (TestAssets.DetModel, OcrSamples.Det(OcrSamples.DetFiles[1], 320, 640)),
            "rec" => (TestAssets.RecModel, OcrSamples.Rec(OcrSamples.RecFiles[1])),
            _ => (TestAssets.ClsModel, OcrSamples.Cls(OcrSamples.ClsFiles[1])),
        };
        var model = OnnxModelReader.Load(path);
        var fused = new InferenceSession(model);
        var plain = new InferenceSession(model, new SessionOptions { FuseElementwise = false });
        int chains = fused.FastPlanNodes.Count(n => n.OpType == "FusedElementwise");
        Assert.True(chains >= 10, $"only {chains} fused chains in {which}");
        Assert.True(fused.FastPlanNodes.Count < fused.PlannedNodes.Count);
        var feeds = new Dictionary<string, Tensor> { ["x"] = x };
        var a = fused.Run(feeds);
        var b = plain.Run(feeds);
        foreach (var (name, t) in b) Assert.Equal(t.Bytes().ToArray(), a[name].Bytes().ToArray());
    }

    [Fact]
    public void Results_do_not_depend_on_thread_count_or_repetition()
    {
        var one = new InferenceSession(RecModel.Value, new SessionOptions { Threads = 1 });
        var two = new InferenceSession(RecModel.Value, new SessionOptions { Threads = 2 });
        var a = one.Run(Feeds()).Values.Single().Bytes().ToArray();
        var b = two.Run(Feeds()).Values.Single().Bytes().ToArray();
        var c = two.Run(Feeds()).Values.Single().Bytes().ToArray();
        Assert.Equal(a, b);
        Assert.Equal(b, c);
    }
}
