using System.Globalization;
using Quant.Core.Calibration;
using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Core.Precision;
using Quant.Onnx;
using Quant.Onnx.Shapes;

namespace Quant.Core.Export;

/// <summary>
/// Writes the fake-quantized QDQ model (<c>NAME.qat.onnx</c>, the seeds' qat.bc equivalent): standard ONNX that
/// ONNX Runtime runs as it is.
/// <list type="bullet">
/// <item>int8/int16 activation edges: one QuantizeLinear → DequantizeLinear pair per (tensor, qtype), shared by
/// every consumer reading the tensor in that qtype; nothing between a GEMM-type op and an activation fused into it.</item>
/// <item>int8/int16 weights: stored pre-quantized as an integer initializer read through DequantizeLinear,
/// per channel along the output-channel axis (<see cref="WeightAxis"/>) when the weight params say so.</item>
/// <item>Biases of Conv/ConvTranspose/Gemm stay float (the convert stage quantizes them to int32 with
/// scale_input × scale_weight).</item>
/// <item>float16 edges: Cast(to float16) → Cast(to float) pairs, so the node sees float16-rounded values while
/// it computes in float (every runtime runs it); float16 outputs are rounded the same way. Float16 weights are
/// stored as float16 initializers read through a Cast.</item>
/// <item>float32 nodes are untouched. Integer outputs are only quantized where they are model outputs; inside
/// the graph the consumers' inputs decide.</item>
/// </list>
/// Opset: 21 when any edge is int16 (int16 QuantizeLinear), otherwise at least 13 (per-channel DequantizeLinear);
/// older nodes are rewritten to the new opset's form. Names of inserted values and nodes derive from the tensor
/// they convert (<c>t_q</c>/<c>t_dq</c>, <c>t_q16</c>/<c>t_dq16</c>, <c>t_scale</c>, <c>t_zero_point</c>,
/// <c>t_fp16</c>/<c>t_fp32</c>), so the same inputs give byte-identical files.
/// </summary>
public static class QdqExporter
{
    /// <summary>The file name of the exported model for a model called <paramref name="name"/>.</summary>
    public static string FileName(string name) => name + ".qat.onnx";

    /// <summary>
    /// The axis a weight input is quantized per channel along (the output channels), or null for per-tensor:
    /// Conv axis 0 ([M, C/g, k...]), ConvTranspose axis 1 ([C, M/g, k...]), MatMul B the last axis (N),
    /// Gemm B axis 0 with transB=1 ([N, K]) and 1 otherwise ([K, N]); constant operands of other ops per tensor.
    /// </summary>
    public static int? WeightAxis(Node node, int inputIndex, int rank) => (node.OpType, inputIndex) switch
    {
        ("Conv", 1) => 0,
        ("ConvTranspose", 1) => 1,
        ("MatMul", 1) when rank >= 2 => rank - 1,
        ("Gemm", 1) => node.GetInt("transB", 0) != 0 ? 0 : 1,
        _ => null,
    };

    /// <summary>
    /// Builds the QDQ model. <paramref name="prepared"/> is not modified.
    /// </summary>
    /// <param name="prepared">The prepared float model the plan was made for.</param>
    /// <param name="plan">Its precision plan.</param>
    /// <param name="activations">Quantization parameters per activation tensor name (graph inputs included).
    /// Params for another integer qtype are rescaled (same real range).</param>
    /// <param name="weights">Quantization parameters per weight initializer name; a channel whose bias would not fit
    /// int32 at input x weight scale is exported with the raised scale <see cref="Int32BiasFit"/> gives it.</param>
    /// <exception cref="QuantException">QB4002: missing parameters, or a node the opset upgrade cannot rewrite</exception>
    public static OnnxModel Export(OnnxModel prepared, PrecisionPlan plan,
        IReadOnlyDictionary<string, QuantParams> activations, IReadOnlyDictionary<string, QuantParams> weights)
    {
        if (!ReferenceEquals(plan.Model, prepared)) throw new ArgumentException("the plan was made for another model", nameof(plan));
        var where = SourcePosition.InFile(prepared.SourcePath ?? "model");
        try
        {
            // Every bias must stay representable as int32 at input x weight scale (Int32BiasFit): enforced here,
            // where QDQ models are written, so no caller can produce one that integer runtimes mis-compute.
            return new Builder(prepared, plan, activations, Int32BiasFit.Apply(prepared, plan, activations, weights).Weights).Build();
        }
        catch (InvalidOperationException e)
        {
            throw new QuantException(ErrorCode.ExportFailed, where, e.Message, e);
        }
    }

    /// <summary>Exports and saves <c>DIR/NAME.qat.onnx</c>; returns the path.</summary>
    public static string Save(OnnxModel prepared, PrecisionPlan plan, IReadOnlyDictionary<string, QuantParams> activations,
        IReadOnlyDictionary<string, QuantParams> weights, string directory, string name)
    {
        var model = Export(prepared, plan, activations, weights);
        var path = Path.Combine(directory, FileName(name));
        OnnxModelWriter.Save(model, path);
        return path;
    }

    /// <summary>
    /// The same real range expressed in another integer qtype: symmetric params keep zero point 0 and scale the
    /// threshold (scale × qmax); asymmetric ones keep [min, max].
    /// </summary>
    public static QuantParams ConvertTo(QuantParams p, QType target)
    {
        if (p.QType == target) return p;
        var (smin, smax) = QuantParams.Range(p.QType);
        var (tmin, tmax) = QuantParams.Range(target);
        var scales = new float[p.Scales.Length];
        var zps = new int[p.Scales.Length];
        for (int c = 0; c < scales.Length; c++)
        {
            int zp = p.ZeroPoints.Length == 0 ? 0 : p.ZeroPoints[p.ZeroPoints.Length == 1 ? 0 : c];
            if (zp == 0)
            {
                scales[c] = (float)((double)p.Scales[c] * smax / tmax);
                continue;
            }
            double lo = (smin - zp) * (double)p.Scales[c], hi = (smax - zp) * (double)p.Scales[c];
            double s = (hi - lo) / (tmax - tmin);
            scales[c] = (float)s;
            zps[c] = (int)Math.Clamp(Math.Round(tmin - lo / s, MidpointRounding.ToEven), tmin, tmax);
        }
        return p with { QType = target, Scales = scales, ZeroPoints = zps };
    }

    private sealed class Builder
    {
        private readonly OnnxModel _src;
        private readonly PrecisionPlan _plan;
        private readonly IReadOnlyDictionary<string, QuantParams> _act;
        private readonly IReadOnlyDictionary<string, QuantParams> _weights;
        private readonly OnnxModel _out;
        private readonly Graph _g;
        private readonly HashSet<string> _names = new(StringComparer.Ordinal);
        private readonly List<Node> _nodes = [];
        /// <summary>Converted values by (source tensor, qtype).</summary>
        private readonly Dictionary<(string, QType), string> _converted = [];
        /// <summary>What consumers read for a tensor whose producer rounded it (float16 outputs, quantized model outputs).</summary>
        private readonly Dictionary<string, (string Name, QType Q)> _produced = new(StringComparer.Ordinal);
        /// <summary>Original tensor name of inserted values (for rank lookups by the opset upgrade).</summary>
        private readonly Dictionary<string, string> _origin = new(StringComparer.Ordinal);
        private readonly HashSet<string> _replacedWeights = new(StringComparer.Ordinal);
        private readonly long _opset;

        public Builder(OnnxModel src, PrecisionPlan plan, IReadOnlyDictionary<string, QuantParams> act, IReadOnlyDictionary<string, QuantParams> weights)
        {
            _src = src;
            _plan = plan;
            _act = act;
            _weights = weights;
            var sg = src.Graph;
            _g = new Graph { Name = sg.Name, DocString = sg.DocString };
            _g.Inputs.AddRange(sg.Inputs);
            _g.Outputs.AddRange(sg.Outputs);
            foreach (var (k, v) in sg.ValueInfos) _g.ValueInfos[k] = v;
            foreach (var (k, v) in sg.Initializers) _g.Initializers[k] = v;
            _out = new OnnxModel(_g)
            {
                IrVersion = src.IrVersion, ProducerName = src.ProducerName, ProducerVersion = src.ProducerVersion,
                Domain = src.Domain, ModelVersion = src.ModelVersion, DocString = src.DocString, SourcePath = src.SourcePath,
            };
            foreach (var (k, v) in src.Metadata) _out.Metadata[k] = v;
            foreach (var (k, v) in src.Opsets) _out.Opsets[k] = v;

            foreach (var i in sg.Inputs) _names.Add(i.Name);
            foreach (var o in sg.Outputs) _names.Add(o.Name);
            foreach (var k in sg.Initializers.Keys) _names.Add(k);
            foreach (var k in sg.ValueInfos.Keys) _names.Add(k);
            foreach (var n in sg.Nodes)
            {
                _names.Add(n.Name);
                foreach (var o in n.Outputs) _names.Add(o);
            }
            long current = src.OpsetFor("");
            _opset = Math.Max(current, plan.UsesInt16 ? 21 : 13);
        }

        private string Unique(string baseName)
        {
            if (_names.Add(baseName)) return baseName;
            for (int k = 1; ; k++)
            {
                var n = string.Create(CultureInfo.InvariantCulture, $"{baseName}_{k}");
                if (_names.Add(n)) return n;
            }
        }

        public OnnxModel Build()
        {
            var sg = _src.Graph;
            var ranks = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var (name, vi) in ShapeInference.Run(_src)) if (vi.Shape is not null) ranks[name] = vi.Shape.Length;
            foreach (var i in sg.Inputs) if (i.Shape is not null) ranks[i.Name] = i.Shape.Length;
            var upgrader = new OpsetUpgrader(_src.OpsetFor(""), _opset, _g, Unique,
                name => ranks.TryGetValue(_origin.GetValueOrDefault(name, name), out var r) ? r : null);
            var graphOutputs = new HashSet<string>(sg.Outputs.Select(o => o.Name), StringComparer.Ordinal);

            foreach (var original in sg.TopologicalOrder())
            {
                var np = _plan[original];
                var node = Copy(original);
                if (!np.ShapeOnly)
                {
                    foreach (var ip in np.Inputs) node.Inputs[ip.Index] = Input(np, ip);
                    PrepareOutputs(np, node, graphOutputs);
                }
                else
                {
                    for (int i = 0; i < node.Inputs.Count; i++)
                        if (node.Inputs[i].Length > 0 && _produced.TryGetValue(node.Inputs[i], out var p)) node.Inputs[i] = p.Name;
                }
                if (!np.ShapeOnly && np.Inputs.FirstOrDefault(i => i.ErrorCompensation) is { } ec) EmitCompensated(np, node, ec, upgrader);
                else _nodes.AddRange(upgrader.Upgrade(node));
                if (!np.ShapeOnly) FinishOutputs(np);
            }

            _g.Nodes.AddRange(_nodes);
            RemoveReplacedWeights();
            _out.Opsets[""] = _opset;
            // IR versions that introduced opset 13 and 21.
            _out.IrVersion = Math.Max(_out.IrVersion, _opset >= 21 ? 10 : 7);
            return _out;
        }

        private static Node Copy(Node n)
        {
            var c = new Node(n.Name, n.OpType, n.Domain, n.Inputs, n.Outputs) { DocString = n.DocString };
            foreach (var (k, v) in n.Attributes) c.Attributes[k] = v;
            return c;
        }

        /// <summary>The value the node reads at input <paramref name="ip"/>.</summary>
        private string Input(NodePrecision np, InputPrecision ip)
        {
            var t = ip.Tensor;
            if (t.Length == 0) return t;
            var (read, producedQ) = _produced.TryGetValue(t, out var p) ? p : (t, QType.Float32);
            if (ip.Fused || ip.QType is null or QType.Float32) return read;
            var q = ip.QType.Value;
            if (producedQ == q) return read;
            if (_converted.TryGetValue((t, q), out var done)) return done;

            string result;
            if (ip.Role == InputRole.Weight)
                result = q == QType.Float16 ? WeightFp16(t) : WeightQdq(np, ip, q);
            else if (ip.Role == InputRole.Activation)
                result = q == QType.Float16 ? CastPair(read, t, null) : Qdq(read, t, q, Params(t, q, np), null);
            else
                return read;
            _converted[(t, q)] = result;
            return result;
        }

        private QuantParams Params(string tensor, QType q, NodePrecision np)
        {
            if (!_act.TryGetValue(tensor, out var p))
                throw new InvalidOperationException(
                    $"no calibration parameters for tensor '{tensor}', which {np.Node.Describe()} reads or writes as {PrecisionPlan.QTypeText(q)}");
            return ConvertTo(p, q);
        }

        private readonly Dictionary<int, string> _pendingOutputs = [];

        /// <summary>Renames graph outputs that get converted, so that the converted value keeps the output's name.</summary>
        private void PrepareOutputs(NodePrecision np, Node node, HashSet<string> graphOutputs)
        {
            _pendingOutputs.Clear();
            foreach (var op in np.Outputs)
            {
                if (op.Tensor.Length == 0 || op.QType is null or QType.Float32) continue;
                if (op.QType != QType.Float16 && !graphOutputs.Contains(op.Tensor)) continue;
                if (graphOutputs.Contains(op.Tensor))
                {
                    var raw = Unique(op.Tensor + "_float");
                    _origin[raw] = op.Tensor;
                    node.Outputs[op.Index] = raw;
                    _pendingOutputs[op.Index] = raw;
                }
                else
                {
                    _pendingOutputs[op.Index] = op.Tensor;
                }
            }
        }

        private void FinishOutputs(NodePrecision np)
        {
            foreach (var (index, produced) in _pendingOutputs.OrderBy(kv => kv.Key))
            {
                var op = np.Outputs[index];
                var t = op.Tensor;
                var q = op.QType!.Value;
                string? final = produced == t ? null : t;
                var read = q == QType.Float16 ? CastPair(produced, t, final) : Qdq(produced, t, q, Params(t, q, np), final);
                _produced[t] = (read, q);
            }
        }

        private string CastPair(string source, string tensor, string? finalName)
        {
            var half = Unique(tensor + "_fp16");
            var back = finalName ?? Unique(tensor + "_fp32");
            _origin[half] = tensor;
            _origin[back] = tensor;
            var c1 = new Node(half, "Cast", "", [source], [half]);
            c1.Set(AttributeValue.Of("to", (long)ElementType.Float16));
            var c2 = new Node(finalName is null ? back : Unique(back + "_cast"), "Cast", "", [half], [back]);
            c2.Set(AttributeValue.Of("to", (long)ElementType.Float));
            _nodes.Add(c1);
            _nodes.Add(c2);
            return back;
        }

        private string Qdq(string source, string tensor, QType q, QuantParams p, string? finalName)
        {
            string sfx = q == QType.Int16 ? "16" : "";
            var (scale, zp) = AddScaleAndZeroPoint(tensor, sfx, q, p);
            var qName = Unique($"{tensor}_q{sfx}");
            var dqName = finalName ?? Unique($"{tensor}_dq{sfx}");
            _origin[qName] = tensor;
            _origin[dqName] = tensor;
            var qn = new Node(qName, "QuantizeLinear", "", [source, scale, zp], [qName]);
            var dqn = new Node(finalName is null ? dqName : Unique(dqName + "_dq"), "DequantizeLinear", "", [qName, scale, zp], [dqName]);
            if (p.Axis is { } axis)
            {
                qn.Set(AttributeValue.Of("axis", (long)axis));
                dqn.Set(AttributeValue.Of("axis", (long)axis));
            }
            _nodes.Add(qn);
            _nodes.Add(dqn);
            return dqName;
        }

        private (string Scale, string ZeroPoint) AddScaleAndZeroPoint(string tensor, string sfx, QType q, QuantParams p)
        {
            int channels = p.Scales.Length;
            if (channels == 0 || (p.Axis is null && channels != 1))
                throw new InvalidOperationException($"quantization parameters of '{tensor}' have {channels} scales but {(p.Axis is null ? "per-tensor needs 1" : "per-channel needs at least 1")}");
            foreach (var s in p.Scales)
                if (!(s > 0) || !float.IsFinite(s))
                    throw new InvalidOperationException($"quantization parameters of '{tensor}' have scale {s.ToString(CultureInfo.InvariantCulture)}; scales must be finite and positive");
            long[] dims = p.Axis is null ? [] : [channels];
            var scaleName = Unique($"{tensor}_scale{sfx}");
            var zpName = Unique($"{tensor}_zero_point{sfx}");
            _g.Initializers[scaleName] = TensorData.FromFloats(scaleName, dims, p.Scales);
            var zps = new int[channels];
            for (int c = 0; c < channels; c++) zps[c] = p.ZeroPoints.Length == 0 ? 0 : p.ZeroPoints[p.ZeroPoints.Length == 1 ? 0 : c];
            _g.Initializers[zpName] = q == QType.Int8
                ? TensorData.From(zpName, ElementType.Int8, dims, zps.Select(z => (sbyte)z).ToArray().AsSpan())
                : TensorData.From(zpName, ElementType.Int16, dims, zps.Select(z => (short)z).ToArray().AsSpan());
            return (scaleName, zpName);
        }

        private string WeightQdq(NodePrecision np, InputPrecision ip, QType q)
        {
            var name = ip.Tensor;
            var w = _src.Graph.Initializers[name];
            if (!_weights.TryGetValue(name, out var p))
                throw new InvalidOperationException($"no quantization parameters for weight '{name}' of {np.Node.Describe()}");
            p = ConvertTo(p, q);
            int? expected = WeightAxis(np.Node, ip.Index, w.Dims.Length);
            if (p.Axis is { } axis)
            {
                if (expected is null || axis != expected || p.Scales.Length != w.Dims[axis])
                    throw new InvalidOperationException(
                        $"weight '{name}' of {np.Node.Describe()} has per-channel parameters along axis {axis} with {p.Scales.Length} scales; " +
                        (expected is null ? "this input is quantized per tensor" : $"expected axis {expected} with {w.Dims[expected.Value]} channels"));
            }
            string sfx = q == QType.Int16 ? "16" : "";
            var (scale, zp) = AddScaleAndZeroPoint(name, sfx, q, p);
            var qName = Unique($"{name}_q{sfx}");
            _g.Initializers[qName] = QuantizeWeight(qName, w, p, q);
            var dqName = Unique($"{name}_dq{sfx}");
            var dq = new Node(dqName, "DequantizeLinear", "", [qName, scale, zp], [dqName]);
            if (p.Axis is { } a) dq.Set(AttributeValue.Of("axis", (long)a));
            _nodes.Add(dq);
            _replacedWeights.Add(name);
            return dqName;
        }

        /// <summary>
        /// Error compensation: <paramref name="node"/> (already reading the high int8 weight) writes NAME_split_high, a copy
        /// named NODE_split_low reads the residual low weight over the same input (no bias), and an Add writes the
        /// node's original output.
        /// </summary>
        private void EmitCompensated(NodePrecision np, Node node, InputPrecision ec, OpsetUpgrader upgrader)
        {
            var output = node.Outputs[0];
            var origin = _origin.GetValueOrDefault(output, output);
            var high = Unique(origin + "_split_high");
            var low = Unique(origin + "_split_low");
            _origin[high] = origin;
            _origin[low] = origin;
            node.Outputs[0] = high;
            var lowNode = new Node(Unique(ErrorCompensationNames.LowNode(np.Name)), node.OpType, node.Domain,
                node.Inputs.Take(2).ToList(), [low]) { DocString = node.DocString };
            foreach (var (k, v) in node.Attributes) lowNode.Attributes[k] = v;
            lowNode.Inputs[ec.Index] = LowWeight(np, ec);
            _nodes.AddRange(upgrader.Upgrade(node));
            _nodes.AddRange(upgrader.Upgrade(lowNode));
            _nodes.Add(new Node(Unique(ErrorCompensationNames.AddNode(np.Name)), "Add", "", [high, low], [output]));
        }

        /// <summary>The residual of an ec weight as an int8 initializer read through DequantizeLinear (<c>w_split_low_q</c>).</summary>
        private string LowWeight(NodePrecision np, InputPrecision ip)
        {
            var name = ip.Tensor;
            if (!_weights.TryGetValue(name, out var p))
                throw new InvalidOperationException($"no quantization parameters for weight '{name}' of {np.Node.Describe()}");
            var split = ErrorCompensation.Of(_src.Graph.Initializers[name], ConvertTo(p, QType.Int8), name + "_split_low");
            var (scale, zp) = AddScaleAndZeroPoint(name + "_split_low", "", QType.Int8, split.Low);
            var qName = Unique($"{name}_split_low_q");
            _g.Initializers[qName] = QuantizeWeight(qName, split.Residual, split.Low, QType.Int8);
            var dqName = Unique($"{name}_split_low_dq");
            var dq = new Node(dqName, "DequantizeLinear", "", [qName, scale, zp], [dqName]);
            if (split.Low.Axis is { } a) dq.Set(AttributeValue.Of("axis", (long)a));
            _nodes.Add(dq);
            return dqName;
        }

        /// <summary>q = clamp(round_half_even(w / scale) + zero_point), as QuantizeLinear computes it.</summary>
        internal static TensorData QuantizeWeight(string name, TensorData w, QuantParams p, QType q)
        {
            if (w.Type != ElementType.Float) throw new InvalidOperationException($"weight '{w.Name}' is {w.Type.OnnxName()}, not float");
            var values = w.As<float>();
            var (qmin, qmax) = QuantParams.Range(q);
            var channel = new ChannelIndex(w.Dims, p.Axis);
            var result = new int[values.Length];
            for (int i = 0; i < values.Length; i++)
            {
                int c = channel.Of(i);
                int zp = p.ZeroPoints.Length == 0 ? 0 : p.ZeroPoints[p.ZeroPoints.Length == 1 ? 0 : c];
                float scaled = values[i] / p.Scales[c];
                result[i] = (int)Math.Clamp(MathF.Round(scaled, MidpointRounding.ToEven) + zp, qmin, qmax);
            }
            return q == QType.Int8
                ? TensorData.From(name, ElementType.Int8, w.Dims, result.Select(v => (sbyte)v).ToArray().AsSpan())
                : TensorData.From(name, ElementType.Int16, w.Dims, result.Select(v => (short)v).ToArray().AsSpan());
        }

        private string WeightFp16(string name)
        {
            var w = _src.Graph.Initializers[name];
            if (w.Type != ElementType.Float) return name;
            var halfName = Unique(name + "_fp16");
            var src = w.As<float>();
            var halves = new Half[src.Length];
            for (int i = 0; i < src.Length; i++) halves[i] = (Half)src[i];
            _g.Initializers[halfName] = TensorData.From<Half>(halfName, ElementType.Float16, w.Dims, halves);
            var back = Unique(name + "_fp32");
            var cast = new Node(back, "Cast", "", [halfName], [back]);
            cast.Set(AttributeValue.Of("to", (long)ElementType.Float));
            _nodes.Add(cast);
            _replacedWeights.Add(name);
            return back;
        }

        /// <summary>Drops float weights that every reader now reads in quantized or float16 form.</summary>
        private void RemoveReplacedWeights()
        {
            var read = new HashSet<string>(StringComparer.Ordinal);
            foreach (var n in _g.Nodes) foreach (var i in n.Inputs) read.Add(i);
            foreach (var n in _g.Nodes)
                foreach (var a in n.Attributes.Values)
                    foreach (var sub in a.Kind == AttributeKind.Graph ? [a.Graph!] : a.Graphs)
                        foreach (var r in sub.OuterScopeReads()) read.Add(r);
            foreach (var o in _g.Outputs) read.Add(o.Name);
            foreach (var w in _replacedWeights.Order(StringComparer.Ordinal))
            {
                if (read.Contains(w)) continue;
                _g.Initializers.Remove(w);
                _g.Inputs.RemoveAll(i => i.Name == w);
                _g.ValueInfos.Remove(w);
            }
        }
    }
}
