using Quant.Core.Conversion;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Analysis;

/// <summary>
/// Spec §14 "node by node": every integer node of the quantized model runs alone on the qat run's own integers (its
/// inputs taken from the qat run) and its output is compared with the integers the qat run's QuantizeLinear wrote under
/// the same tensor name. The contract allows equal or 1 LSB apart (a requantization tie the two roundings break
/// differently); how often that happens is the model's own flip share, which the quantized_vs_qat floor injects.
/// </summary>
public static class RequantizationLockstep
{
    public sealed record Result(long Elements, long Flips, int MaxDifference, string WorstNode, double WorstNodeShare,
        IReadOnlyList<string> TypeMismatches)
    {
        /// <summary>Share of compared integers that differ from the qat run's.</summary>
        public double FlipShare => Elements == 0 ? 0 : (double)Flips / Elements;
    }

    public static Result Run(InferenceSession qatSession, OnnxModel quantized, IReadOnlyDictionary<string, Tensor> feeds)
    {
        var qatValues = new ValueCache();
        qatSession.Run(feeds, new RunOptions { KeepValues = qatValues });
        long elements = 0, flips = 0;
        int max = 0;
        string worst = "";
        double worstShare = 0;
        var mismatches = new List<string>();
        // Float outputs (spec §4.4, to = float; float tables) are more exact than qat's float32 sum, not equal to it: the
        // end-to-end cosine covers them. Values the convert introduced (e.g. a QRequantize bringing a Concat input to the
        // Concat's scale) have no qat counterpart: they are computed here from the qat run's values for their consumers.
        var introduced = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        Tensor Value(string name) => qatValues.TryGet(name, out var v) ? v : introduced[name];
        bool Available(string name) => name.Length == 0 || quantized.Graph.Initializers.ContainsKey(name) || qatValues.TryGet(name, out _) || introduced.ContainsKey(name);
        foreach (var node in quantized.Graph.Nodes)
        {
            // A QTable with a float table (a folded chain ending in a DequantizeLinear) writes float too.
            bool compared = node.Domain == LoweringEmitter.Domain && node.GetInt("to", 3) != (long)ElementType.Float
                && qatValues.TryGet(node.Outputs[0], out var qatValue) && qatValue.Type is ElementType.Int8 or ElementType.Int16;
            if (!compared && node.Outputs.All(o => o.Length == 0 || qatValues.TryGet(o, out _))) continue;
            // An input neither run produced (downstream of a node that could not run alone): nothing to compare it from.
            if (!node.Inputs.All(Available)) continue;
            var results = RunAlone(quantized, node, qatValues, Value);
            if (!compared)
            {
                foreach (var (name, value) in results) introduced[name] = value;
                continue;
            }
            var expected = qatValues[node.Outputs[0]];
            var actual = results[node.Outputs[0]];
            if (expected.Type != actual.Type)
            {
                mismatches.Add($"{node.Name}: {actual.Type} where qat has {expected.Type}");
                continue;
            }
            int nodeFlips = 0;
            if (expected.Type == ElementType.Int8) Count(expected.ReadOnlySpan<sbyte>(), actual.ReadOnlySpan<sbyte>(), ref nodeFlips, ref max);
            else Count(expected.ReadOnlySpan<short>(), actual.ReadOnlySpan<short>(), ref nodeFlips, ref max);
            elements += expected.Length;
            flips += nodeFlips;
            double share = (double)nodeFlips / Math.Max(1, expected.Length);
            if (share > worstShare) (worst, worstShare) = (node.Name, share);
        }
        return new Result(elements, flips, max, worst, worstShare, mismatches);
    }

    private static IReadOnlyDictionary<string, Tensor> RunAlone(OnnxModel quantized, Node node, ValueCache qatValues, Func<string, Tensor> value)
    {
        var g = new Graph();
        foreach (var i in node.Inputs.Where(i => i.Length > 0).Distinct())
            if (quantized.Graph.Initializers.TryGetValue(i, out var init)) g.Initializers[i] = init;
            else g.Inputs.Add(new ValueInfo(i, value(i).Type, null));
        g.Nodes.Add(node);
        foreach (var o in node.Outputs.Where(o => o.Length > 0))
            g.Outputs.Add(new ValueInfo(o, qatValues.TryGet(o, out var q) ? q.Type : ElementType.Undefined, null));
        var single = new OnnxModel(g);
        foreach (var (k, v) in quantized.Opsets) single.Opsets[k] = v;
        return new InferenceSession(single, new SessionOptions { Threads = 1 }).Run(g.Inputs.ToDictionary(i => i.Name, i => value(i.Name)));
    }

    private static void Count<T>(ReadOnlySpan<T> expected, ReadOnlySpan<T> actual, ref int flips, ref int max)
        where T : struct, System.Numerics.IBinaryInteger<T>
    {
        for (int i = 0; i < expected.Length; i++)
        {
            int d = Math.Abs(int.CreateTruncating(expected[i]) - int.CreateTruncating(actual[i]));
            if (d == 0) continue;
            flips++;
            if (d > max) max = d;
        }
    }
}
