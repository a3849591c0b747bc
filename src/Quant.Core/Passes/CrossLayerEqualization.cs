using System.Runtime.InteropServices;
using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>
/// Cross-layer equalization (Nagel et al., "Data-Free Quantization", 2019; AIMET's CLE): for a convolution L1 whose
/// output reaches a convolution L2 only through a positively homogeneous activation (Relu, LeakyRelu, PRelu:
/// f(s·x) = s·f(x) for s &gt; 0) or directly, output channel i of L1 is divided by s_i and input channel i of L2
/// multiplied by s_i, with s_i = √(r1_i / r2_i) where r1_i and r2_i are the largest |weight| of L1's output channel i
/// and of L2's input channel i. Afterwards both equal √(r1_i·r2_i): per-tensor weight ranges stop being set by one
/// outlier channel. The model computes the same function (scales in double, weights rounded once). Chains
/// (conv → depthwise → conv) are iterated until the scales settle. Pairs through other activations (HardSwish,
/// Clip, Sigmoid, ...) are listed with the reason they do not qualify.
/// </summary>
internal static class CrossLayerEqualization
{
    private static readonly HashSet<string> Homogeneous = new(StringComparer.Ordinal) { "Relu", "LeakyRelu", "PRelu" };
    private static readonly HashSet<string> Activations = new(StringComparer.Ordinal)
    {
        "HardSwish", "HardSigmoid", "Clip", "Sigmoid", "Tanh", "Elu", "Selu", "Gelu", "Softplus", "Mish", "Swish",
    };
    private const int MaxIterations = 50;
    /// <summary>A channel whose range is below this fraction of its layer's largest is treated as dead.</summary>
    private const double DeadChannel = 1e-6;

    private sealed class Layer(Node node, double[] w, double[]? b, long[] dims)
    {
        public Node Node { get; } = node;
        public double[] W { get; } = w;
        public double[]? B { get; } = b;
        public long[] Dims { get; } = dims;
        public int Group => (int)Node.GetInt("group", 1);
        public bool Transposed => Node.OpType == "ConvTranspose";
        public int Per => (int)(W.Length / (Dims[0] * Dims[1]));
        public int OutputChannels => Transposed ? (int)(Dims[1] * Group) : (int)Dims[0];
        public int InputChannels => Transposed ? (int)Dims[0] : (int)(Dims[1] * Group);

        /// <summary>Index ranges of the weights feeding output channel <paramref name="c"/>.</summary>
        public IEnumerable<(int Start, int Length)> Output(int c)
        {
            int per = Per;
            if (!Transposed) { int row = W.Length / (int)Dims[0]; yield return (c * row, row); yield break; }
            int coutPerGroup = (int)Dims[1], cinPerGroup = (int)Dims[0] / Group, g = c / coutPerGroup, j = c % coutPerGroup;
            for (int ci = g * cinPerGroup; ci < (g + 1) * cinPerGroup; ci++) yield return ((ci * coutPerGroup + j) * per, per);
        }

        /// <summary>Index ranges of the weights reading input channel <paramref name="c"/>.</summary>
        public IEnumerable<(int Start, int Length)> Input(int c)
        {
            int per = Per;
            if (Transposed) { int row = W.Length / (int)Dims[0]; yield return (c * row, row); yield break; }
            int cinPerGroup = (int)Dims[1], coutPerGroup = (int)Dims[0] / Group, g = c / cinPerGroup, local = c % cinPerGroup;
            for (int o = g * coutPerGroup; o < (g + 1) * coutPerGroup; o++) yield return ((o * cinPerGroup + local) * per, per);
        }

        public double Range(IEnumerable<(int Start, int Length)> at)
        {
            double r = 0;
            foreach (var (start, len) in at) for (int k = start; k < start + len; k++) r = Math.Max(r, Math.Abs(W[k]));
            return r;
        }

        public void Scale(IEnumerable<(int Start, int Length)> at, double f)
        {
            foreach (var (start, len) in at) for (int k = start; k < start + len; k++) W[k] *= f;
        }
    }

    /// <summary>Largest ratio between a channel's range in the first layer and in the second (dead channels skipped).</summary>
    private static double Imbalance(Layer l1, Layer l2)
    {
        double worst = 1, max1 = l1.Range([(0, l1.W.Length)]), max2 = l2.Range([(0, l2.W.Length)]);
        for (int c = 0; c < l1.OutputChannels; c++)
        {
            double r1 = l1.Range(l1.Output(c)), r2 = l2.Range(l2.Input(c));
            if (r1 > DeadChannel * max1 && r2 > DeadChannel * max2) worst = Math.Max(worst, Math.Max(r1 / r2, r2 / r1));
        }
        return worst;
    }

    public static List<EqualizationRecord> Run(PassState s)
    {
        var records = new List<EqualizationRecord>();
        var pairs = new List<(Layer First, Node? Activation, Layer Second)>();
        var layers = new Dictionary<Node, Layer>(ReferenceEqualityComparer.Instance);
        Layer Get(Node n) => layers.TryGetValue(n, out var l) ? l : layers[n] = Load(s, n);

        foreach (var first in s.Graph.Nodes)
        {
            if (!first.IsDefaultDomain || first.OpType is not ("Conv" or "ConvTranspose")) continue;
            var (act, second, why) = Follow(s, first);
            if (second is null) continue;
            why ??= CannotScale(s, first, output: true) ?? CannotScale(s, second, output: false);
            if (why is null && Get(first).OutputChannels != Get(second).InputChannels)
                why = $"{first.OpType} '{first.Name}' has {Get(first).OutputChannels} output channels but {second.OpType} '{second.Name}' reads {Get(second).InputChannels}";
            if (why is not null) { records.Add(Record(first, act, second, why)); continue; }
            pairs.Add((Get(first), act, Get(second)));
        }

        var before = pairs.Select(p => Imbalance(p.First, p.Second)).ToList();
        for (int iteration = 0; iteration < MaxIterations; iteration++)
        {
            double largest = 0;
            foreach (var (l1, _, l2) in pairs)
            {
                double max1 = l1.Range([(0, l1.W.Length)]), max2 = l2.Range([(0, l2.W.Length)]);
                for (int c = 0; c < l1.OutputChannels; c++)
                {
                    double r1 = l1.Range(l1.Output(c)), r2 = l2.Range(l2.Input(c));
                    // A dead channel (PaddleOCR has some with weights ~1e-38): nothing to balance, and a scale of
                    // ~1e19 would multiply its bias, and so its activation, by as much.
                    if (r1 <= DeadChannel * max1 || r2 <= DeadChannel * max2) continue;
                    double scale = Math.Sqrt(r1 / r2);
                    largest = Math.Max(largest, Math.Abs(Math.Log(scale)));
                    l1.Scale(l1.Output(c), 1 / scale);
                    if (l1.B is not null) l1.B[c] /= scale;
                    l2.Scale(l2.Input(c), scale);
                }
            }
            if (largest < 1e-4) break;
        }
        foreach (var l in layers.Values.Where(l => pairs.Any(p => p.First == l || p.Second == l))) Store(s, l);
        for (int i = 0; i < pairs.Count; i++)
        {
            var (l1, act, l2) = pairs[i];
            records.Add(Record(l1.Node, act, l2.Node, null) with { ImbalanceBefore = before[i], ImbalanceAfter = Imbalance(l1, l2) });
        }
        return records;
    }

    private static EqualizationRecord Record(Node first, Node? act, Node second, string? why) =>
        new(first.Name, act?.OpType ?? "", second.Name, why is null, why ?? "output channels of the first rescaled against input channels of the second");

    /// <summary>The activation and the convolution reading the first's output (null when none does), and why they do not qualify.</summary>
    private static (Node? Activation, Node? Second, string? Why) Follow(PassState s, Node first)
    {
        var y = first.Outputs[0];
        if (s.IsGraphOutput(y) || s.ConsumersOf(y) is not [var next]) return (null, null, null);
        Node? act = null;
        if (next.IsDefaultDomain && (Homogeneous.Contains(next.OpType) || Activations.Contains(next.OpType)))
        {
            act = next;
            if (s.IsGraphOutput(act.Outputs[0]) || s.ConsumersOf(act.Outputs[0]) is not [var after]) return (act, null, null);
            next = after;
        }
        if (!next.IsDefaultDomain || next.OpType is not ("Conv" or "ConvTranspose") || next.Inputs[0] != (act?.Outputs[0] ?? y)) return (act, null, null);
        if (act is not null && !Homogeneous.Contains(act.OpType))
            return (act, next, $"{act.OpType} '{act.Name}' between them is not positively homogeneous (f(s·x) ≠ s·f(x)), so scaling through it would change the function");
        // PRelu(x / s) = PRelu(x) / s for s > 0 whatever its slopes.
        return (act, next, null);
    }

    private static string? CannotScale(PassState s, Node n, bool output)
    {
        var w = n.InputOrNull(1) is { } wn ? s.Constant(wn) : null;
        if (w is not { Type: ElementType.Float } || w.Dims.Length < 3) return $"the weights of {n.OpType} '{n.Name}' are not a constant float tensor";
        if (output && n.InputOrNull(2) is { } b && s.Constant(b) is not { Type: ElementType.Float })
            return $"the bias of {n.OpType} '{n.Name}' is not a constant float tensor";
        long group = n.GetInt("group", 1);
        if (group < 1 || w.Dims[0] % group != 0) return $"{n.OpType} '{n.Name}' has a group count that does not divide its channels";
        return null;
    }

    private static Layer Load(PassState s, Node n)
    {
        var w = s.Constant(n.Inputs[1])!;
        var b = n.InputOrNull(2) is { } bn ? s.Constant(bn)!.As<float>().ToArray().Select(v => (double)v).ToArray() : null;
        return new Layer(n, w.As<float>().ToArray().Select(v => (double)v).ToArray(), b, w.Dims);
    }

    private static void Store(PassState s, Layer l)
    {
        var wName = l.Node.Inputs[1];
        var w = l.W.Select(v => (float)v).ToArray();
        l.Node.Inputs[1] = ChannelAffine.Store(s, wName, l.Node, new TensorData(wName, ElementType.Float, l.Dims, MemoryMarshal.AsBytes(w.AsSpan()).ToArray()));
        if (l.B is null) return;
        var bName = l.Node.Inputs[2];
        l.Node.Inputs[2] = ChannelAffine.Store(s, bName, l.Node, TensorData.FromFloats(bName, [l.B.Length], l.B.Select(v => (float)v).ToArray()));
    }
}
