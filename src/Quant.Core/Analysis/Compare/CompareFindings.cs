using System.Globalization;
using Quant.Core.Config;
using Quant.Onnx;

namespace Quant.Core.Analysis.Compare;

/// <summary>One flagged failure pattern: the flag, where, and one sentence with the fix.</summary>
public sealed record CompareFinding(string Flag, string? Node, string? Tensor, string Message);

/// <summary>
/// The failure patterns Horizon's accuracy-debugging guides teach, as flags with stated thresholds (docs/compare.md
/// lists them with their fixes). Every threshold reads the float reference, so a flag says what the data needs,
/// not how the current qat model happened to come out.
/// </summary>
public static class CompareFindings
{
    public const string InsufficientResolution = "insufficient_resolution";
    public const string InputNotNormalized = "input_not_normalized";
    public const string RangeMismatch = "range_mismatch";
    public const string Float16Overflow = "float16_overflow";
    public const string NonFinite = "nonfinite";

    /// <summary>An int8 tensor clipping more than this share of its float values has too little range at its scale.</summary>
    public const double ClippedShare = 0.01;
    /// <summary>
    /// An int8 tensor whose float values, quantized alone at the qat scale (no upstream error), keep an SQNR below this
    /// (dB) has too little resolution: rounding and clipping by themselves cost it about 0.3 % of cosine (a well-used
    /// int8 range gives 35-40 dB; outliers that stretch the scale push the bulk of the values into a few steps).
    /// </summary>
    public const double MinQuantizationSqnr = 25;
    /// <summary>A model input whose float values reach beyond ±this is not normalized (normalized inputs lie in about [-1, 1] or [0, 1]; ImageNet mean/std reach ±2.7).</summary>
    public const double InputAbsMax = 4;
    /// <summary>A Concat/Add/Sub/Max/Min whose inputs' max |x| differ by more than this factor loses the small input in the output's one int8 scale (16×: 4 of int8's 7 magnitude bits).</summary>
    public const double RangeRatio = 16;
    /// <summary>The largest finite float16.</summary>
    public const double Float16Max = 65504;

    /// <summary>
    /// Ops whose output puts values of every input on one scale, so a small-range input keeps only a few of its levels.
    /// Mul is not one of them: a product's relative error is the sum of its inputs' relative errors, whatever their
    /// ranges (PP-LCNet's x · hardsigmoid(x) gates would all be flagged, wrongly).
    /// </summary>
    public static readonly IReadOnlySet<string> MultiInputOps = new HashSet<string>(StringComparer.Ordinal) { "Concat", "Add", "Sub", "Max", "Min" };

    /// <summary>The flags of each tensor (by index into <paramref name="tensors"/>) and the findings, most severe pattern first, then graph order.</summary>
    public static (IReadOnlyList<List<string>> Flags, IReadOnlyList<CompareFinding> Findings) Find(
        OnnxModel floatModel, IReadOnlyList<MatchedTensor> tensors, IReadOnlyList<TensorResult> results, IReadOnlyList<NonFiniteOrigin> nonFinite)
    {
        var flags = tensors.Select(_ => new List<string>()).ToList();
        var byFlag = new Dictionary<string, List<CompareFinding>>(StringComparer.Ordinal);
        void Add(int index, string flag, string? node, string message)
        {
            if (index >= 0 && !flags[index].Contains(flag)) flags[index].Add(flag);
            if (!byFlag.TryGetValue(flag, out var l)) byFlag[flag] = l = [];
            l.Add(new CompareFinding(flag, node, index >= 0 ? tensors[index].Tensor : null, message));
        }
        var index = tensors.Select((t, i) => (t.Tensor, i)).ToDictionary(x => x.Tensor, x => x.i, StringComparer.Ordinal);

        foreach (var origin in nonFinite)
        {
            int at = IndexOf(origin, tensors, index);
            var inFloat = nonFinite.FirstOrDefault(o => o.Stage == CompareStage.Float);
            Add(at, NonFinite, origin.Node.Length > 0 ? origin.Node : null, NonFiniteMessage(origin, at >= 0 ? tensors[at] : null, inFloat));
        }
        for (int i = 0; i < tensors.Count; i++)
        {
            var (t, r) = (tensors[i], results[i]);
            if (t.Float16Region && r.Reference.Count > 0 && r.Reference.AbsMax > Float16Max)
                Add(i, Float16Overflow, t.Node, $"'{t.Tensor}' reaches |x| = {N(r.Reference.AbsMax)} in the float model, beyond float16's largest value 65504, " +
                    $"and the plan rounds it to float16; keep {Where(t)} at float32 or int16 (node_config: {{{Subject(t)}: {{qtype: float32}}}}) instead of float16.");
        }
        for (int i = 0; i < tensors.Count; i++)
        {
            var (t, r) = (tensors[i], results[i]);
            if (t.IsModelInput && r.Reference.Count > 0 && r.Reference.AbsMax > InputAbsMax)
                Add(i, InputNotNormalized, null, $"model input '{t.Tensor}' spans [{N(r.Reference.Min)}, {N(r.Reference.Max)}], far from [-1, 1] or [0, 1]; " +
                    $"normalize it in the preprocessing (inputs.{t.Tensor}: scale, mean, std — e.g. scale: 1/255, mean: 0.5, std: 0.5 gives [-1, 1]; Horizon's guides fold it " +
                    $"into a fixed input scale of 1/128) or read it as int16 ({ReaderFix(t)}).");
        }
        foreach (var node in floatModel.Graph.TopologicalOrder().Where(n => n.IsDefaultDomain && MultiInputOps.Contains(n.OpType)))
        {
            var inputs = node.Inputs.Where(x => x.Length > 0 && index.ContainsKey(x)).Distinct().Select(x => index[x])
                .Where(k => results[k].Reference.Count > 0 && results[k].Reference.AbsMax > 0).ToList();
            if (inputs.Count < 2) continue;
            bool int8 = inputs.Any(k => tensors[k].QType == QType.Int8)
                        || node.Outputs.Any(o => index.TryGetValue(o, out var k) && tensors[k].QType == QType.Int8);
            if (!int8) continue;
            var large = inputs.MaxBy(k => results[k].Reference.AbsMax);
            var small = inputs.MinBy(k => results[k].Reference.AbsMax);
            double ratio = results[large].Reference.AbsMax / results[small].Reference.AbsMax;
            if (ratio <= RangeRatio) continue;
            int at = node.Outputs.Count > 0 && index.TryGetValue(node.Outputs[0], out var o0) ? o0 : -1;
            Add(at, RangeMismatch, node.Name, $"{node.OpType} '{node.Name}' combines '{tensors[large].Tensor}' (|x| up to {N(results[large].Reference.AbsMax)}) with " +
                $"'{tensors[small].Tensor}' (|x| up to {N(results[small].Reference.AbsMax)}), {N(ratio)}× apart, so in int8 the large one eats the small one; " +
                $"run it at int16 (node_config: {{{node.Name}: {{qtype: int16}}}}).");
        }
        for (int i = 0; i < tensors.Count; i++)
        {
            var (t, r) = (tensors[i], results[i]);
            if (t.QType != QType.Int8 || t.Scale is not { } scale || r.Reference.Count == 0) continue;
            double steps = r.Reference.Std / scale;
            bool clipped = r.Clipped > ClippedShare;
            double qsqnr = r.Quantization?.Sqnr ?? double.PositiveInfinity;
            if (!clipped && !(qsqnr < MinQuantizationSqnr)) continue;
            var why = clipped
                ? $"int8 at scale {N(scale)} clips {N(100 * r.Clipped)}% of its float values (range [{N(r.Reference.Min)}, {N(r.Reference.Max)}])"
                : $"int8 at scale {N(scale)} alone leaves its float values an SQNR of {N(qsqnr)} dB, below {N(MinQuantizationSqnr)} " +
                  $"(range [{N(r.Reference.Min)}, {N(r.Reference.Max)}] but std {N(r.Reference.Std)}: {N(steps)} steps)";
            Add(i, InsufficientResolution, t.Node, $"'{t.Tensor}': {why}; quantize it as int16 ({ReaderFix(t)}).");
        }
        var order = new[] { NonFinite, Float16Overflow, InputNotNormalized, RangeMismatch, InsufficientResolution };
        return (flags, order.Where(byFlag.ContainsKey).SelectMany(f => byFlag[f]).ToList());
    }

    private static int IndexOf(NonFiniteOrigin o, IReadOnlyList<MatchedTensor> tensors, Dictionary<string, int> index)
    {
        if (index.TryGetValue(o.Tensor, out var i)) return i;
        for (int k = 0; k < tensors.Count; k++)
        {
            var t = tensors[k];
            if (t.Qat == o.Tensor || t.QatInteger == o.Tensor || t.Later.Values.Any(v => v.Name == o.Tensor)) return k;
        }
        // An inserted conversion (T_fp16, T_q) that no consumer reads directly: its name starts with the tensor's.
        var best = -1;
        for (int k = 0; k < tensors.Count; k++)
            if (o.Tensor.StartsWith(tensors[k].Tensor + "_", StringComparison.Ordinal) && (best < 0 || tensors[k].Tensor.Length > tensors[best].Tensor.Length)) best = k;
        return best;
    }

    private static string NonFiniteMessage(NonFiniteOrigin o, MatchedTensor? t, NonFiniteOrigin? inFloat)
    {
        var what = o.Kind == "nan" ? "NaN" : "infinity";
        var stage = o.Stage.Name();
        if (o.Node.Length == 0)
            return $"{stage}: model input '{o.Tensor}' holds {what} (sample {o.Sample}); fix the data or its preprocessing.";
        var head = $"{stage}: {o.OpType} '{o.Node}' is the first node to compute {what} from finite inputs ('{o.Tensor}', sample {o.Sample}); ";
        if (o.OpType == "Cast" && t is { Float16Region: true })
            return head + $"the value overflows float16 there: keep {Where(t)} at float32 (node_config: {{{Subject(t)}: {{qtype: float32}}}}).";
        if (o.Stage == CompareStage.Float)
            return head + "the float model itself does this on this data: keep the op's input in its domain (clip it, add an epsilon) or fix the preprocessing.";
        if (inFloat is not null)
            return head + (inFloat.Node == o.Node ? "as in the float model, so fix the float model or its data first (see the float finding)."
                : $"the float model's first is '{inFloat.Node}': fix that first (see the float finding).");
        return head + $"the float model stays finite here, so quantization moved an input out of the op's domain: keep '{o.Node}' and its inputs at float32 " +
                      $"(node_config: {{{o.Node}: {{qtype: float32}}}}) or int16.";
    }

    /// <summary>node_config lines that read the tensor at int16 in every node that reads its quantized form.</summary>
    private static string ReaderFix(MatchedTensor t)
    {
        var readers = t.Readers.Where(r => r.OpType is not ("QuantizeLinear" or "DequantizeLinear")).Take(3).ToList();
        if (readers.Count == 0) return t.Node is { } n ? $"node_config: {{{n}: {{qtype: int16}}}}" : "node_config on its readers: {input0: int16}";
        return "node_config: {" + string.Join(", ", readers.Select(r => $"{r.Node}: {{input{r.Input}: int16}}")) + "}" + (t.Readers.Count > 3 ? " and its other readers" : "");
    }

    private static string Where(MatchedTensor t) => t.Node is { } n ? $"'{n}'" : $"the readers of '{t.Tensor}'";
    private static string Subject(MatchedTensor t) => t.Node ?? (t.Readers.Count > 0 ? t.Readers[0].Node : t.Tensor);

    internal static string N(double x) => x.ToString("G4", CultureInfo.InvariantCulture);
}
