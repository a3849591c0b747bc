using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>A node the preparation took out of the graph, and why.</summary>
/// <param name="Name">The node's name, or "" when the file gave it none.</param>
/// <param name="Outputs">Its output value names (how unnamed nodes are identified).</param>
public sealed record RemovedNode(string Name, string OpType, IReadOnlyList<string> Outputs, string Reason)
{
    /// <summary>The name, or the op type and first output for an unnamed node.</summary>
    public string Label => Name.Length > 0 ? Name : $"{OpType} -> {(Outputs.Count > 0 ? Outputs[0] : "?")}";

    public override string ToString() => $"{Label} ({OpType}): {Reason}";
}

/// <summary>
/// One BatchNormalization (or per-channel bias Add) and whether it was folded into the node producing its
/// input. <see cref="IntoNode"/> is that producer's name ("" if there is none, e.g. a graph input).
/// </summary>
public sealed record FoldRecord(string Node, string OpType, string IntoNode, string IntoOpType, bool Folded, string Reason)
{
    public override string ToString() =>
        Folded ? $"{Node} ({OpType}) folded into {IntoNode} ({IntoOpType})" : $"{Node} ({OpType}) not folded: {Reason}";
}

/// <summary>
/// A fusion decision for a convolution followed by an activation. The graph is not rewritten: a fused pair
/// means the exporter must place no quantization point between <see cref="ProducerNode"/> and the
/// activation's output. <see cref="ActivationNodes"/> lists every node of the activation (several for a
/// decomposed HardSwish: Add, Clip, Mul, Div).
/// </summary>
public sealed record FusionRecord(string ProducerNode, string ProducerOpType, string Activation, IReadOnlyList<string> ActivationNodes,
    string OutputValue, bool Fused, string Reason)
{
    public override string ToString() =>
        $"{ProducerNode} ({ProducerOpType}) + {Activation} [{string.Join(", ", ActivationNodes)}]: {(Fused ? "fused" : "not fused")} ({Reason})";
}

/// <summary>
/// A composite op (HardSwish, LayerNormalization, Gelu) the model wrote out in smaller ops, and whether graph
/// preparation replaced them by the one op <see cref="Node"/> ("" when not fused).
/// </summary>
/// <param name="FromNodes">The original nodes the composite consisted of, in graph order (names, or op type and output).</param>
/// <param name="Input">The composite's data input.</param>
/// <param name="Output">Its output value (the fused node keeps this name).</param>
public sealed record CompositeRecord(string Node, string OpType, IReadOnlyList<string> FromNodes, string Input, string Output, bool Fused, string Reason)
{
    public override string ToString() =>
        Fused ? $"{Node} ({OpType}) fused from [{string.Join(", ", FromNodes)}]"
              : $"{OpType} [{string.Join(", ", FromNodes)}] not fused: {Reason}";
}

/// <summary>
/// A convolution pair considered for cross-layer equalization: <see cref="First"/>'s output reaches <see cref="Second"/>
/// through <see cref="Activation"/> ("" when directly). When equalized, the imbalance before and after: the largest
/// ratio, over channels, between the weight range of the first's output channel and of the second's input channel
/// (1 when every channel is balanced).
/// </summary>
public sealed record EqualizationRecord(string First, string Activation, string Second, bool Equalized, string Reason)
{
    public double ImbalanceBefore { get; init; }
    public double ImbalanceAfter { get; init; }

    public override string ToString()
    {
        string through = Activation.Length > 0 ? $" -{Activation}-> " : " -> ";
        return Equalized
            ? string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{First}{through}{Second}: equalized (largest channel range ratio {ImbalanceBefore:G4} -> {ImbalanceAfter:G4})")
            : $"{First}{through}{Second}: not equalized ({Reason})";
    }
}

/// <summary>What the preparation may do. The defaults are what the export stage uses.</summary>
public sealed class PreparationOptions
{
    public bool FoldConstants { get; init; } = true;
    public bool FoldBatchNormalization { get; init; } = true;
    /// <summary>Replace HardSwish, LayerNormalization and Gelu written out in smaller ops by the one op (<see cref="CompositeRecord"/>).</summary>
    public bool FuseCompositeOps { get; init; } = true;
    /// <summary>Cross-layer equalization of convolution pairs (<c>model_config.weight.equalization</c>); off by default.</summary>
    public bool Equalize { get; init; }
    /// <summary>
    /// Activations the target runs fused with a preceding Conv/ConvTranspose. "HardSwish" also covers the
    /// decomposed form x * Clip(x + 3, 0, 6) / 6 that Paddle exports. Others get "activation not supported
    /// for fusion".
    /// </summary>
    public IReadOnlySet<string> FusibleActivations { get; init; } = new HashSet<string>(StringComparer.Ordinal) { "Relu", "Clip", "HardSwish" };
    /// <summary>A folded node whose outputs hold more elements than this and than its inputs stays (folding would bloat the file).</summary>
    public long MaxFoldedElements { get; init; } = 1 << 20;
}

/// <summary>
/// The float model after graph preparation, with everything the model-check report lists: removed nodes
/// (with reasons), BatchNormalization folds (done or not, with reasons), fusion decisions and dead nodes,
/// and the mapping between value names of the original and the prepared model.
/// </summary>
public sealed class PreparedModel
{
    internal PreparedModel(OnnxModel model, List<RemovedNode> removed, List<FoldRecord> folds, List<FusionRecord> fusions,
        List<CompositeRecord> composites, List<EqualizationRecord> equalizations, List<RemovedNode> dead, int constantsConverted, List<RemovedNode> constantFolded, List<string> removedInitializers,
        Dictionary<string, string> aliases, Dictionary<string, string> vanished, HashSet<string> originalValues)
    {
        _originalValues = originalValues;
        Model = model;
        RemovedNodes = removed;
        Folds = folds;
        Fusions = fusions;
        Composites = composites;
        Equalizations = equalizations;
        DeadNodes = dead;
        ConstantNodesConverted = constantsConverted;
        ConstantFoldedNodes = constantFolded;
        RemovedInitializers = removedInitializers;
        _aliases = aliases;
        _vanished = vanished;
        foreach (var (orig, prep) in aliases)
        {
            if (!_originals.TryGetValue(prep, out var l)) _originals[prep] = l = [];
            l.Add(orig);
        }
    }

    private readonly HashSet<string> _originalValues;
    private readonly Dictionary<string, string> _aliases;
    private readonly Dictionary<string, string> _vanished;
    private readonly Dictionary<string, List<string>> _originals = new(StringComparer.Ordinal);

    /// <summary>The prepared model (a copy; the input model is not modified).</summary>
    public OnnxModel Model { get; }
    /// <summary>Every node removed, in the order the passes removed them, with the reason.</summary>
    public IReadOnlyList<RemovedNode> RemovedNodes { get; }
    /// <summary>Every BatchNormalization and per-channel bias Add considered for folding, folded or not.</summary>
    public IReadOnlyList<FoldRecord> Folds { get; }
    /// <summary>The BatchNormalization nodes folded into their producer.</summary>
    public IReadOnlyList<FoldRecord> FoldedBatchNorms => Folds.Where(f => f.Folded && f.OpType == "BatchNormalization").ToList();
    /// <summary>The BatchNormalization nodes that stay in the model, each with the reason.</summary>
    public IReadOnlyList<FoldRecord> UnfoldedBatchNorms => Folds.Where(f => !f.Folded && f.OpType == "BatchNormalization").ToList();
    public IReadOnlyList<FusionRecord> Fusions { get; }
    /// <summary>Composite ops found written out in smaller ops, fused or (with the reason) not.</summary>
    public IReadOnlyList<CompositeRecord> Composites { get; }
    /// <summary>Convolution pairs considered for cross-layer equalization (empty unless it was asked for).</summary>
    public IReadOnlyList<EqualizationRecord> Equalizations { get; }
    /// <summary>Nodes of the original model none of whose outputs reach a graph output (removed).</summary>
    public IReadOnlyList<RemovedNode> DeadNodes { get; }
    /// <summary>How many Constant nodes became initializers.</summary>
    public int ConstantNodesConverted { get; }
    /// <summary>Nodes evaluated at preparation time because all their inputs were constant.</summary>
    public IReadOnlyList<RemovedNode> ConstantFoldedNodes { get; }
    /// <summary>Initializers no remaining node reads (dropped).</summary>
    public IReadOnlyList<string> RemovedInitializers { get; }

    /// <summary>
    /// The prepared model's name for the value the original model calls <paramref name="originalName"/>, or null
    /// when no prepared value equals it (e.g. a convolution's output before a folded BatchNormalization;
    /// <see cref="WhyVanished"/> says why). Names that did not change map to themselves.
    /// </summary>
    public string? PreparedValueName(string originalName)
    {
        if (!_originalValues.Contains(originalName)) return null;
        if (_aliases.TryGetValue(originalName, out var p)) return p;
        return _vanished.ContainsKey(originalName) ? null : originalName;
    }

    /// <summary>Why an original value has no counterpart in the prepared model, or null if it has one.</summary>
    public string? WhyVanished(string originalName) => _vanished.GetValueOrDefault(originalName);

    /// <summary>
    /// Every original value name that the prepared value <paramref name="preparedName"/> stands for: itself when the
    /// original had it, plus removed aliases (an Identity's output, a renamed producer output).
    /// </summary>
    public IReadOnlyList<string> OriginalValueNames(string preparedName)
    {
        var result = new List<string>();
        if (_originalValues.Contains(preparedName) && !_aliases.ContainsKey(preparedName) && !_vanished.ContainsKey(preparedName)) result.Add(preparedName);
        if (_originals.TryGetValue(preparedName, out var l)) result.AddRange(l.Where(n => n != preparedName));
        return result;
    }

    /// <summary>Original value names whose prepared name differs, with that name.</summary>
    public IReadOnlyDictionary<string, string> RenamedValues => _aliases;
}
