using Quant.Core.Calibration;
using Quant.Core.Export;
using Quant.Core.Precision;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Analysis.Sensitivity;

/// <summary>What every candidate's local variant is built from: the model, the quantization parameters and the base run's value names.</summary>
internal sealed class VariantContext
{
    public required OnnxModel Model { get; init; }
    public required Dictionary<string, Node> Producers { get; init; }
    public required Dictionary<string, List<Node>> Consumers { get; init; }
    /// <summary>Types and shapes of the model's values (shape inference, once): the sub-models' inputs carry them.</summary>
    public required IReadOnlyDictionary<string, ValueInfo> Infos { get; init; }
    public required IReadOnlyDictionary<string, QuantParams> Activations { get; init; }
    public required IReadOnlyDictionary<string, QuantParams> Weights { get; init; }
    /// <summary>Every value the base session has (its run's <see cref="ValueCache"/> names).</summary>
    public required IReadOnlySet<string> BaseValues { get; init; }
    public required SessionOptions SessionOptions { get; init; }
    /// <summary>Where the time goes (console only): building the small models, and running them with the downstream cones.</summary>
    public long BuildTicks { get; set; }
    public long RunTicks { get; set; }
}

/// <summary>
/// A candidate's effect as a small model: the nodes the exporter writes differently for the variant plan than for the
/// base plan (the candidate's conversions, the candidate itself, its readers' conversions). It reads the base run's
/// values and writes the values the base model's downstream nodes read, which <see cref="InferenceSession.RunDownstream"/>
/// then substitutes: together exactly the variant's full export, with only the candidate's downstream cone re-run.
/// </summary>
/// <remarks>
/// Both plans are exported for a sub-model of the changed nodes, their producers, their readers and their readers'
/// producers (enough for every conversion the exporter decides for those nodes), with the real exporter, and compared
/// node by node; the differing nodes (closed under paths between them, and under producers of values the base run does
/// not have) form the small model. Nothing here re-implements what the exporter writes.
/// </remarks>
internal sealed class LocalVariant
{
    private LocalVariant(InferenceSession? session, IReadOnlyList<string> inputs, int nodes)
    {
        Session = session;
        Inputs = inputs;
        NodeCount = nodes;
    }

    /// <summary>The small model (null: the variant writes nothing the base run does not already have).</summary>
    public InferenceSession? Session { get; }
    /// <summary>The base run's values it reads.</summary>
    public IReadOnlyList<string> Inputs { get; }
    public int NodeCount { get; }

    /// <summary>The values to substitute into the base run for one sample whose values are <paramref name="cache"/>.</summary>
    public IReadOnlyDictionary<string, Tensor> Changes(ValueCache cache)
    {
        if (Session is null) return new Dictionary<string, Tensor>();
        var feeds = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var name in Inputs) feeds[name] = cache[name];
        return Session.Run(feeds);
    }

    public static LocalVariant Build(VariantContext ctx, IReadOnlyList<Node> changed, Func<Node, NodePrecision> basePlan, Func<Node, NodePrecision> variantPlan)
    {
        var region = Region(ctx, changed);
        var sub = SubModel(ctx, region);
        var baseExport = QdqExporter.Export(sub, PlanVariants.Copy(sub, region, basePlan), ctx.Activations, ctx.Weights);
        var variantExport = QdqExporter.Export(sub, PlanVariants.Copy(sub, region, variantPlan), ctx.Activations, ctx.Weights);
        return FromDifference(ctx, baseExport, variantExport);
    }

    /// <summary>The changed nodes, their producers, their readers and the readers' producers, in model order.</summary>
    private static List<Node> Region(VariantContext ctx, IReadOnlyList<Node> changed)
    {
        var set = new HashSet<Node>(changed, ReferenceEqualityComparer.Instance);
        void AddProducers(Node n)
        {
            foreach (var i in n.Inputs) if (i.Length > 0 && ctx.Producers.TryGetValue(i, out var p)) set.Add(p);
        }
        var readers = new List<Node>();
        foreach (var n in changed)
        {
            AddProducers(n);
            foreach (var o in n.Outputs)
                if (o.Length > 0 && ctx.Consumers.TryGetValue(o, out var cs)) readers.AddRange(cs);
        }
        foreach (var r in readers) { set.Add(r); AddProducers(r); }
        return ctx.Model.Graph.Nodes.Where(set.Contains).ToList();
    }

    private static OnnxModel SubModel(VariantContext ctx, List<Node> region)
    {
        var g = ctx.Model.Graph;
        var sub = new Graph { Name = g.Name };
        var produced = new HashSet<string>(region.SelectMany(n => n.Outputs), StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var n in region)
            foreach (var i in n.Inputs)
            {
                if (i.Length == 0 || produced.Contains(i) || !seen.Add(i)) continue;
                if (g.Initializers.TryGetValue(i, out var init)) sub.Initializers[i] = init;
                else sub.Inputs.Add(ctx.Infos.TryGetValue(i, out var vi) ? vi : new ValueInfo(i, ElementType.Undefined, null));
            }
        // Only the model's own outputs: the exporter quantizes a quantized node's output only where it is one.
        foreach (var o in g.Outputs) if (produced.Contains(o.Name)) sub.Outputs.Add(o);
        foreach (var n in region)
            foreach (var o in n.Outputs)
                if (o.Length > 0 && ctx.Infos.TryGetValue(o, out var vi)) sub.ValueInfos[o] = vi;
        sub.Nodes.AddRange(region);
        var model = new OnnxModel(sub) { IrVersion = ctx.Model.IrVersion, SourcePath = ctx.Model.SourcePath };
        foreach (var (k, v) in ctx.Model.Opsets) model.Opsets[k] = v;
        return model;
    }

    private static LocalVariant FromDifference(VariantContext ctx, OnnxModel baseExport, OnnxModel variant)
    {
        var g = variant.Graph;
        var baseNodes = new Dictionary<string, Node>(StringComparer.Ordinal);
        foreach (var n in baseExport.Graph.Nodes) baseNodes.TryAdd(n.Name, n);
        var nodes = g.TopologicalOrder();
        var differs = nodes.Select(n => !baseNodes.TryGetValue(n.Name, out var b) || !Same(n, variant, b, baseExport)).ToArray();

        // Close the set: a node on a path between two differing nodes re-runs with them, and so does the producer of a
        // value a differing node reads that the base run does not have.
        var producerOf = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int k = 0; k < nodes.Count; k++) foreach (var o in nodes[k].Outputs) if (o.Length > 0) producerOf[o] = k;
        bool grew = true;
        while (grew)
        {
            grew = false;
            var after = new bool[nodes.Count];
            for (int k = 0; k < nodes.Count; k++)
                after[k] = nodes[k].Inputs.Any(i => i.Length > 0 && producerOf.TryGetValue(i, out var p) && (differs[p] || after[p]));
            var before = new bool[nodes.Count];
            for (int k = nodes.Count - 1; k >= 0; k--)
                foreach (var i in nodes[k].Inputs)
                    if (i.Length > 0 && (differs[k] || before[k]) && producerOf.TryGetValue(i, out var p)) before[p] = true;
            for (int k = 0; k < nodes.Count; k++)
            {
                if (differs[k]) continue;
                if (after[k] && before[k]) { differs[k] = grew = true; continue; }
            }
            for (int k = 0; k < nodes.Count; k++)
            {
                if (!differs[k]) continue;
                foreach (var i in nodes[k].Inputs)
                    if (i.Length > 0 && !g.Initializers.ContainsKey(i) && !ctx.BaseValues.Contains(i) && producerOf.TryGetValue(i, out var p) && !differs[p])
                        differs[p] = grew = true;
            }
        }

        var members = nodes.Where((_, k) => differs[k]).ToList();
        if (members.Count == 0) return new LocalVariant(null, [], 0);
        var produced = new HashSet<string>(members.SelectMany(n => n.Outputs).Where(o => o.Length > 0), StringComparer.Ordinal);
        var small = new Graph { Name = "sensitivity_variant" };
        var inputs = new List<string>();
        foreach (var n in members)
            foreach (var i in n.Inputs)
            {
                if (i.Length == 0 || produced.Contains(i) || small.Initializers.ContainsKey(i) || inputs.Contains(i)) continue;
                if (g.Initializers.TryGetValue(i, out var init)) { small.Initializers[i] = init; continue; }
                if (!ctx.BaseValues.Contains(i))
                    throw new InvalidOperationException($"sensitivity: the variant reads '{i}', which the base run does not have");
                inputs.Add(i);
                small.Inputs.Add(new ValueInfo(i, ElementType.Undefined, null));
            }
        foreach (var o in produced.Where(ctx.BaseValues.Contains).Order(StringComparer.Ordinal))
            small.Outputs.Add(new ValueInfo(o, ElementType.Undefined, null));
        if (small.Outputs.Count == 0) return new LocalVariant(null, [], members.Count);
        small.Nodes.AddRange(members);
        var model = new OnnxModel(small) { IrVersion = variant.IrVersion, SourcePath = variant.SourcePath };
        foreach (var (k, v) in variant.Opsets) model.Opsets[k] = v;
        var options = new SessionOptions { Threads = ctx.SessionOptions.Threads, FuseElementwise = false };
        return new LocalVariant(new InferenceSession(model, options), inputs, members.Count);
    }

    /// <summary>The same node reading the same constants: it computes the same values in both exports.</summary>
    private static bool Same(Node a, OnnxModel am, Node b, OnnxModel bm)
    {
        if (a.OpType != b.OpType || a.Domain != b.Domain || !a.Inputs.SequenceEqual(b.Inputs) || !a.Outputs.SequenceEqual(b.Outputs)
            || a.Attributes.Count != b.Attributes.Count) return false;
        foreach (var (k, v) in a.Attributes)
            if (!b.Attributes.TryGetValue(k, out var w) || !SameAttribute(v, w)) return false;
        foreach (var i in a.Inputs)
        {
            bool ai = am.Graph.Initializers.TryGetValue(i, out var x), bi = bm.Graph.Initializers.TryGetValue(i, out var y);
            if (ai != bi) return false;
            if (ai && !ReferenceEquals(x, y) && (x!.Type != y!.Type || !x.Dims.AsSpan().SequenceEqual(y.Dims) || !x.Raw.AsSpan().SequenceEqual(y.Raw))) return false;
        }
        return true;
    }

    private static bool SameAttribute(AttributeValue a, AttributeValue b) =>
        ReferenceEquals(a, b) || (a.Kind == b.Kind && a.Kind switch
        {
            AttributeKind.Int => a.Int == b.Int,
            AttributeKind.Float => a.Float.Equals(b.Float),
            AttributeKind.String => a.Bytes.AsSpan().SequenceEqual(b.Bytes),
            AttributeKind.Ints => a.Ints.AsSpan().SequenceEqual(b.Ints),
            AttributeKind.Floats => a.Floats.AsSpan().SequenceEqual(b.Floats),
            _ => false,
        });
}
