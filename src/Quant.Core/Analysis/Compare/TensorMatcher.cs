using Quant.Core.Config;
using Quant.Onnx;

namespace Quant.Core.Analysis.Compare;

/// <summary>
/// Finds, for every tensor of the (prepared) float model, what stands for it in the qat model and the later stages.
/// The export keeps every float tensor name and adds its conversions beside it (QdqExporter): a QuantizeLinear reads
/// the tensor and a DequantizeLinear gives consumers the value they compute with; a float16 edge is a Cast to
/// float16 and back; a quantized or float16 model output keeps its name on the last node of that chain (the producer
/// writes <c>T_float</c>); an error-compensated node's Add writes the original output. So the matching follows the
/// qat graph's structure from the float name instead of guessing suffixes (a name taken twice gets <c>_1</c>).
/// The convert stage writes each replaced QuantizeLinear's output name (the integer tensor) and keeps DequantizeLinear
/// outputs that float islands read; a compiled .qbm keeps the quantized model's value names.
/// </summary>
public static class TensorMatcher
{
    /// <summary>The float model's tensors in graph order (inputs, then node outputs) with their qat counterparts; <paramref name="unmatched"/> lists those the qat model lacks.</summary>
    public static IReadOnlyList<MatchedTensor> Match(OnnxModel floatModel, OnnxModel qat, out IReadOnlyList<string> unmatched)
    {
        var qg = qat.Graph;
        var producers = qg.Producers();
        var consumers = qg.Consumers();
        var qatValues = new HashSet<string>(qg.Inputs.Select(i => i.Name).Concat(producers.Keys), StringComparer.Ordinal);
        var result = new List<MatchedTensor>();
        var missing = new List<string>();

        var tensors = floatModel.Graph.RuntimeInputs.Select(i => (Tensor: i.Name, Node: (Node?)null))
            .Concat(floatModel.Graph.TopologicalOrder().SelectMany(n => n.Outputs.Where(o => o.Length > 0).Select(o => (Tensor: o, Node: (Node?)n))));
        foreach (var (tensor, node) in tensors)
        {
            if (!qatValues.Contains(tensor))
            {
                missing.Add(tensor);
                continue;
            }
            result.Add(MatchOne(qg, producers, consumers, tensor, node));
        }
        unmatched = missing;
        return result;
    }

    private static MatchedTensor MatchOne(Graph qg, Dictionary<string, Node> producers, Dictionary<string, List<Node>> consumers, string tensor, Node? floatNode)
    {
        // The Q → DQ pairs that read the tensor (or, for a quantized model output, the pair that ends in its name).
        var pairs = new List<(Node Q, Node Dq)>();
        foreach (var q in Readers(consumers, tensor).Where(n => IsOp(n, "QuantizeLinear")))
            foreach (var dq in Readers(consumers, q.Outputs[0]).Where(n => IsOp(n, "DequantizeLinear") && n.Inputs[0] == q.Outputs[0]))
                pairs.Add((q, dq));
        bool endsChain = false;
        if (producers.TryGetValue(tensor, out var last) && (floatNode is null || floatNode.OpType != last.OpType))
        {
            if (IsOp(last, "DequantizeLinear") && producers.TryGetValue(last.Inputs[0], out var q0) && IsOp(q0, "QuantizeLinear"))
            {
                pairs.Insert(0, (q0, last));
                endsChain = true;
            }
        }
        var withType = pairs.Select(p => (p.Q, p.Dq, Type: IntegerType(qg, p.Q))).Where(p => p.Type is not null).ToList();
        var chosen = withType.OrderBy(p => p.Type == QType.Int8 ? 0 : 1).FirstOrDefault();
        bool fp16 = Readers(consumers, tensor).Any(n => IsCast(n, ElementType.Float16))
                    || (producers.TryGetValue(tensor, out var p16) && IsCast(p16, ElementType.Float) && producers.TryGetValue(p16.Inputs[0], out var h) && IsCast(h, ElementType.Float16));

        if (chosen.Q is not null)
        {
            var (scale, zp) = PerTensorParams(qg, chosen.Q);
            var dqOut = chosen.Dq.Outputs[0];
            return new MatchedTensor
            {
                Tensor = tensor, Node = floatNode?.Name, OpType = floatNode?.OpType, QType = chosen.Type,
                Scale = scale, ZeroPoint = zp, Qat = endsChain && chosen.Dq == producers[tensor] ? tensor : dqOut,
                QatInteger = chosen.Q.Outputs[0], Readers = ReadersWithIndex(consumers, dqOut), Float16Region = fp16,
            };
        }
        if (fp16)
        {
            // The value consumers read: the Cast back to float after the Cast to float16 (or the tensor, when it ends the chain).
            var back = Readers(consumers, tensor).Where(n => IsCast(n, ElementType.Float16))
                .SelectMany(c => Readers(consumers, c.Outputs[0]).Where(n => IsCast(n, ElementType.Float)))
                .Select(n => n.Outputs[0]).FirstOrDefault() ?? tensor;
            return new MatchedTensor
            {
                Tensor = tensor, Node = floatNode?.Name, OpType = floatNode?.OpType, QType = QType.Float16, Qat = back,
                Readers = ReadersWithIndex(consumers, back), Float16Region = true,
            };
        }
        return new MatchedTensor { Tensor = tensor, Node = floatNode?.Name, OpType = floatNode?.OpType, Qat = tensor };
    }

    /// <summary>
    /// Where each tensor is in a later stage's model whose values are <paramref name="values"/>: the qat value
    /// consumers read when it is still there (float islands keep their DequantizeLinear), else the integer tensor
    /// with the qat scale and zero point, else the float tensor itself.
    /// </summary>
    public static int MatchLater(IReadOnlyList<MatchedTensor> tensors, CompareStage stage, IReadOnlySet<string> values)
    {
        int found = 0;
        foreach (var t in tensors)
        {
            StageValue? v = null;
            if (values.Contains(t.Qat)) v = new StageValue(t.Qat);
            else if (t.QatInteger is { } q && t.Scale is { } s && values.Contains(q)) v = new StageValue(q, s, t.ZeroPoint);
            else if (values.Contains(t.Tensor)) v = new StageValue(t.Tensor);
            if (v is null) continue;
            t.Later[stage] = v;
            found++;
        }
        return found;
    }

    /// <summary>Every value a model's run produces or takes: graph inputs and node outputs.</summary>
    public static HashSet<string> ValueNames(Graph g) =>
        new(g.Inputs.Select(i => i.Name).Concat(g.Nodes.SelectMany(n => n.Outputs).Where(o => o.Length > 0)), StringComparer.Ordinal);

    private static IEnumerable<Node> Readers(Dictionary<string, List<Node>> consumers, string value) =>
        consumers.TryGetValue(value, out var l) ? l : [];

    private static IReadOnlyList<TensorReader> ReadersWithIndex(Dictionary<string, List<Node>> consumers, string value) =>
        Readers(consumers, value).SelectMany(n => n.Inputs.Select((inp, i) => (inp, i)).Where(x => x.inp == value).Select(x => new TensorReader(n.Name, n.OpType, x.i)))
            .ToList();

    private static bool IsOp(Node n, string op) => n.OpType == op && n.IsDefaultDomain;

    private static bool IsCast(Node n, ElementType to) => IsOp(n, "Cast") && n.GetInt("to", 0) == (long)to;

    /// <summary>int8 or int16 from the zero point's type (uint8 when absent, as ONNX defaults); null for another type.</summary>
    private static QType? IntegerType(Graph g, Node q)
    {
        if (q.InputOrNull(2) is not { } zp) return null;
        return g.Initializers.TryGetValue(zp, out var z) ? z.Type switch
        {
            ElementType.Int8 => QType.Int8,
            ElementType.Int16 => QType.Int16,
            _ => null,
        } : null;
    }

    private static (float? Scale, int ZeroPoint) PerTensorParams(Graph g, Node q)
    {
        if (!g.Initializers.TryGetValue(q.Inputs[1], out var s) || s.Type != ElementType.Float || s.ElementCount != 1) return (null, 0);
        int zp = 0;
        if (q.InputOrNull(2) is { } z && g.Initializers.TryGetValue(z, out var zt) && zt.ElementCount == 1)
            zp = zt.Type == ElementType.Int8 ? zt.As<sbyte>()[0] : zt.As<short>()[0];
        return (s.As<float>()[0], zp);
    }
}
