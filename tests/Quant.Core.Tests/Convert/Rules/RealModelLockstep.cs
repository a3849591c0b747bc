using Quant.Core.Conversion;
using Quant.Core.Precision;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Tests.Convert.Rules;

/// <summary>What the node-by-node comparison of one op type found.</summary>
internal sealed record LockstepTally(string OpType, int Nodes, long Elements, long Differing, long MaxDiff)
{
    public double Share => Elements == 0 ? 0 : (double)Differing / Elements;
    public override string ToString() => $"{OpType}: {Nodes} nodes, {Elements} elements, max |diff| {MaxDiff}, 1-LSB share {Share:E2}";
}

/// <summary>
/// Spec §14's node-by-node check on a real qat model: the qat model runs once in the engine keeping every value;
/// each node that one of the non-GEMM rules lowers (every data input a DequantizeLinear of integers, QuantizeLinear
/// readers) is lowered on its own, fed the qat run's own integers, and its outputs compared with the integers the
/// qat run's QuantizeLinear readers produced.
/// </summary>
internal static class RealModelLockstep
{
    private static readonly IIntegerRule[] Rules =
    [
        new AddSubRule(), new MulRule(), new DivRule(), new ClipReluRule(), new TableRule(), new SoftmaxRule(),
        new AveragingRule(), new ResizeRule(), new DataMovementRule(), new ConcatRule(),
    ];

    public static List<LockstepTally> Run(OnnxModel qat, IReadOnlyDictionary<string, Tensor> feeds)
    {
        var g = qat.Graph;
        var values = new ValueCache();
        new InferenceSession(qat, new SessionOptions { Threads = 2 }).Run(feeds, new RunOptions { KeepValues = values });
        var producers = g.Producers();
        var consumers = g.Consumers();
        var tallies = new Dictionary<string, LockstepTally>(StringComparer.Ordinal);
        foreach (var node in g.Nodes)
        {
            var rule = Rules.FirstOrDefault(r => r.OpTypes.Contains(node.OpType));
            if (rule is null) continue;
            var inputs = new List<IntegerInput?>();
            bool integer = true;
            for (int i = 0; i < node.Inputs.Count && integer; i++)
            {
                if (node.Inputs[i].Length == 0 || !TargetRules.IsDataInput(node.OpType, i)) { inputs.Add(null); continue; }
                if (!producers.TryGetValue(node.Inputs[i], out var dq) || dq.OpType != "DequantizeLinear") { integer = false; break; }
                inputs.Add(new IntegerInput(dq.Inputs[0], Format(g, dq)));
            }
            var readers = consumers.GetValueOrDefault(node.Outputs[0]) ?? [];
            var outputs = readers.Where(q => q.OpType == "QuantizeLinear").Select(q => new IntegerOutput(q.Outputs[0], Format(g, q))).ToList();
            if (!integer || outputs.Count == 0) continue;

            var lowered = new Graph { Name = "lowered_" + node.Name };
            var runFeeds = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var name in inputs.Select((x, i) => x?.Tensor ?? node.InputOrNull(i)).OfType<string>().Distinct())
            {
                if (g.Initializers.TryGetValue(name, out var c)) { lowered.Initializers[name] = c; continue; }
                runFeeds[name] = values[name];
                lowered.Inputs.Add(new ValueInfo(name, values[name].Type, null));
            }
            foreach (var y in outputs) lowered.Outputs.Add(new ValueInfo(y.Tensor, y.Format.Type, null));
            var request = new LoweringRequest(node, inputs, outputs, name => g.Initializers.TryGetValue(name, out var t) ? t : null, new GraphEmitter(lowered));
            if (rule.Lower(request) is not null) continue;
            var m = new OnnxModel(lowered) { IrVersion = qat.IrVersion };
            m.Opsets[""] = qat.OpsetFor("");
            m.Opsets[LoweringEmitter.Domain] = 1;
            var ours = new InferenceSession(m, new SessionOptions { Threads = 2 }).Run(runFeeds);
            foreach (var y in outputs)
            {
                var (max, share, count) = RuleHarness.Compare(values[y.Tensor], ours[y.Tensor]);
                var t = tallies.GetValueOrDefault(node.OpType) ?? new LockstepTally(node.OpType, 0, 0, 0, 0);
                tallies[node.OpType] = t with
                {
                    Nodes = t.Nodes + 1, Elements = t.Elements + count, Differing = t.Differing + (long)Math.Round(share * count), MaxDiff = Math.Max(t.MaxDiff, max),
                };
            }
        }
        return [.. tallies.Values.OrderBy(t => t.OpType, StringComparer.Ordinal)];
    }

    /// <summary>The (type, scale, zero point) of a per-tensor QuantizeLinear/DequantizeLinear from its initializers.</summary>
    private static IntFormat Format(Graph g, Node qdq)
    {
        var scale = g.Initializers[qdq.Inputs[1]].As<float>()[0];
        var zp = g.Initializers[qdq.Inputs[2]];
        int z = zp.Type == ElementType.Int8 ? zp.As<sbyte>()[0] : zp.As<short>()[0];
        return new IntFormat(zp.Type, scale, z);
    }
}
