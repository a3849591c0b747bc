using Quant.Core.Conversion;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Tests.Convert.Rules;

/// <summary>A <see cref="LoweringEmitter"/> that writes into a plain graph, with unique names.</summary>
internal sealed class GraphEmitter(Graph graph) : LoweringEmitter
{
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    private string Unique(string hint)
    {
        var name = hint.Length > 0 ? hint : "t";
        for (int i = 1; !_names.Add(name) || graph.Initializers.ContainsKey(name); i++) name = $"{hint}_{i}";
        return name;
    }

    public override Node AddNode(string nameHint, string opType, string domain, IEnumerable<string> inputs, IEnumerable<string> outputs)
    {
        var n = new Node(Unique(nameHint), opType, domain, inputs, outputs);
        graph.Nodes.Add(n);
        return n;
    }

    public override string AddInitializer(string nameHint, TensorData data)
    {
        var name = Unique(nameHint);
        data.Name = name;
        graph.Initializers[name] = data;
        return name;
    }

    public override string NewTensorName(string hint) => Unique(hint);
}

/// <summary>One data input of the node under test: its integer format, its integers, and whether it is a constant (P2).</summary>
internal sealed record DataInput(IntFormat Format, Tensor Values, bool Constant = false);

/// <summary>
/// The end-to-end check of a rule without the convert framework: the qat-style graph
/// <c>integers → DequantizeLinear → float op → QuantizeLinear (one per output format)</c> run by the engine gives the
/// reference integers; the same node lowered by the rule into <c>integers → quant.build node(s)</c> and run by the
/// engine gives ours.
/// </summary>
internal static class RuleHarness
{
    public static IIntegerRule RuleFor(string opType) =>
        typeof(IIntegerRule).Assembly.GetTypes()
            .Where(t => typeof(IIntegerRule).IsAssignableFrom(t) && !t.IsAbstract && !t.IsInterface && t.GetConstructor(Type.EmptyTypes) is not null)
            .Select(t => (IIntegerRule)Activator.CreateInstance(t)!)
            .Single(r => r.OpTypes.Contains(opType));

    /// <summary>
    /// Runs both graphs. <paramref name="op"/> names its data inputs "x0", "x1", … (its other inputs are constants in
    /// <paramref name="constants"/>, or ""), and its output "f". Returns, per output format, (qat integers, ours), or
    /// the island reason.
    /// </summary>
    public static (List<(Tensor Qat, Tensor Ours)> Results, string? Island) Run(Node op, DataInput[] data, IntFormat[] outputs,
        Dictionary<string, TensorData>? constants = null, long opset = 13)
    {
        constants ??= [];
        var feeds = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var qat = new Graph { Name = "qat_" + op.OpType };
        var ours = new Graph { Name = "quantized_" + op.OpType };
        foreach (var (name, c) in constants) { qat.Initializers[name] = c; ours.Initializers[name] = c; }
        for (int i = 0; i < data.Length; i++)
        {
            var q = $"q{i}";
            if (data[i].Constant)
            {
                qat.Initializers[q] = data[i].Values.ToData(q);
                ours.Initializers[q] = data[i].Values.ToData(q);
            }
            else
            {
                feeds[q] = data[i].Values;
                qat.Inputs.Add(new ValueInfo(q, data[i].Format.Type, null));
                ours.Inputs.Add(new ValueInfo(q, data[i].Format.Type, null));
            }
            AddParams(qat, $"s{i}", $"z{i}", data[i].Format);
            qat.Nodes.Add(new Node($"dq{i}", "DequantizeLinear", "", [q, $"s{i}", $"z{i}"], [$"x{i}"]));
        }
        qat.Nodes.Add(op);
        for (int k = 0; k < outputs.Length; k++)
        {
            AddParams(qat, $"sy{k}", $"zy{k}", outputs[k]);
            qat.Nodes.Add(new Node($"qy{k}", "QuantizeLinear", "", ["f", $"sy{k}", $"zy{k}"], [$"y{k}"]));
            qat.Outputs.Add(new ValueInfo($"y{k}", outputs[k].Type, null));
            ours.Outputs.Add(new ValueInfo($"y{k}", outputs[k].Type, null));
        }

        var inputs = op.Inputs.Select(name => name.StartsWith('x') && int.TryParse(name.AsSpan(1), out int i)
            ? new IntegerInput($"q{i}", data[i].Format) : null).ToList();
        var request = new LoweringRequest(op, inputs, outputs.Select((f, k) => new IntegerOutput($"y{k}", f)).ToList(),
            name => ours.Initializers.TryGetValue(name, out var t) ? t : null, new GraphEmitter(ours));
        var island = RuleFor(op.OpType).Lower(request);
        if (island is not null) return ([], island);

        var a = Session(qat, opset).Run(feeds);
        var b = Session(ours, opset).Run(feeds);
        return (Enumerable.Range(0, outputs.Length).Select(k => (a[$"y{k}"], b[$"y{k}"])).ToList(), null);
    }

    private static InferenceSession Session(Graph g, long opset)
    {
        var m = new OnnxModel(g) { IrVersion = 10, ProducerName = "quant-tests" };
        m.Opsets[""] = opset;
        m.Opsets[LoweringEmitter.Domain] = 1;
        return new InferenceSession(m, new SessionOptions { Threads = 2 });
    }

    private static void AddParams(Graph g, string s, string z, IntFormat f)
    {
        g.Initializers[s] = TensorData.FromFloats(s, [], [f.Scale]);
        g.Initializers[z] = f.Type == ElementType.Int8
            ? TensorData.From(z, ElementType.Int8, [], new[] { (sbyte)f.ZeroPoint }.AsSpan())
            : TensorData.From(z, ElementType.Int16, [], new[] { (short)f.ZeroPoint }.AsSpan());
    }

    /// <summary>
    /// Runs both graphs and asserts: no island, at most 1 LSB apart, at most <paramref name="maxShare"/> of the elements
    /// differing (0 for exact rules). Writes the measured share to <paramref name="log"/>; returns the worst share.
    /// </summary>
    public static double Check(Xunit.Abstractions.ITestOutputHelper log, string name, Node op, DataInput[] data, IntFormat[] outs, double maxShare,
        Dictionary<string, TensorData>? constants = null, long opset = 13)
    {
        var (results, island) = Run(op, data, outs, constants, opset);
        Assert.True(island is null, $"{name}: island '{island}'");
        double worst = 0;
        for (int k = 0; k < results.Count; k++)
        {
            var (max, share, count) = Compare(results[k].Qat, results[k].Ours);
            log.WriteLine($"{name} -> {outs[k]}: {count} elements, max |diff| {max}, 1-LSB share {share:E2}");
            // Spec §2.4: an int16 output has only ~9 float32 bits below its LSB, so qat's own rounding flips up to ~10^−2.
            double bound = maxShare > 0 && outs[k].Type == ElementType.Int16 ? Math.Max(maxShare, Int16Share) : maxShare;
            Assert.True(max <= (bound == 0 ? 0 : 1), $"{name}: {max} LSB apart");
            Assert.True(share <= bound, $"{name}: {share:E2} of the elements differ by 1 LSB (bound {bound:E0})");
            worst = Math.Max(worst, share);
        }
        return worst;
    }

    /// <summary>The 1-LSB share allowed for int16 outputs of requantizing rules (spec §2.4: up to about 10^−2).</summary>
    public const double Int16Share = 2e-2;

    public static TensorData Floats(string name, params float[] v) => TensorData.FromFloats(name, [v.Length], v);
    public static TensorData Longs(string name, params long[] v) => TensorData.FromInt64s(name, [v.Length], v);

    public static long At(Tensor t, int i) => t.Type == ElementType.Int8 ? t.ReadOnlySpan<sbyte>()[i] : t.ReadOnlySpan<short>()[i];

    /// <summary>(largest |difference|, share of elements that differ).</summary>
    public static (long MaxDiff, double Share, int Count) Compare(Tensor qat, Tensor ours)
    {
        Assert.Equal(qat.Type, ours.Type);
        Assert.Equal(qat.Shape, ours.Shape);
        long max = 0;
        int differ = 0;
        for (int i = 0; i < qat.Length; i++)
        {
            long d = Math.Abs(At(qat, i) - At(ours, i));
            max = Math.Max(max, d);
            if (d != 0) differ++;
        }
        return (max, qat.Length == 0 ? 0 : (double)differ / qat.Length, qat.Length);
    }

    /// <summary>A qat node named like PaddleOCR's exports, writing "f".</summary>
    public static Node Op(string op, string[] inputs, params AttributeValue[] attrs)
    {
        var n = new Node($"p2o.{op}.0", op, "", inputs, ["f"]);
        foreach (var a in attrs) n.Set(a);
        return n;
    }

    public static IntFormat I8(float s, int z = 0) => new(ElementType.Int8, s, z);
    public static IntFormat I16(float s, int z = 0) => new(ElementType.Int16, s, z);

    /// <summary>Every int8 value, laid out along <paramref name="axis"/> of a rank-<paramref name="rank"/> shape (others 1).</summary>
    public static Tensor AllInt8(int rank, int axis)
    {
        var shape = Enumerable.Repeat(1, rank).ToArray();
        shape[axis] = 256;
        return Tensor.From(Enumerable.Range(-128, 256).Select(v => (sbyte)v).ToArray(), shape);
    }

    public static Tensor RandomInts(Random rng, ElementType t, int[] shape, int lo = int.MinValue, int hi = int.MaxValue)
    {
        int n = Tensor.ElementCount(shape);
        if (t == ElementType.Int8)
            return Tensor.From(Enumerable.Range(0, n).Select(_ => (sbyte)rng.Next(Math.Max(lo, -128), Math.Min(hi, 127) + 1)).ToArray(), shape);
        return Tensor.From(Enumerable.Range(0, n).Select(_ => (short)rng.Next(Math.Max(lo, -32768), Math.Min(hi, 32767) + 1)).ToArray(), shape);
    }

    public static Tensor Scalar8(sbyte v) => Tensor.From([v], 1);
}
