using Quant.Core.Conversion;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Tests.Convert;

/// <summary>
/// Spec §14 "node by node": every <c>quant.build</c> node of the quantized model is run on the qat run's own
/// integers (each node alone, its inputs taken from the engine's qat run) and its output compared with the integers
/// the qat run's QuantizeLinear wrote under the same tensor name. Each element must be equal or 1 LSB apart.
/// </summary>
internal static class NodeLockstep
{
    public sealed record Result(long Elements, long Flips, int MaxDifference, string WorstNode, double WorstNodeShare);

    public static Result Run(string qatPath, string quantizedPath, IReadOnlyDictionary<string, Tensor> feeds)
    {
        var quantized = OnnxModelReader.Load(quantizedPath);
        var qatValues = new ValueCache();
        new InferenceSession(OnnxModelReader.Load(qatPath)).Run(feeds, new RunOptions { KeepValues = qatValues });
        long elements = 0, flips = 0;
        int max = 0;
        string worst = "";
        double worstShare = 0;
        // Float outputs (spec §4.4, to = float; float tables) are more exact than qat's float32 sum, not equal to it: the end-to-end
        // cosine covers them.
        // Values the convert introduced (e.g. a QRequantize bringing a Concat input to the Concat's scale) have no qat
        // counterpart: they are computed here from the qat run's values, and their consumers read them.
        var introduced = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        Tensor Value(string name) => qatValues.TryGet(name, out var v) ? v : introduced[name];
        foreach (var node in quantized.Graph.Nodes)
        {
            // A QTable with a float table (a folded chain ending in a DequantizeLinear) writes float too.
            bool compared = node.Domain == LoweringEmitter.Domain && node.GetInt("to", 3) != (long)ElementType.Float
                && qatValues.TryGet(node.Outputs[0], out var qatValue) && qatValue.Type is ElementType.Int8 or ElementType.Int16;
            if (!compared && node.Outputs.All(o => o.Length == 0 || qatValues.TryGet(o, out _))) continue;
            var g = new Graph();
            foreach (var i in node.Inputs.Where(i => i.Length > 0).Distinct())
                if (quantized.Graph.Initializers.TryGetValue(i, out var init)) g.Initializers[i] = init;
                else g.Inputs.Add(new ValueInfo(i, Value(i).Type, null));
            g.Nodes.Add(node);
            foreach (var o in node.Outputs.Where(o => o.Length > 0)) g.Outputs.Add(new ValueInfo(o, qatValues.TryGet(o, out var q) ? q.Type : ElementType.Undefined, null));
            var single = new OnnxModel(g);
            foreach (var (k, v) in quantized.Opsets) single.Opsets[k] = v;
            var results = new InferenceSession(single).Run(g.Inputs.ToDictionary(i => i.Name, i => Value(i.Name)));
            if (!compared)
            {
                foreach (var (name, value) in results) introduced[name] = value;
                continue;
            }
            var expected = qatValues[node.Outputs[0]];
            var actual = results[node.Outputs[0]];
            Assert.Equal(expected.Type, actual.Type);
            var e = Ints(expected);
            var a = Ints(actual);
            int nodeFlips = 0;
            for (int i = 0; i < e.Length; i++)
            {
                int d = Math.Abs(e[i] - a[i]);
                if (d > 0) nodeFlips++;
                max = Math.Max(max, d);
            }
            elements += e.Length;
            flips += nodeFlips;
            double share = (double)nodeFlips / Math.Max(1, e.Length);
            if (share > worstShare) (worst, worstShare) = (node.Name, share);
        }
        return new Result(elements, flips, max, worst, worstShare);
    }

    private static int[] Ints(Tensor t) => t.Type == ElementType.Int8
        ? t.ReadOnlySpan<sbyte>().ToArray().Select(v => (int)v).ToArray()
        : t.ReadOnlySpan<short>().ToArray().Select(v => (int)v).ToArray();
}
