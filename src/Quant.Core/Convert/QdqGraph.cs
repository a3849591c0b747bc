using Quant.Core.Diagnostics;
using Quant.Engine.Kernels;
using Quant.Onnx;

namespace Quant.Core.Conversion;

/// <summary>The parameters of one QuantizeLinear or DequantizeLinear node, as read from the qat model.</summary>
internal sealed record QdqParams(ElementType Type, float[] Scales, int[] ZeroPoints, int? Axis)
{
    public bool PerChannel => Scales.Length > 1;
    public IntFormat Format => new(Type, Scales[0], ZeroPoints[0]);

    public bool SameAs(QdqParams o) =>
        Type == o.Type && Axis == o.Axis && Scales.Length == o.Scales.Length && ZeroPoints.SequenceEqual(o.ZeroPoints) &&
        Scales.Zip(o.Scales).All(p => BitConverter.SingleToInt32Bits(p.First) == BitConverter.SingleToInt32Bits(p.Second));

    public override string ToString() => PerChannel
        ? $"{Type.OnnxName()} with {Scales.Length} scales along axis {Axis}"
        : $"{Type.OnnxName()}(s={ConvertErrors.Num(Scales[0])}, z={ZeroPoints[0]})";
}

/// <summary>
/// The QDQ structure of a qat model (docs/quantization-spec.md §3.1–3.3, §3.6): validates every QuantizeLinear /
/// DequantizeLinear node, maps foreign uint8/uint16 encodings onto int8/int16 with shifted zero points (rewriting the
/// graph in place, same real values bit for bit), folds float weights read through Q → DQ (P3) with the engine's own
/// Q_T, and answers which integer tensor stands behind a DequantizeLinear output.
/// </summary>
internal sealed class QdqGraph
{
    /// <summary>QOperator-format ops (spec §3.6): convert reads QDQ models only.</summary>
    private static readonly HashSet<string> QOperatorOps = new(StringComparer.Ordinal)
    {
        "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "QGemm", "QAttention",
        "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QOrderedMatMul", "QuantizeWithOrder", "DequantizeWithOrder",
    };

    private readonly OnnxModel _model;
    private readonly Graph _g;
    private readonly string _file;
    private readonly Dictionary<string, TensorData> _constants = new(StringComparer.Ordinal);
    private readonly Dictionary<Node, QdqParams> _params = [];
    private readonly Dictionary<string, IntegerInput> _integerOf = new(StringComparer.Ordinal);
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ValueInfo> _graphInputs = new(StringComparer.Ordinal);

    public QdqGraph(OnnxModel model, string modelFile)
    {
        _model = model;
        _g = model.Graph;
        _file = modelFile;
        foreach (var (k, v) in _g.Initializers) _constants[k] = v;
        foreach (var i in _g.Inputs) _graphInputs.TryAdd(i.Name, i);
        foreach (var n in _g.Nodes)
            if (n.OpType == "Constant" && n.IsDefaultDomain && n.GetTensor("value") is { } t && n.Outputs.Count == 1) _constants[n.Outputs[0]] = t;
        // PyTorch's exporter hands shared zero points and scales to Q/DQ nodes through Identity nodes: an Identity of a
        // constant is that constant (repeat until no chain grows; the graph order need not be topological).
        for (bool grew = true; grew;)
        {
            grew = false;
            foreach (var n in _g.Nodes)
                if (n.OpType == "Identity" && n.IsDefaultDomain && n.Inputs.Count == 1 && n.Outputs.Count == 1
                    && !_constants.ContainsKey(n.Outputs[0]) && _constants.TryGetValue(n.Inputs[0], out var c))
                { _constants[n.Outputs[0]] = c; grew = true; }
        }
        foreach (var n in _g.Nodes) { _names.Add(n.Name); foreach (var o in n.Outputs) _names.Add(o); }
        foreach (var k in _g.Initializers.Keys) _names.Add(k);
        foreach (var i in _g.Inputs) _names.Add(i.Name);
        RejectQOperator();
        foreach (var n in _g.Nodes) if (IsQ(n) || IsDq(n)) _params[n] = Read(n);
        CheckPairs();
        MapUnsigned();
        FindIntegerEdges();
    }

    public static bool IsQ(Node n) => n.OpType == "QuantizeLinear" && (n.IsDefaultDomain || n.Domain == "com.microsoft");
    public static bool IsDq(Node n) => n.OpType == "DequantizeLinear" && (n.IsDefaultDomain || n.Domain == "com.microsoft");

    /// <summary>The (mapped) parameters of a Q or DQ node.</summary>
    public QdqParams Params(Node qOrDq) => _params[qOrDq];

    /// <summary>The integer tensor behind <paramref name="dqOutput"/> (a DequantizeLinear output), or null.</summary>
    public IntegerInput? IntegerOf(string dqOutput) => _integerOf.GetValueOrDefault(dqOutput);

    /// <summary>A constant (initializer or Constant node output) by name.</summary>
    public TensorData? Constant(string name) => _constants.GetValueOrDefault(name);

    private QuantException Error(ErrorCode code, string message) => ConvertErrors.At(_file, code, message);

    private void RejectQOperator()
    {
        foreach (var n in _g.Nodes)
            if (QOperatorOps.Contains(n.OpType) || n.OpType.StartsWith("QLinear", StringComparison.Ordinal))
                throw Error(ErrorCode.ConvertQOperatorModel,
                    $"{n.Describe()} is a QOperator-format op; convert reads QDQ models (QuantizeLinear/DequantizeLinear around float ops): " +
                    "re-export the model in QDQ format (ONNX Runtime: quantize_static(..., quant_format=QuantFormat.QDQ))");
    }

    private QdqParams Read(Node n)
    {
        string what = $"{n.Describe()}";
        if (n.Inputs.Count < 2 || n.Inputs[1].Length == 0) throw Error(ErrorCode.ConvertMalformedQdq, $"{what} has no scale input; give it a scale initializer");
        var scaleT = Constant(n.Inputs[1]) ?? throw Error(ErrorCode.ConvertMalformedQdq,
            $"the scale '{n.Inputs[1]}' of {what} is computed at run time; convert needs it as an initializer (constant-fold the model first)");
        float[] scales = scaleT.Type switch
        {
            ElementType.Float => scaleT.As<float>().ToArray(),
            ElementType.Float16 => scaleT.As<Half>().ToArray().Select(h => (float)h).ToArray(),
            _ => throw Error(ErrorCode.ConvertUnsupportedQuantType, $"the scale '{n.Inputs[1]}' of {what} is {scaleT.Type.OnnxName()}; scales must be float or float16"),
        };
        if (scales.Length == 0) throw Error(ErrorCode.ConvertMalformedQdq, $"the scale '{n.Inputs[1]}' of {what} is empty");
        for (int i = 0; i < scales.Length; i++)
            if (!(scales[i] > 0) || !float.IsFinite(scales[i]))
                throw Error(ErrorCode.ConvertInvalidScale,
                    $"the scale '{n.Inputs[1]}' of {what} is {ConvertErrors.Num(scales[i])}{(scales.Length > 1 ? $" at channel {i}" : "")}" +
                    $" (tensor '{n.Inputs[0]}'); a scale must be positive and finite: re-calibrate or fix the exporter that wrote it");
        if (n.GetInt("block_size", 0) > 0)
            throw Error(ErrorCode.ConvertUnsupportedQuantType, $"{what} uses block quantization (block_size {n.GetInt("block_size", 0)}) on '{n.Inputs[0]}'; the integer contract has per-tensor activations and per-channel weights: re-export without block_size");
        if (IsQ(n) && n.GetInt("saturate", 1) == 0)
            throw Error(ErrorCode.ConvertUnsupportedQuantType, $"{what} has saturate = 0 on '{n.Inputs[0]}'; only saturating int8/int16 quantization is supported");
        TensorData? zpT = n.InputOrNull(2) is { } zpName
            ? Constant(zpName) ?? throw Error(ErrorCode.ConvertMalformedQdq, $"the zero point '{zpName}' of {what} is computed at run time; convert needs it as an initializer")
            : null;
        ElementType type = zpT?.Type ?? (IsQ(n)
            ? (n.GetInt("output_dtype", 0) is var od and > 0 ? (ElementType)od : ElementType.UInt8)
            : Constant(n.Inputs[0])?.Type ?? _graphInputs.GetValueOrDefault(n.Inputs[0])?.Type ?? ElementType.UInt8);
        bool bias = IsDq(n) && type == ElementType.Int32 && Constant(n.Inputs[0]) is not null;
        if (type is not (ElementType.Int8 or ElementType.UInt8 or ElementType.Int16 or ElementType.UInt16) && !bias)
            throw Error(ErrorCode.ConvertUnsupportedQuantType,
                $"{what} quantizes '{n.Inputs[0]}' as {TypeName(type)}; the integer contract supports int8 and int16 (uint8 and uint16 are mapped onto them): re-export with int8/int16 (int32 only for a bias initializer)");
        int[] zps = new int[scales.Length];
        if (zpT is not null)
        {
            if (zpT.ElementCount != scales.Length)
                throw Error(ErrorCode.ConvertMalformedQdq, $"{what} has {scales.Length} scales but {zpT.ElementCount} zero points");
            for (int i = 0; i < zps.Length; i++) zps[i] = ReadInt(zpT, i);
        }
        int? axis = null;
        if (scales.Length > 1 || scaleT.Dims.Length == 1 && n.Has("axis"))
            axis = (int)n.GetInt("axis", 1);
        if (scales.Length == 1) axis = null;
        return new QdqParams(type, scales, zps, axis);
    }

    private static string TypeName(ElementType t) => Enum.IsDefined(t) ? t.OnnxName() : $"type code {(int)t} (int4/uint4/float8)";

    private static int ReadInt(TensorData t, int i) => t.Type switch
    {
        ElementType.Int8 => t.As<sbyte>()[i],
        ElementType.UInt8 => t.Raw[i],
        ElementType.Int16 => t.As<short>()[i],
        ElementType.UInt16 => t.As<ushort>()[i],
        ElementType.Int32 => t.As<int>()[i],
        _ => 0,
    };

    /// <summary>Every Q is read only by DequantizeLinear nodes (or is a graph output), with bitwise-equal parameters.</summary>
    private void CheckPairs()
    {
        var consumers = _g.Consumers();
        var producers = _g.Producers();
        foreach (var q in _g.Nodes.Where(IsQ))
        {
            var p = _params[q];
            bool weight = Constant(q.Inputs[0]) is not null;
            if (p.PerChannel && !weight)
                throw Error(ErrorCode.ConvertPerChannelActivation,
                    $"activation '{q.Inputs[0]}' is quantized per channel by {q.Describe()} (axis {p.Axis}, {p.Scales.Length} scales); activations need one scale per tensor: set model_config.activation.per_channel: false (or per-tensor activations in your exporter)");
            foreach (var r in consumers.GetValueOrDefault(q.Outputs[0]) ?? [])
            {
                if (!IsDq(r))
                    throw Error(ErrorCode.ConvertMalformedQdq,
                        $"{q.Describe()} output '{q.Outputs[0]}' is read by {r.Describe()}; a QuantizeLinear may only feed DequantizeLinear nodes or a graph output");
                var d = _params[r];
                if (!p.SameAs(d))
                    throw Error(ErrorCode.ConvertMalformedQdq,
                        $"the pair {q.Describe()} → {r.Describe()} on '{q.Inputs[0]}' has different parameters ({p} vs {d}); a Q/DQ pair needs the same scale, zero point, type and axis");
            }
        }
        foreach (var d in _g.Nodes.Where(IsDq))
        {
            var p = _params[d];
            bool fromQ = producers.TryGetValue(d.Inputs[0], out var prod) && IsQ(prod);
            if (p.PerChannel && Constant(d.Inputs[0]) is null && !(fromQ && Constant(prod!.Inputs[0]) is not null))
                throw Error(ErrorCode.ConvertPerChannelActivation,
                    $"activation '{d.Inputs[0]}' is dequantized per channel by {d.Describe()} (axis {p.Axis}, {p.Scales.Length} scales); activations need one scale per tensor: set model_config.activation.per_channel: false");
        }
    }

    private string Unique(string hint)
    {
        if (_names.Add(hint)) return hint;
        for (int k = 1; ; k++)
            if (_names.Add($"{hint}_{k}")) return $"{hint}_{k}";
    }

    /// <summary>
    /// Spec §3.3: uint8 (uint16) activations become int8 (int16) with zero point z − 128 (z − 32768), and integer
    /// initializers read through DQ are shifted the same way; the real values are unchanged bit for bit. Tensors the
    /// graph's interface carries (a uint8 graph input read by a DQ, a Q writing a graph output) keep their type.
    /// </summary>
    private void MapUnsigned()
    {
        var interfaceNames = new HashSet<string>(_g.Inputs.Select(i => i.Name).Concat(_g.Outputs.Select(o => o.Name)), StringComparer.Ordinal);
        var consumers = _g.Consumers();
        var shiftedZp = new Dictionary<(string, ElementType), string>();
        var shiftedInit = new Dictionary<string, string>(StringComparer.Ordinal);
        // A Q that writes a graph output keeps its type; so do the DQs reading it.
        var keep = new HashSet<Node>();
        foreach (var q in _g.Nodes.Where(IsQ))
            if (interfaceNames.Contains(q.Outputs[0]))
            {
                keep.Add(q);
                foreach (var r in consumers.GetValueOrDefault(q.Outputs[0]) ?? []) keep.Add(r);
            }
        foreach (var n in _g.Nodes.Where(n => IsQ(n) || IsDq(n)))
        {
            var p = _params[n];
            if (p.Type is not (ElementType.UInt8 or ElementType.UInt16) || keep.Contains(n)) continue;
            if (IsDq(n) && Constant(n.Inputs[0]) is null && _graphInputs.ContainsKey(n.Inputs[0])) continue;
            var signed = p.Type == ElementType.UInt8 ? ElementType.Int8 : ElementType.Int16;
            int offset = p.Type == ElementType.UInt8 ? 128 : 32768;
            var zps = p.ZeroPoints.Select(z => z - offset).ToArray();
            // The shifted zero point, shared by every node that shared the original one.
            var key = (n.InputOrNull(2) ?? "", p.Type);
            if (!shiftedZp.TryGetValue(key, out var zpName) || key.Item1.Length == 0)
            {
                zpName = Unique((n.InputOrNull(2) ?? n.Name + "_zero_point") + "_signed");
                long[] dims = Constant(n.Inputs[1])!.Dims;
                _g.Initializers[zpName] = signed == ElementType.Int8
                    ? TensorData.From(zpName, signed, dims, zps.Select(z => (sbyte)z).ToArray().AsSpan())
                    : TensorData.From(zpName, signed, dims, zps.Select(z => (short)z).ToArray().AsSpan());
                _constants[zpName] = _g.Initializers[zpName];
                if (key.Item1.Length > 0) shiftedZp[key] = zpName;
            }
            while (n.Inputs.Count < 3) n.Inputs.Add("");
            n.Inputs[2] = zpName;
            n.Attributes.Remove("output_dtype");
            if (IsDq(n) && Constant(n.Inputs[0]) is { } init)
            {
                if (!shiftedInit.TryGetValue(init.Name, out var name))
                {
                    name = Unique(init.Name + "_signed");
                    var src = p.Type == ElementType.UInt8 ? init.Raw.Select(b => b - 128).ToArray() : init.As<ushort>().ToArray().Select(v => v - 32768).ToArray();
                    _g.Initializers[name] = signed == ElementType.Int8
                        ? TensorData.From(name, signed, init.Dims, src.Select(v => (sbyte)v).ToArray().AsSpan())
                        : TensorData.From(name, signed, init.Dims, src.Select(v => (short)v).ToArray().AsSpan());
                    _constants[name] = _g.Initializers[name];
                    shiftedInit[init.Name] = name;
                    _fileTensor[name] = init.Name;
                }
                n.Inputs[0] = name;
            }
            if (_g.ValueInfos.TryGetValue(n.Outputs[0], out var vi) && IsQ(n)) vi.Type = signed;
            _params[n] = p with { Type = signed, ZeroPoints = zps };
            _storedZeroPointOffset[n] = offset;
        }
    }

    // For messages: a mapped unsigned initializer's name in the user's file, and the offset between a mapped Q/DQ's
    // zero points and the ones the file stores (spec §3.3), so errors quote the file, not our mapping.
    private readonly Dictionary<string, string> _fileTensor = new(StringComparer.Ordinal);
    private readonly Dictionary<Node, int> _storedZeroPointOffset = [];

    /// <summary>P1 (Q → DQ), P2 (integer initializer → DQ), P3 (float initializer → Q → DQ, folded), P4 (int32 bias),
    /// and integer graph inputs read by a DQ (P8).</summary>
    private void FindIntegerEdges()
    {
        var producers = _g.Producers();
        var folded = new Dictionary<Node, string>();
        foreach (var d in _g.Nodes.Where(IsDq).ToList())
        {
            var p = _params[d];
            if (p.Type is ElementType.UInt8 or ElementType.UInt16) continue; // kept at the graph interface
            var src = d.Inputs[0];
            IntegerInput? edge = null;
            if (producers.TryGetValue(src, out var q) && IsQ(q))
            {
                if (Constant(q.Inputs[0]) is { Type: ElementType.Float } w)
                {
                    if (!folded.TryGetValue(q, out var name)) folded[q] = name = Fold(q, w);
                    edge = Edge(name, p, d, constant: true);
                }
                else edge = Edge(src, p, d, constant: false);
            }
            else if (Constant(src) is not null) edge = Edge(src, p, d, constant: true);
            else if (_graphInputs.ContainsKey(src)) edge = Edge(src, p, d, constant: false);
            if (edge is not null) _integerOf[d.Outputs[0]] = edge;
        }
    }

    private IntegerInput Edge(string tensor, QdqParams p, Node dq, bool constant) => new(tensor, p.Format)
    {
        IsConstant = constant, Scales = p.Scales, ZeroPoints = p.ZeroPoints, Axis = p.Axis, DequantizeNode = dq.Name,
        FileTensor = _fileTensor.GetValueOrDefault(tensor, tensor), StoredZeroPointOffset = _storedZeroPointOffset.GetValueOrDefault(dq),
    };

    /// <summary>P3: the integers the qat run's QuantizeLinear gives for a float initializer, by the engine's own Q_T.</summary>
    private string Fold(Node q, TensorData w)
    {
        var p = _params[q];
        var (qmin, qmax) = QuantizeLinearKernels.Range(p.Type);
        var values = w.As<float>();
        var channel = new Calibration.ChannelIndex(w.Dims, p.Axis);
        var ints = new int[values.Length];
        for (int i = 0; i < ints.Length; i++)
        {
            int c = channel.Of(i);
            ints[i] = QuantizeRun.Scalar(values[i], p.Scales[c], p.ZeroPoints[c], qmin, qmax);
        }
        var name = Unique(q.Outputs[0] + "_folded");
        _g.Initializers[name] = p.Type == ElementType.Int8
            ? TensorData.From(name, ElementType.Int8, w.Dims, ints.Select(v => (sbyte)v).ToArray().AsSpan())
            : TensorData.From(name, ElementType.Int16, w.Dims, ints.Select(v => (short)v).ToArray().AsSpan());
        _constants[name] = _g.Initializers[name];
        return name;
    }

    /// <summary>Reserves a name in the graph (for the emitter).</summary>
    public string Reserve(string hint) => Unique(hint);

    public bool IsTaken(string name) => _names.Contains(name);
}
