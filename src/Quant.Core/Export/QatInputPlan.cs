using System.Globalization;
using System.Text;
using Quant.Core.Calibration;
using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Core.Precision;
using Quant.Onnx;

namespace Quant.Core.Export;

/// <summary>
/// Makes a precision plan agree with the quantization a QDQ input model carried (<see cref="QatInput"/>): the model's
/// own choices win where the config asks otherwise, and each such contradiction is a warning naming the nodes; the
/// config decides everything the model left open (tensors it kept float, the calibration of those tensors, the
/// qtype of ops it did not quantize).
/// <list type="bullet">
/// <item>A tensor the model quantized is read as the model's int8/int16 with the model's scale and zero point, also by
/// nodes the config puts in another qtype (int16, float16, float32).</item>
/// <item>A weight the model quantized keeps its scales, per channel or per tensor as the model has it, whatever
/// <c>model_config.weight.per_channel</c> says.</item>
/// <item>Data movement (Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Slice, Gather, Split) after a quantized tensor
/// passes the model's parameters on to outputs the model did not quantize itself: PyTorch puts no pair between a pool's
/// DequantizeLinear and the Flatten before a Gemm.</item>
/// <item>A <c>node_config</c> scale or threshold on an output the model quantized is not used.</item>
/// </list>
/// </summary>
public sealed class QatInputPlan
{
    private const int NamesShown = 8;

    private readonly QatInput _input;
    private readonly string _modelFile;
    private readonly List<string> _warnings = [];
    private readonly Dictionary<string, QuantParams> _activations = new(StringComparer.Ordinal);
    private readonly Dictionary<string, QuantParams> _weights = new(StringComparer.Ordinal);
    private readonly List<string> _unused = [];
    private readonly List<string> _quantizedOutputs = [];

    private QatInputPlan(QatInput input, string modelFile)
    {
        _input = input;
        _modelFile = modelFile;
    }

    /// <summary>The model's parameters per activation tensor the plan quantizes (passed on through data movement).</summary>
    public IReadOnlyDictionary<string, QuantParams> Activations => _activations;
    /// <summary>The model's parameters per weight the plan quantizes.</summary>
    public IReadOnlyDictionary<string, QuantParams> Weights => _weights;
    /// <summary>Warnings in the canonical form (<c>FILE: warning QB4022: ...</c>): the model's own findings and every contradiction.</summary>
    public IReadOnlyList<string> Warnings => _warnings;

    /// <summary>Forces <paramref name="plan"/> (made for the prepared float model) to the model's qtypes; collects the warnings.</summary>
    public static QatInputPlan Apply(QatInput input, PrecisionPlan plan, QuantConfig config, string modelFile)
    {
        var r = new QatInputPlan(input, modelFile);
        foreach (var w in input.ModelWarnings) r.Warn(w);
        r.PassThroughDataMovement(plan);
        r.Enforce(plan, config);
        return r;
    }

    /// <summary>
    /// The stage's activation and weight parameters with the model's own laid over them, for the tensors the plan
    /// quantizes (<paramref name="tensorTypes"/>) and the weights the model quantized.
    /// </summary>
    public (IReadOnlyDictionary<string, QuantParams> Activations, IReadOnlyDictionary<string, QuantParams> Weights) Overlay(
        IReadOnlyDictionary<string, QType> tensorTypes, IReadOnlyDictionary<string, QuantParams> activations, IReadOnlyDictionary<string, QuantParams> weights)
    {
        var a = new Dictionary<string, QuantParams>(activations, StringComparer.Ordinal);
        foreach (var (t, p) in _activations) if (tensorTypes.ContainsKey(t)) a[t] = p;
        var w = new SortedDictionary<string, QuantParams>(weights.ToDictionary(kv => kv.Key, kv => kv.Value), StringComparer.Ordinal);
        foreach (var (t, p) in _weights) w[t] = p;
        return (a, w);
    }

    /// <summary>A weight of the model whose scale the int32 bias fit had to raise no longer has the model's scale: say so.</summary>
    public void NoteBiasFit(IReadOnlyList<Int32BiasFit.Adjustment> adjusted)
    {
        var hit = adjusted.Where(a => _weights.ContainsKey(a.Weight)).Select(a => $"{a.Node} ('{a.Weight}', {a.Channels} channels, up to x{a.LargestFactor:G3})").ToList();
        if (hit.Count > 0)
            Warn($"the bias of these nodes does not fit int32 at the model's input x weight scale, so their weight scales were raised: {List(hit)}");
    }

    private void Warn(string message) =>
        _warnings.Add($"{SourcePosition.InFile(_modelFile)}: warning {ErrorCode.ExportQatInputContradiction.Text()}: {message}");

    /// <summary>Ops that pass values through unchanged (a subset or another layout): their outputs share their input's range.</summary>
    private static readonly HashSet<string> DataMovement = new(StringComparer.Ordinal)
        { "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Slice", "Gather", "Split" };

    private static bool MovesData(NodePrecision np) => np.Node.IsDefaultDomain && DataMovement.Contains(np.OpType) && np.Node.Inputs.Count > 0;

    private void PassThroughDataMovement(PrecisionPlan plan)
    {
        foreach (var (k, v) in _input.Activations) _activations[k] = v;
        for (bool grew = true; grew;)
        {
            grew = false;
            foreach (var np in plan.Nodes)
            {
                if (!MovesData(np) || !_activations.TryGetValue(np.Node.Inputs[0], out var p) || p.PerChannel) continue;
                foreach (var o in np.Node.Outputs)
                    if (o.Length > 0 && _activations.TryAdd(o, p)) grew = true;
            }
        }
    }

    private void Enforce(PrecisionPlan plan, QuantConfig config)
    {
        var qtypeChanged = new SortedDictionary<string, List<string>>(StringComparer.Ordinal); // "config qtype → model qtype" → nodes
        var perChannel = new List<string>();
        var fixedScale = new List<string>();
        var readAsQuantized = new HashSet<string>(StringComparer.Ordinal);
        bool configPerChannel = config.Model.Weight.PerChannel;
        foreach (var np in plan.Nodes)
        {
            if (np.ShapeOnly) continue;
            foreach (var ip in np.Inputs)
            {
                if (ip.Tensor.Length == 0 || ip.Fused) continue;
                if (ip.Role == InputRole.Activation && _activations.TryGetValue(ip.Tensor, out var ap))
                {
                    Force(np, ip.QType, ap.QType, $"input {ip.Index} '{ip.Tensor}'", qtypeChanged);
                    ip.QType = ap.QType;
                    readAsQuantized.Add(ip.Tensor);
                }
                else if (ip.Role == InputRole.Weight && _input.Weights.TryGetValue(ip.Tensor, out var wp))
                {
                    Force(np, ip.QType, wp.QType, $"weight '{ip.Tensor}'", qtypeChanged);
                    ip.QType = wp.QType;
                    _weights[ip.Tensor] = wp;
                    if (wp.PerChannel != configPerChannel) perChannel.Add($"{np.Node.Describe()} ('{ip.Tensor}' {(wp.PerChannel ? $"{wp.Scales.Length} scales along axis {wp.Axis}" : "one scale")})");
                }
            }
            foreach (var op in np.Outputs)
            {
                if (!_activations.TryGetValue(op.Tensor, out var ap)) continue;
                if (op.IsModelOutput)
                {
                    // The float output GEMMs get by default is a default, not the user's word: only an explicit
                    // model_output_type that the model's own output pair overrides is a contradiction.
                    if (config.Model.ModelOutputType is not null) Force(np, op.QType, ap.QType, $"output '{op.Tensor}'", qtypeChanged);
                    else if (op.QType != ap.QType) _quantizedOutputs.Add(op.Tensor);
                    op.QType = ap.QType;
                    readAsQuantized.Add(op.Tensor);
                }
                if (config.Nodes.TryGetValue(np.Name, out var nc) && (nc.Scale is not null || nc.Threshold is not null))
                    fixedScale.Add(np.Node.Describe());
            }
        }
        foreach (var (change, nodes) in qtypeChanged)
            Warn($"the config {change}, but the model quantizes there with its own scales; kept the model's at {List(nodes)}");
        if (perChannel.Count > 0)
            Warn($"model_config.weight.per_channel is {(configPerChannel ? "true" : "false")}, but the model quantizes these weights otherwise; kept the model's scales: {List(perChannel)}");
        if (fixedScale.Count > 0)
            Warn($"node_config gives a scale or threshold for outputs the model already quantizes; kept the model's: {List(fixedScale)}");
        // Model pairs nothing reads quantized any more (e.g. between a Conv and the activation fused into it).
        foreach (var t in _input.Activations.Keys.Order(StringComparer.Ordinal))
            if (!readAsQuantized.Contains(t) && !PassedOn(t, readAsQuantized, plan)) _unused.Add(t);
    }

    /// <summary>True when a data-movement node passed <paramref name="tensor"/>'s parameters on to something read quantized.</summary>
    private static bool PassedOn(string tensor, HashSet<string> readAsQuantized, PrecisionPlan plan) =>
        plan.Nodes.Any(np => MovesData(np) && np.Node.Inputs[0] == tensor &&
            np.Node.Outputs.Any(o => o.Length > 0 && (readAsQuantized.Contains(o) || PassedOn(o, readAsQuantized, plan))));

    private static void Force(NodePrecision np, QType? planned, QType model, string site, SortedDictionary<string, List<string>> changed)
    {
        if (planned == model) return;
        var key = $"puts {(planned is { } p ? PrecisionPlan.QTypeText(p) : "no qtype")} where the model has {PrecisionPlan.QTypeText(model)}";
        if (!changed.TryGetValue(key, out var list)) changed[key] = list = [];
        list.Add($"{np.Node.Describe()} {site}");
    }

    private static string List(List<string> items) =>
        string.Join(", ", items.Take(NamesShown)) + (items.Count > NamesShown ? $" and {items.Count - NamesShown} more" : "");

    /// <summary>The model check's section on the input's own quantization (appended to NAME.model_check.txt).</summary>
    public string RenderText()
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine();
        sb.AppendLine("QDQ input model (its own quantization kept)");
        sb.AppendLine($"  Q/DQ nodes read: {_input.QuantizeNodes} QuantizeLinear, {_input.DequantizeNodes} DequantizeLinear");
        sb.AppendLine($"  activation tensors with the model's scales: {_input.Activations.Count}" +
            (_activations.Count > _input.Activations.Count ? $" (+{_activations.Count - _input.Activations.Count} passed on through data movement)" : ""));
        sb.AppendLine($"  weights with the model's scales: {_weights.Count} of {_input.Weights.Count}");
        if (_input.IntegerBiases.Count > 0) sb.AppendLine($"  int32 biases read as float: {_input.IntegerBiases.Count}");
        if (_input.RestoredRelus.Count > 0) sb.AppendLine($"  Relu restored after (the model's zero point stood for it): {string.Join(", ", _input.RestoredRelus)}");
        if (_quantizedOutputs.Count > 0) sb.AppendLine($"  model outputs kept quantized as the model has them (model_output_type not set): {string.Join(", ", _quantizedOutputs)}");
        if (_unused.Count > 0) sb.AppendLine($"  model pairs no node reads quantized any more: {string.Join(", ", _unused)}");
        foreach (var (t, p) in _input.Activations.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            sb.AppendLine(string.Create(inv, $"  {t}: {PrecisionPlan.QTypeText(p.QType)} scale {p.Scales[0]:R} zero point {p.ZeroPoints[0]}"));
        foreach (var w in _warnings) sb.AppendLine("  " + w);
        return sb.ToString();
    }
}
