using Quant.Core.Calibration;
using Quant.Core.Config;
using Quant.Core.Conversion;
using Quant.Core.Diagnostics;
using Quant.Onnx;

namespace Quant.Core.Export;

/// <summary>
/// A model given to export that already carries QuantizeLinear/DequantizeLinear — a PyTorch QAT export or ONNX Runtime's
/// <c>quantize_static</c> in QDQ format (HMCT's <c>adapt_qat_model</c>). Its quantization is read and validated the way
/// convert reads a QDQ model (<see cref="QdqGraph"/>: QOperator ops, per-channel activations, run-time scales and
/// unsupported types are errors there), then taken out of the graph: what remains is the float model export prepares,
/// plans and calibrates as usual, and the scales the model carried are kept for the tensors and weights it quantized
/// (<see cref="QatInputPlan"/> makes the precision plan agree with them).
/// <list type="bullet">
/// <item>Activation pairs T → Q → DQ: the readers read T again; T keeps the pair's scale and zero point (uint8 maps to
/// int8 with zero point z − 128, the same real values). A pair on a graph output gives T the output's name.</item>
/// <item>Float weights read through Q → DQ (PyTorch): the readers read the float weight; it keeps the Q's scales.
/// Integer weights read through DQ (ONNX Runtime): they become float initializers holding exactly scale × q and keep
/// that scale, so export writes the same integers back. int32 biases become float biases (convert re-derives them at
/// input scale × weight scale, which is how they were made).</item>
/// <item>A Conv/ConvTranspose/Gemm/MatMul/Add output quantized with zero point at the bottom of the range is a ReLU that
/// ONNX Runtime folded into the zero point: a Relu is put back, so the float model is the float model again (the
/// quantized values do not change: the zero point clamped the same way).</item>
/// </list>
/// </summary>
public sealed class QatInput
{
    private static readonly HashSet<string> ReluFoldedInto = new(StringComparer.Ordinal) { "Conv", "ConvTranspose", "Gemm", "MatMul", "Add" };

    private QatInput(OnnxModel floatModel) => FloatModel = floatModel;

    /// <summary>The model without its Q/DQ nodes: what export prepares and calibrates.</summary>
    public OnnxModel FloatModel { get; }

    /// <summary>The model's own parameters per activation tensor of <see cref="FloatModel"/> (signed int8/int16).</summary>
    public Dictionary<string, QuantParams> Activations { get; } = new(StringComparer.Ordinal);

    /// <summary>The model's own parameters per weight initializer of <see cref="FloatModel"/>.</summary>
    public Dictionary<string, QuantParams> Weights { get; } = new(StringComparer.Ordinal);

    /// <summary>How many QuantizeLinear / DequantizeLinear nodes the model had.</summary>
    public int QuantizeNodes { get; private set; }
    public int DequantizeNodes { get; private set; }

    /// <summary>Biases the model stored as int32 (now float).</summary>
    public List<string> IntegerBiases { get; } = [];

    /// <summary>Relu nodes put back where the model's zero point stood for one (named by the node they follow).</summary>
    public List<string> RestoredRelus { get; } = [];

    /// <summary>Findings about the model itself (not about the config), as warnings.</summary>
    public List<string> ModelWarnings { get; } = [];

    /// <summary>True when <paramref name="model"/> holds QuantizeLinear or DequantizeLinear nodes.</summary>
    public static bool Carries(OnnxModel model) => model.Graph.Nodes.Any(n => QdqGraph.IsQ(n) || QdqGraph.IsDq(n));

    /// <summary>
    /// Reads the QDQ model at <paramref name="modelPath"/>; null when it has no Q/DQ nodes (an ordinary float model).
    /// </summary>
    /// <exception cref="QuantException">QB7001-7008 as convert reports them (QOperator ops, per-channel activations, run-time
    /// scales, unsupported types, mismatched pairs); QB4021 for what export cannot keep (asymmetric weights, integer graph
    /// inputs or outputs).</exception>
    public static QatInput? Read(OnnxModel loaded, string modelPath)
    {
        if (!Carries(loaded)) return null;
        // QdqGraph rewrites the graph it reads (unsigned → signed, folded weights): work on a copy, not the caller's model.
        var model = OnnxModelReader.Load(modelPath);
        var qdq = new QdqGraph(model, modelPath);
        var input = new QatInput(model);
        input.Strip(qdq, modelPath);
        return input;
    }

    private static QuantException Unsupported(string file, string message) =>
        new(ErrorCode.ExportQatInputUnsupported, SourcePosition.InFile(file), message);

    private void Strip(QdqGraph qdq, string file)
    {
        var g = FloatModel.Graph;
        var producers = g.Producers();
        var graphOutputs = new HashSet<string>(g.Outputs.Select(o => o.Name), StringComparer.Ordinal);
        QuantizeNodes = g.Nodes.Count(QdqGraph.IsQ);
        DequantizeNodes = g.Nodes.Count(QdqGraph.IsDq);
        var replace = new Dictionary<string, string>(StringComparer.Ordinal); // DQ output → what its readers read now
        var renames = new Dictionary<string, string>(StringComparer.Ordinal); // float tensor → graph output name it takes
        var activationSource = new Dictionary<string, Node>(StringComparer.Ordinal);

        foreach (var q in g.Nodes.Where(QdqGraph.IsQ))
            if (graphOutputs.Contains(q.Outputs[0]))
                throw Unsupported(file, $"{q.Describe()} writes the graph output '{q.Outputs[0]}' as integers; export writes float outputs: end the model with its DequantizeLinear");

        foreach (var d in g.Nodes.Where(QdqGraph.IsDq))
        {
            var edge = qdq.IntegerOf(d.Outputs[0])
                ?? throw Unsupported(file, $"{d.Describe()} dequantizes '{d.Inputs[0]}', an integer graph input; export calibrates float inputs: give the model a float input with its own QuantizeLinear");
            var p = qdq.Params(d);
            producers.TryGetValue(d.Inputs[0], out var q);
            if (q is not null && !QdqGraph.IsQ(q)) q = null;
            if (edge.IsConstant)
            {
                if (p.Type == ElementType.Int32)
                {
                    var bias = qdq.Constant(d.Inputs[0])!;
                    g.Initializers[d.Outputs[0]] = TensorData.FromFloats(d.Outputs[0], bias.Dims, Dequantize(bias, p));
                    replace[d.Outputs[0]] = d.Outputs[0];
                    IntegerBiases.Add(d.Outputs[0]);
                    continue;
                }
                if (p.ZeroPoints.Any(z => z != 0))
                    throw Unsupported(file, $"the weight '{edge.FileTensor}' read through {d.Describe()} is quantized asymmetrically (zero points {string.Join(", ", p.ZeroPoints.Distinct().Take(6))}); " +
                        "the integer contract has symmetric weights: re-quantize it with symmetric int8 weights (ONNX Runtime: weight_type=QInt8) or export from the float model");
                string weight;
                if (q is not null && qdq.Constant(q.Inputs[0]) is { Type: ElementType.Float })
                {
                    // PyTorch: the float weight itself; export quantizes it with the model's scales to the same integers.
                    weight = q.Inputs[0];
                }
                else
                {
                    // ONNX Runtime names the integer copy NAME_quantized: the float weight gets NAME back when it is free.
                    weight = edge.FileTensor.EndsWith("_quantized", StringComparison.Ordinal) && !Taken(g, edge.FileTensor[..^"_quantized".Length])
                        ? edge.FileTensor[..^"_quantized".Length] : d.Outputs[0];
                    g.Initializers[weight] = TensorData.FromFloats(weight, qdq.Constant(edge.Tensor)!.Dims, Dequantize(qdq.Constant(edge.Tensor)!, p));
                }
                replace[d.Outputs[0]] = weight;
                Weights.TryAdd(weight, ToParams(p));
                continue;
            }
            if (q is null)
                throw Unsupported(file, $"{d.Describe()} dequantizes the integer graph input '{d.Inputs[0]}'; export calibrates float inputs: give the model a float input with its own QuantizeLinear");
            var tensor = q.Inputs[0];
            replace[d.Outputs[0]] = tensor;
            if (graphOutputs.Contains(d.Outputs[0])) renames[tensor] = d.Outputs[0];
            var qp = ToParams(p);
            if (Activations.TryGetValue(tensor, out var seen))
            {
                if (!SameParams(seen, qp))
                    ModelWarnings.Add($"'{tensor}' is quantized twice with different parameters ({activationSource[tensor].Describe()} and {q.Describe()}); kept the first");
                continue;
            }
            Activations[tensor] = qp;
            activationSource[tensor] = q;
        }

        g.Nodes.RemoveAll(n => QdqGraph.IsQ(n) || QdqGraph.IsDq(n));
        foreach (var n in g.Nodes)
            for (int i = 0; i < n.Inputs.Count; i++)
                if (replace.TryGetValue(n.Inputs[i], out var r)) n.Inputs[i] = r;
        Rename(renames);
        RestoreRelus();
        RemoveUnused();
    }

    /// <summary>A tensor whose Q/DQ pair wrote a graph output takes the output's name (producer and readers alike).</summary>
    private void Rename(Dictionary<string, string> renames)
    {
        var g = FloatModel.Graph;
        foreach (var (from, to) in renames)
        {
            foreach (var n in g.Nodes)
            {
                for (int i = 0; i < n.Inputs.Count; i++) if (n.Inputs[i] == from) n.Inputs[i] = to;
                for (int i = 0; i < n.Outputs.Count; i++) if (n.Outputs[i] == from) n.Outputs[i] = to;
            }
            if (Activations.Remove(from, out var p)) Activations[to] = p;
            g.ValueInfos.Remove(from);
        }
    }

    private void RestoreRelus()
    {
        var g = FloatModel.Graph;
        var producers = g.Producers();
        var names = new HashSet<string>(g.Nodes.Select(n => n.Name).Concat(g.Nodes.SelectMany(n => n.Outputs)).Concat(g.Initializers.Keys), StringComparer.Ordinal);
        foreach (var (tensor, p) in Activations.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (p.ZeroPoints[0] != QuantParams.Range(p.QType).Min) continue;
            if (!producers.TryGetValue(tensor, out var node) || !node.IsDefaultDomain || !ReluFoldedInto.Contains(node.OpType)) continue;
            string raw = Unique(tensor + "_before_relu", names), reluName = Unique(node.Name.Length > 0 ? node.Name + "_relu" : tensor + "_relu", names);
            node.Outputs[node.Outputs.IndexOf(tensor)] = raw;
            g.Nodes.Insert(g.Nodes.IndexOf(node) + 1, new Node(reluName, "Relu", "", [raw], [tensor]));
            RestoredRelus.Add(node.Name.Length > 0 ? node.Name : tensor);
        }
    }

    private static bool Taken(Graph g, string name) =>
        g.Initializers.ContainsKey(name) || g.Inputs.Any(i => i.Name == name) || g.Nodes.Any(n => n.Outputs.Contains(name));

    private static string Unique(string hint, HashSet<string> names)
    {
        if (names.Add(hint)) return hint;
        for (int k = 1; ; k++) if (names.Add($"{hint}_{k}")) return $"{hint}_{k}";
    }

    /// <summary>Zero points, scales and the Identity chains that fed them are dead now; so are value_info entries of removed tensors.</summary>
    private void RemoveUnused()
    {
        var g = FloatModel.Graph;
        var outputs = new HashSet<string>(g.Outputs.Select(o => o.Name), StringComparer.Ordinal);
        for (bool removed = true; removed;)
        {
            var read = new HashSet<string>(g.Nodes.SelectMany(n => n.Inputs).Concat(outputs), StringComparer.Ordinal);
            removed = g.Nodes.RemoveAll(n => n.Outputs.All(o => o.Length == 0 || !read.Contains(o))) > 0;
        }
        var used = new HashSet<string>(g.Nodes.SelectMany(n => n.Inputs).Concat(outputs), StringComparer.Ordinal);
        foreach (var k in g.Initializers.Keys.Where(k => !used.Contains(k)).ToList()) g.Initializers.Remove(k);
        g.Inputs.RemoveAll(i => !used.Contains(i.Name) && g.Initializers.ContainsKey(i.Name));
        var produced = new HashSet<string>(g.Nodes.SelectMany(n => n.Outputs), StringComparer.Ordinal);
        foreach (var k in g.ValueInfos.Keys.Where(k => !produced.Contains(k)).ToList()) g.ValueInfos.Remove(k);
    }

    private static QuantParams ToParams(QdqParams p) =>
        new(p.Type is ElementType.Int16 ? QType.Int16 : QType.Int8, p.Scales, p.ZeroPoints, p.Axis, "model");

    private static bool SameParams(QuantParams a, QuantParams b) =>
        a.QType == b.QType && a.Axis == b.Axis && a.ZeroPoints.SequenceEqual(b.ZeroPoints) &&
        a.Scales.Select(BitConverter.SingleToInt32Bits).SequenceEqual(b.Scales.Select(BitConverter.SingleToInt32Bits));

    /// <summary>scale × (q − zero point) per element, along the params' axis when per channel.</summary>
    private static float[] Dequantize(TensorData ints, QdqParams p)
    {
        var channel = new ChannelIndex(ints.Dims, p.Axis);
        var result = new float[ints.ElementCount];
        for (long i = 0; i < result.Length; i++)
        {
            int c = channel.Of(i);
            long q = ints.Type switch
            {
                ElementType.Int8 => ints.As<sbyte>()[(int)i],
                ElementType.Int16 => ints.As<short>()[(int)i],
                ElementType.Int32 => ints.As<int>()[(int)i],
                _ => throw new InvalidOperationException($"'{ints.Name}' is {ints.Type}, not a signed integer initializer"),
            };
            result[i] = p.Scales[c] * (q - p.ZeroPoints[c]);
        }
        return result;
    }
}
