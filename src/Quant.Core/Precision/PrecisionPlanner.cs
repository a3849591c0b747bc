using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Onnx;
using Quant.Onnx.Shapes;

namespace Quant.Core.Precision;

/// <summary>An activation that graph preparation decided to fuse into the GEMM-type op producing its input.</summary>
public readonly record struct FusedPair(Node Producer, Node Activation);

/// <summary>
/// Resolves the qtype of every node, input edge and output of a prepared model from the config.
/// Layers, lowest to highest priority (a layer that sets a node's qtype discards per-input settings of
/// lower layers): built-in default (int8) → preset → model_config.all_node_type → op_config →
/// subgraph_config (in file order; later entries win where they overlap) → node_config (qtype, then inputN)
/// → model_config.model_output_type (nodes producing model outputs). The target's rules
/// (<see cref="TargetRules"/>) then adjust what the target cannot run, and every such change is logged.
/// </summary>
public static class PrecisionPlanner
{
    private sealed class Request
    {
        public QType Q = QType.Int8;
        public string Source = "default";
        public readonly Dictionary<int, QType> Inputs = [];
        public readonly HashSet<int> ExplicitInputs = [];
        /// <summary>Inputs node_config set to <c>ec</c>, with the position of the setting.</summary>
        public readonly Dictionary<int, SourcePosition> ErrorCompensation = [];

        public void Set(QType q, string source)
        {
            Q = q;
            Source = source;
            Inputs.Clear();
            ExplicitInputs.Clear();
            ErrorCompensation.Clear();
        }
    }

    /// <summary>Builds the plan.</summary>
    /// <param name="model">The prepared model (weights are initializers).</param>
    /// <param name="config">The quantization config.</param>
    /// <param name="fused">Activations graph preparation fused into the GEMM-type op before them.</param>
    /// <exception cref="QuantException">a node_config naming no node (QB1005), an inputN the node does not have (QB1004),
    /// a subgraph naming unknown tensors or whose inputs do not reach its outputs (QB1007)</exception>
    public static PrecisionPlan Plan(OnnxModel model, QuantConfig config, IReadOnlyList<FusedPair>? fused = null)
    {
        var g = model.Graph;
        var warnings = new List<string>();
        Validate(model, config, warnings);

        var types = ElementTypesOf(model);
        var graphOutputs = new HashSet<string>(g.Outputs.Select(o => o.Name), StringComparer.Ordinal);
        var index = new Dictionary<Node, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < g.Nodes.Count; i++) index[g.Nodes[i]] = i;
        var fusedInto = new Dictionary<Node, Node>(ReferenceEqualityComparer.Instance);
        foreach (var p in fused ?? [])
        {
            if (!index.ContainsKey(p.Producer) || !index.ContainsKey(p.Activation))
                throw new ArgumentException($"fused pair {p.Producer.Describe()} + {p.Activation.Describe()} is not in the model");
            fusedInto[p.Activation] = p.Producer;
        }

        var subgraphNodes = config.Subgraphs.Values.Select(s => (s, SubgraphNodes(g, s))).ToList();
        var changes = new List<(int Node, ChangeLogEntry Entry)>();
        var result = new Dictionary<Node, NodePrecision>(ReferenceEqualityComparer.Instance);

        foreach (var node in g.TopologicalOrder())
        {
            int ni = index[node];
            var req = Resolve(node, config, subgraphNodes, graphOutputs);
            var np = Describe(node, ni, g, types, graphOutputs, req);
            result[node] = np;
            void Log(ChangeSite site, int i, string tensor, QType from, QType to, string why) =>
                changes.Add((ni, new ChangeLogEntry(node.Name, node.OpType, site, i, tensor, from, to, why)));
            if (!np.ShapeOnly) ApplyTargetRules(np, config, fusedInto, result, Log);
            ErrorCompensationRules.Check(np, req.ErrorCompensation, Log);
        }

        var nodes = result.Values.OrderBy(n => n.NodeIndex).ToList();
        var log = changes.OrderBy(c => c.Node).ThenBy(c => c.Entry.Site).ThenBy(c => c.Entry.Index).Select(c => c.Entry).ToList();
        return new PrecisionPlan(model, nodes, log, warnings);
    }

    private static Request Resolve(Node node, QuantConfig config, List<(SubgraphConfig Config, HashSet<Node> Nodes)> subgraphs, HashSet<string> graphOutputs)
    {
        var req = new Request();
        bool gemm = TargetRules.GemmOps.Contains(node.OpType);
        switch (config.Preset)
        {
            case Preset.Performance:
                req.Set(QType.Int8, "preset performance");
                break;
            case Preset.Base:
                req.Set(gemm ? QType.Int8 : QType.Float16, "preset base");
                break;
            case Preset.Precision:
                // J6's precision template: GEMM-type ops read int16 activations (both inputs of an activation x
                // activation MatMul, since both are activations) with int8 weights — the default for int16 GEMM-type
                // nodes — and every other op stays float16, as in base; int8 elsewhere would make it worse than base.
                req.Set(gemm ? QType.Int16 : QType.Float16, "preset precision");
                break;
            case Preset.UpperBound:
                req.Set(gemm ? QType.Int16 : QType.Float16, "preset upper_bound");
                if (gemm)
                    for (int i = 0; i < node.Inputs.Count; i++)
                        if (TargetRules.IsDataInput(node.OpType, i)) req.Inputs[i] = QType.Int16;
                break;
        }
        if (config.Model.AllNodeType is { } all) req.Set(all, "all_node_type");
        if (config.OpTypes.TryGetValue(node.OpType, out var oc) && oc.QType is { } oq) req.Set(oq, $"op_config {node.OpType}");
        foreach (var (sc, members) in subgraphs)
            if (members.Contains(node)) req.Set(sc.QType, $"subgraph_config {sc.Name}");
        if (node.Name.Length > 0 && config.Nodes.TryGetValue(node.Name, out var nc))
        {
            if (nc.QType is { } nq) req.Set(nq, "node_config");
            foreach (var (i, iq) in nc.Inputs.OrderBy(kv => kv.Key))
            {
                if (i < 0 || i >= node.Inputs.Count)
                    throw new QuantException(ErrorCode.ConfigInvalidValue, iq.Position,
                        $"node_config '{node.Name}': input{i} does not exist; {node.Describe()} has {node.Inputs.Count} input(s) (input0..input{node.Inputs.Count - 1})");
                if (iq.QType is { } q)
                {
                    req.Inputs[i] = q;
                    req.ExplicitInputs.Add(i);
                }
                else if (iq.ErrorCompensation)
                {
                    // ec: an int8 weight split into high and low parts (checked in ErrorCompensationRules).
                    req.Inputs[i] = QType.Int8;
                    req.ExplicitInputs.Add(i);
                    req.ErrorCompensation[i] = iq.Position;
                }
            }
        }
        if (config.Model.ModelOutputType is { } mo && node.Outputs.Any(graphOutputs.Contains)) req.Set(mo, "model_output_type");
        return req;
    }

    private static NodePrecision Describe(Node node, int ni, Graph g, Dictionary<string, ElementType> types, HashSet<string> graphOutputs, Request req)
    {
        bool metadata = node.IsDefaultDomain && TargetRules.IsMetadataOp(node.OpType);
        bool gemm = TargetRules.GemmOps.Contains(node.OpType);
        var inputs = new List<InputPrecision>(node.Inputs.Count);
        for (int i = 0; i < node.Inputs.Count; i++)
        {
            var t = node.Inputs[i];
            var role = InputRole.Parameter;
            if (!metadata && t.Length > 0 && IsFloat(types, t))
            {
                if (TargetRules.IsBiasInput(node.OpType, i)) role = InputRole.Bias;
                else if (TargetRules.IsDataInput(node.OpType, i)) role = g.Initializers.ContainsKey(t) ? InputRole.Weight : InputRole.Activation;
            }
            QType? q = role switch
            {
                InputRole.Activation => req.Inputs.TryGetValue(i, out var a) ? a : req.Q,
                // Dual int16 has to be asked for: int16 GEMM-type nodes keep int8 weights by default.
                InputRole.Weight => req.Inputs.TryGetValue(i, out var w) ? w : gemm && req.Q == QType.Int16 ? QType.Int8 : req.Q,
                _ => null,
            };
            inputs.Add(new InputPrecision { Index = i, Tensor = t, Role = role, QType = q, Explicit = req.ExplicitInputs.Contains(i),
                ErrorCompensation = req.ErrorCompensation.ContainsKey(i) });
        }
        var outputs = new List<OutputPrecision>(node.Outputs.Count);
        for (int i = 0; i < node.Outputs.Count; i++)
        {
            var t = node.Outputs[i];
            bool carries = !metadata && t.Length > 0 && IsFloat(types, t);
            outputs.Add(new OutputPrecision { Index = i, Tensor = t, QType = carries ? req.Q : null, IsModelOutput = graphOutputs.Contains(t) });
        }
        bool shapeOnly = metadata || (!inputs.Any(x => x.Role is InputRole.Activation or InputRole.Weight) && !outputs.Any(o => o.QType is not null));
        if (shapeOnly)
        {
            foreach (var x in inputs) x.QType = null;
            foreach (var o in outputs) o.QType = null;
        }
        return new NodePrecision
        {
            Node = node, NodeIndex = ni, Compute = shapeOnly ? QType.Float32 : req.Q, Source = shapeOnly ? "shape" : req.Source,
            ShapeOnly = shapeOnly, Inputs = inputs, Outputs = outputs,
        };
    }

    private static void ApplyTargetRules(NodePrecision np, QuantConfig config, Dictionary<Node, Node> fusedInto,
        Dictionary<Node, NodePrecision> done, Action<ChangeSite, int, string, QType, QType, string> log)
    {
        var node = np.Node;
        var support = node.IsDefaultDomain ? TargetRules.For(node.OpType) : new OpSupport(node.OpType, false, false, false, false);
        static bool IsInt(QType? q) => q is QType.Int8 or QType.Int16;
        string OpName(QType q) => $"{PrecisionPlan.QTypeText(q)} {node.OpType}";

        // An activation fused into an integer GEMM-type op runs inside it, in its precision, and nothing is
        // quantized between the two.
        if (fusedInto.TryGetValue(node, out var producer) && done.TryGetValue(producer, out var pp) && IsInt(pp.Compute))
        {
            np.FusedInto = producer;
            var target = pp.Compute;
            if (np.Compute != target)
                log(ChangeSite.Node, 0, "", np.Compute, target, $"fused into '{producer.Name}' ({producer.OpType}): runs in its precision");
            SetAll(np, target, keepExplicit: false);
            var first = np.Inputs.FirstOrDefault(i => i.Role == InputRole.Activation);
            if (first is not null) first.Fused = true;
            return;
        }

        if (IsInt(np.Compute) && !support.Quantizable)
        {
            log(ChangeSite.Node, 0, "", np.Compute, QType.Float32, $"the target has no {OpName(np.Compute)}; falls back to float32");
            SetAll(np, QType.Float32, keepExplicit: true);
        }
        else if (support.Quantizable && !support.Int16 && (np.Compute == QType.Int16 || np.Inputs.Any(i => i.QType == QType.Int16)))
        {
            // float16 keeps at least the relative precision that was asked for; int8 would not.
            const string why = "the target has no int16 {0}; float16 keeps more precision than int8";
            if (np.Compute != QType.Float16)
                log(ChangeSite.Node, 0, "", np.Compute, QType.Float16, string.Format(System.Globalization.CultureInfo.InvariantCulture, why, node.OpType));
            foreach (var i in np.Inputs)
                if (i.QType == QType.Int16 && i.Explicit)
                    log(ChangeSite.Input, i.Index, i.Tensor, QType.Int16, QType.Float16, string.Format(System.Globalization.CultureInfo.InvariantCulture, why, node.OpType));
            np.Compute = QType.Float16;
            foreach (var i in np.Inputs) if (i.QType is not null) i.QType = QType.Float16;
            foreach (var o in np.Outputs) if (o.QType is not null) o.QType = QType.Float16;
        }

        if (support.Gemm && IsInt(np.Compute) && config.Model.ModelOutputType is null)
            foreach (var o in np.Outputs)
                if (o.IsModelOutput && IsInt(o.QType))
                {
                    log(ChangeSite.Output, o.Index, o.Tensor, o.QType!.Value, QType.Float32, "GEMM-type op producing a model output keeps a float output (high-precision output)");
                    o.QType = QType.Float32;
                }
    }

    private static void SetAll(NodePrecision np, QType q, bool keepExplicit)
    {
        np.Compute = q;
        foreach (var i in np.Inputs)
            if (i.QType is not null && !(keepExplicit && i.Explicit)) i.QType = q;
        foreach (var o in np.Outputs) if (o.QType is not null) o.QType = q;
    }

    private static bool IsFloat(Dictionary<string, ElementType> types, string tensor) =>
        !types.TryGetValue(tensor, out var t) || t is ElementType.Float or ElementType.Undefined;

    /// <summary>Element type of every value; values of unknown type are absent (and treated as float).</summary>
    private static Dictionary<string, ElementType> ElementTypesOf(OnnxModel model)
    {
        var types = new Dictionary<string, ElementType>(StringComparer.Ordinal);
        foreach (var (name, vi) in ShapeInference.Run(model)) types[name] = vi.Type;
        foreach (var i in model.Graph.Inputs) types[i.Name] = i.Type;
        foreach (var (name, t) in model.Graph.Initializers) types[name] = t.Type;
        return types;
    }

    // ---- validation ----

    private static void Validate(OnnxModel model, QuantConfig config, List<string> warnings)
    {
        var g = model.Graph;
        var names = g.Nodes.Where(n => n.Name.Length > 0).Select(n => n.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var nc in config.Nodes.Values)
            if (!names.Contains(nc.NodeName))
                throw new QuantException(ErrorCode.ConfigUnknownNode, nc.Position,
                    $"node_config names node '{nc.NodeName}', which is not in the model{Suggest(nc.NodeName, names)}");

        // A config is often shared by several models (det and rec), so an op type one of them lacks is not an error.
        var ops = g.Nodes.Select(n => n.OpType).ToHashSet(StringComparer.Ordinal);
        foreach (var oc in config.OpTypes.Values.OrderBy(o => o.Position.Line).ThenBy(o => o.OpType, StringComparer.Ordinal))
            if (!ops.Contains(oc.OpType))
                warnings.Add($"{oc.Position}: warning {ErrorCode.ConfigUnknownOpType.Text()}: op_config names op type '{oc.OpType}', " +
                             $"which the model does not contain; the entry has no effect{Suggest(oc.OpType, ops)}");

    }

    /// <summary>
    /// The nodes between a subgraph's inputs and outputs: those reading a value downstream of an input and
    /// producing a value upstream of an output.
    /// </summary>
    /// <exception cref="QuantException">QB1007: unknown tensor names, or an output no input reaches</exception>
    internal static HashSet<Node> SubgraphNodes(Graph g, SubgraphConfig sc)
    {
        var producers = g.Producers();
        var consumers = g.Consumers();
        var values = new HashSet<string>(producers.Keys, StringComparer.Ordinal);
        foreach (var i in g.Inputs) values.Add(i.Name);
        foreach (var k in g.Initializers.Keys) values.Add(k);
        QuantException Err(string m) => new(ErrorCode.ConfigSubgraphUnreachable, sc.Position, $"subgraph_config '{sc.Name}': {m}");

        if (sc.Inputs.Count == 0 || sc.Outputs.Count == 0) throw Err("needs at least one input and one output tensor");
        foreach (var (kind, list) in new[] { ("input", sc.Inputs), ("output", sc.Outputs) })
            foreach (var t in list)
                if (!values.Contains(t)) throw Err($"{kind} '{t}' is not a tensor of the model{Suggest(t, values)}");

        // Forward from the inputs; a value reached from input k remembers k so an unreached output can be named precisely.
        var downstream = new HashSet<Node>(ReferenceEqualityComparer.Instance);
        var reached = new HashSet<string>(sc.Inputs, StringComparer.Ordinal);
        var stack = new Stack<string>(sc.Inputs);
        while (stack.Count > 0)
        {
            var v = stack.Pop();
            if (!consumers.TryGetValue(v, out var cs)) continue;
            foreach (var c in cs)
            {
                if (!downstream.Add(c)) continue;
                foreach (var o in c.Outputs) if (o.Length > 0 && reached.Add(o)) stack.Push(o);
            }
        }
        foreach (var o in sc.Outputs)
            if (!reached.Contains(o))
                throw Err($"output '{o}' is not reachable from its inputs [{string.Join(", ", sc.Inputs)}]");

        var upstream = new HashSet<Node>(ReferenceEqualityComparer.Instance);
        var seen = new HashSet<string>(sc.Outputs, StringComparer.Ordinal);
        stack = new Stack<string>(sc.Outputs);
        while (stack.Count > 0)
        {
            var v = stack.Pop();
            if (!producers.TryGetValue(v, out var p) || !upstream.Add(p)) continue;
            foreach (var i in p.Inputs) if (i.Length > 0 && seen.Add(i)) stack.Push(i);
        }
        foreach (var i in sc.Inputs)
            if (!seen.Contains(i))
                throw Err($"input '{i}' does not lead to any of its outputs [{string.Join(", ", sc.Outputs)}]");

        downstream.IntersectWith(upstream);
        return downstream;
    }

    private static string Suggest(string name, IEnumerable<string> candidates)
    {
        string? best = null;
        int bestD = int.MaxValue;
        foreach (var c in candidates.OrderBy(c => c, StringComparer.Ordinal))
        {
            int d = Distance(name, c);
            if (d < bestD) (best, bestD) = (c, d);
        }
        return best is not null && bestD <= Math.Max(3, name.Length / 2) ? $"; did you mean '{best}'?" : "";
    }

    /// <summary>Levenshtein distance where case differences are free (so 'conv1' matches 'Conv1').</summary>
    internal static int Distance(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int sub = a[i - 1] == b[j - 1] || char.ToLowerInvariant(a[i - 1]) == char.ToLowerInvariant(b[j - 1]) ? 0 : 1;
                cur[j] = Math.Min(Math.Min(prev[j] + 1, cur[j - 1] + 1), prev[j - 1] + sub);
            }
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }
}
