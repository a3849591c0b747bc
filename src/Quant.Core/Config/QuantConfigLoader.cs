using System.Globalization;
using System.Text.RegularExpressions;
using Quant.Core.Diagnostics;
using Quant.Onnx;
using YamlDotNet.RepresentationModel;

namespace Quant.Core.Config;

/// <summary>
/// Reads a quantization config (YAML, or JSON, which the YAML parser reads as flow YAML) into a
/// <see cref="QuantConfig"/>. Strict: unknown keys, wrong types and invalid values are
/// <see cref="QuantException"/>s at the 1-based line/column of the offending key or value. Checks that need
/// the model (node names, op types, subgraph reachability, input names) happen in later stages, which use
/// the positions recorded here. The schema is documented in docs/config-reference.md.
/// </summary>
public static partial class QuantConfigLoader
{
    private static readonly string[] HmctSections = ["model_config", "op_config", "node_config", "subgraph_config"];
    private static readonly string[] TopKeys = ["preset", "inputs", "calibration", "checks", "tune", "quant_config", .. HmctSections];
    private static readonly string[] ModelKeys = ["all_node_type", "model_output_type", "activation", "weight", "layerwise_search"];
    private static readonly string[] ActivationKeys = ["calibration_type", "max_percentile", "per_channel", "asymmetric", "num_bin"];
    private static readonly string[] WeightKeys = ["per_channel", "bias_correction", "equalization"];
    private static readonly string[] BiasCorrectionKeys = ["metric", "num_sample"];
    /// <summary>bias_correction.metric values: how a layer's correction is judged (kept only where it improves it).</summary>
    public static readonly string[] BiasCorrectionMetrics = ["cosine", "mse", "mae"];
    private static readonly string[] OpKeys = ["qtype"];
    private static readonly string[] NodeKeyCandidates = ["qtype", "scale", "threshold", "input0", "input1", "input2", "input3"];
    private static readonly string[] SubgraphKeys = ["inputs", "outputs", "qtype"];
    private static readonly string[] InputKeys =
        ["data", "dtype", "shape", "layout", "scale", "mean", "std", "channel_order", .. ImagePreprocessingReader.Keys];
    private static readonly string[] CalibrationKeys = ["samples", "batch_size"];

    /// <summary>HMCT options we know of but do not implement: rejected with a reason rather than silently ignored.</summary>
    private static readonly Dictionary<string, string> UnsupportedModelKeys = new(StringComparer.Ordinal)
    {
        ["modelwise_search"] = "HMCT's model-wise calibration search is not implemented; list calibration_type candidates instead",
    };
    private static readonly Dictionary<string, string> UnsupportedActivationKeys = new(StringComparer.Ordinal)
    {
        ["max_num_bin"] = "histograms use num_bin bins; give num_bin (a list of candidates is accepted)",
    };

    private static readonly (string, QType)[] QTypes =
        [("int8", QType.Int8), ("int16", QType.Int16), ("float16", QType.Float16), ("float32", QType.Float32)];
    private static readonly (string, InputQ)[] InputQTypes =
        [("int8", new(QType.Int8)), ("int16", new(QType.Int16)), ("float16", new(QType.Float16)), ("float32", new(QType.Float32)), ("ec", new(null))];
    private static readonly (string, CalibrationMethod)[] Methods =
        [("default", CalibrationMethod.Default), ("max", CalibrationMethod.Max), ("percentile", CalibrationMethod.Percentile),
         ("kl", CalibrationMethod.Kl), ("mse", CalibrationMethod.Mse), ("fixed", CalibrationMethod.Fixed)];
    private static readonly (string, Preset)[] Presets =
        [("performance", Preset.Performance), ("base", Preset.Base), ("precision", Preset.Precision), ("upper_bound", Preset.UpperBound)];
    private static readonly (string, DataLayout)[] Layouts = [("NCHW", DataLayout.NCHW), ("NHWC", DataLayout.NHWC)];
    private static readonly (string, ChannelOrder)[] ChannelOrders =
        [("keep", ChannelOrder.Keep), ("bgr_to_rgb", ChannelOrder.BgrToRgb), ("rgb_to_bgr", ChannelOrder.RgbToBgr)];
    private static readonly (string, ElementType)[] DataTypes =
        [("float32", ElementType.Float), ("float16", ElementType.Float16), ("float64", ElementType.Double),
         ("int8", ElementType.Int8), ("uint8", ElementType.UInt8), ("int16", ElementType.Int16), ("uint16", ElementType.UInt16),
         ("int32", ElementType.Int32), ("uint32", ElementType.UInt32), ("int64", ElementType.Int64), ("uint64", ElementType.UInt64),
         ("bool", ElementType.Bool)];

    private readonly record struct InputQ(QType? QType);

    /// <summary>Reads the config file at <paramref name="path"/> (.yaml, .yml or .json).</summary>
    public static QuantConfig Load(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
            throw new QuantException(ErrorCode.ConfigFileNotFound, SourcePosition.InFile(full), $"config file '{path}' does not exist");
        string text;
        try { text = File.ReadAllText(full); }
        catch (IOException e) { throw new QuantException(ErrorCode.ConfigFileNotFound, SourcePosition.InFile(full), $"cannot read config file '{path}': {e.Message}", e); }
        return Parse(text, full);
    }

    /// <summary>Parses config text; <paramref name="sourceFile"/> is what diagnostics name and where data globs are relative to.</summary>
    public static QuantConfig Parse(string text, string sourceFile)
    {
        var r = new YamlReader(sourceFile);
        var stream = r.Load(text);
        if (stream.Documents.Count == 0) return new QuantConfig { SourceFile = sourceFile };
        if (stream.Documents.Count > 1)
            throw r.Error(ErrorCode.ConfigSyntax, stream.Documents[1].RootNode, "the file holds several YAML documents ('---'); a config is one document");
        var rootNode = stream.Documents[0].RootNode;
        if (rootNode is not YamlMappingNode && !YamlReader.IsNull(rootNode))
            throw r.Error(ErrorCode.ConfigWrongType, rootNode, $"a config is a mapping of sections ({string.Join(", ", TopKeys)}), got {YamlReader.Describe(rootNode)}");
        var root = r.Mapping(rootNode, "config");

        var sections = new Dictionary<string, (YamlScalarNode Key, YamlNode Value, string Path)>(StringComparer.Ordinal);
        foreach (var (key, keyNode, value) in r.Entries(root, "", TopKeys))
            sections[key] = (keyNode, value, key);
        if (sections.TryGetValue("quant_config", out var qc))
        {
            foreach (var (key, keyNode, value) in r.Entries(r.Mapping(qc.Value, "quant_config"), "quant_config", HmctSections))
            {
                if (sections.TryGetValue(key, out var top))
                    throw r.Error(ErrorCode.ConfigInvalidValue, keyNode,
                        $"quant_config.{key} repeats the top-level '{key}' at line {top.Key.Start.Line}; write it in one place");
                sections[key] = (keyNode, value, $"quant_config.{key}");
            }
        }

        YamlNode? Section(string name) => sections.TryGetValue(name, out var s) ? s.Value : null;
        string PathOf(string name) => sections[name].Path;

        Preset? preset = null;
        SourcePosition presetAt = default;
        if (Section("preset") is { } pn)
        {
            preset = r.Choice(pn, "preset", Presets);
            presetAt = r.At(pn);
        }

        YamlMappingNode? checks = null;
        SourcePosition checksAt = default;
        var checkRules = ChecksConfig.None;
        if (sections.TryGetValue("checks", out var cn))
        {
            checkRules = ChecksConfigReader.Read(r, cn.Key, cn.Value);
            checks = cn.Value as YamlMappingNode;
            checksAt = r.At(cn.Key);
        }

        return new QuantConfig
        {
            SourceFile = sourceFile,
            Model = Section("model_config") is { } m ? ReadModel(r, m, PathOf("model_config"), preset)
                : new ModelConfig { Activation = DefaultActivation(preset), Weight = DefaultWeight(preset) },
            OpTypes = Section("op_config") is { } o ? ReadOps(r, o, PathOf("op_config")) : new(StringComparer.Ordinal),
            Nodes = Section("node_config") is { } n ? ReadNodes(r, n, PathOf("node_config")) : new(StringComparer.Ordinal),
            Subgraphs = Section("subgraph_config") is { } s ? ReadSubgraphs(r, s, PathOf("subgraph_config")) : new(StringComparer.Ordinal),
            Preset = preset,
            PresetPosition = presetAt,
            Inputs = Section("inputs") is { } i ? ReadInputs(r, i) : new(StringComparer.Ordinal),
            Calibration = sections.TryGetValue("calibration", out var c) ? ReadCalibration(r, c.Key, c.Value) : new CalibrationSettings(),
            Checks = checks,
            ChecksPosition = checksAt,
            CheckRules = checkRules,
            // Read by `quant-check tune` (Tuning/TuneConfig); the other stages ignore it.
            Tune = sections.TryGetValue("tune", out var tn) ? tn.Value : null,
            TunePosition = sections.TryGetValue("tune", out var tk) ? r.At(tk.Key) : default,
        };
    }

    /// <summary>
    /// The activation settings a config gets before its own keys: HMCT's, except that <c>preset: performance</c> quantizes
    /// activations asymmetrically. All-int8 models need the zero point once composite ops stay whole: symmetric int8
    /// spends half its levels on the negative side of the many non-negative tensors (after Relu, Sigmoid, HardSwish), and
    /// rec line accuracy on the dev set is 0.630 symmetric against 0.865 asymmetric (float 0.870; docs/quality.md).
    /// The other presets quantize only GEMM inputs (int8/int16, float16 around them), where the zero point buys nothing:
    /// rec base 0.855 symmetric vs 0.850 asymmetric, precision 0.850 vs 0.840; so they keep HMCT's symmetric default.
    /// </summary>
    internal static ActivationConfig DefaultActivation(Preset? preset) =>
        new() { Asymmetric = [preset == Preset.Performance] };

    /// <summary>
    /// The weight settings a config gets before its own keys: HMCT's, except that <c>preset: precision</c> corrects
    /// biases (<c>bias_correction: true</c>). With int16 GEMM inputs the weights' int8 rounding is most of a layer's
    /// error, and its per-channel mean shift is what bias correction removes: on the held-out data precision goes from
    /// rec 0.850 to 0.870 line accuracy (float 0.870) and det 0.915 to 0.975 IoU (worst photo 0.340 to 0.952),
    /// docs/quality.md. Under int8 activations it is no default: rec base 0.855 → 0.840, performance 0.865 → 0.855.
    /// </summary>
    internal static WeightConfig DefaultWeight(Preset? preset) =>
        new() { BiasCorrection = preset == Preset.Precision };

    private static ModelConfig ReadModel(YamlReader r, YamlNode node, string path, Preset? preset)
    {
        QType? all = null, output = null;
        SourcePosition allAt = default, outputAt = default;
        ActivationConfig? activation = null;
        var weight = DefaultWeight(preset);
        LayerwiseSearchConfig? layerwise = null;
        foreach (var (key, _, v) in r.Entries(r.Mapping(node, path), path, ModelKeys, UnsupportedModelKeys))
        {
            var p = $"{path}.{key}";
            switch (key)
            {
                case "all_node_type": all = r.Choice(v, p, QTypes); allAt = r.At(v); break;
                case "model_output_type": output = r.Choice(v, p, QTypes); outputAt = r.At(v); break;
                case "activation": activation = ReadActivation(r, v, p, preset); break;
                case "weight": weight = ReadWeight(r, v, p, preset); break;
                case "layerwise_search": layerwise = ReadLayerwiseSearch(r, v, p); break;
            }
        }
        return new ModelConfig
        {
            AllNodeType = all, AllNodeTypePosition = allAt, ModelOutputType = output, ModelOutputTypePosition = outputAt,
            Activation = activation ?? DefaultActivation(preset), Weight = weight, LayerwiseSearch = layerwise,
        };
    }

    private static ActivationConfig ReadActivation(YamlReader r, YamlNode node, string path, Preset? preset)
    {
        var d = DefaultActivation(preset);
        IReadOnlyList<CalibrationMethod> methods = d.CalibrationTypes;
        IReadOnlyList<double> percentiles = d.MaxPercentiles;
        IReadOnlyList<bool> perChannel = d.PerChannel, asymmetric = d.Asymmetric;
        IReadOnlyList<int> bins = d.NumBinCandidates;
        SourcePosition methodsAt = default, percentilesAt = default, perChannelAt = default, asymmetricAt = default, binsAt = default;
        foreach (var (key, _, v) in r.Entries(r.Mapping(node, path), path, ActivationKeys, UnsupportedActivationKeys))
        {
            var p = $"{path}.{key}";
            switch (key)
            {
                case "calibration_type":
                    methods = r.OneOrMany(v, p, (n, q) => r.Choice(n, q, Methods)); methodsAt = r.At(v); break;
                case "max_percentile":
                    percentiles = r.OneOrMany(v, p, (n, q) =>
                    {
                        var x = r.Number(n, q);
                        if (!(x > 0 && x <= 1))
                            throw r.Error(ErrorCode.ConfigInvalidValue, n, $"{q}: {((YamlScalarNode)n).Value} is outside (0, 1]; it is a fraction, e.g. 0.99995");
                        return x;
                    });
                    percentilesAt = r.At(v);
                    break;
                case "per_channel": perChannel = r.OneOrMany(v, p, r.Bool); perChannelAt = r.At(v); break;
                case "asymmetric": asymmetric = r.OneOrMany(v, p, r.Bool); asymmetricAt = r.At(v); break;
                case "num_bin":
                    bins = r.OneOrMany(v, p, (n, q) =>
                    {
                        var x = r.Integer(n, q);
                        if (x < 2 || x > 1 << 20)
                            throw r.Error(ErrorCode.ConfigInvalidValue, n, $"{q}: {x} bins is not a usable histogram; give a count from 2 to 1048576, e.g. 2048");
                        return x;
                    });
                    binsAt = r.At(v);
                    break;
            }
        }
        return new ActivationConfig
        {
            CalibrationTypes = methods, MaxPercentiles = percentiles, PerChannel = perChannel, Asymmetric = asymmetric,
            NumBins = bins[0], NumBinCandidates = bins, Position = r.At(node),
            CalibrationTypesPosition = methodsAt, MaxPercentilesPosition = percentilesAt, PerChannelPosition = perChannelAt,
            AsymmetricPosition = asymmetricAt, NumBinsPosition = binsAt,
        };
    }

    private static WeightConfig ReadWeight(YamlReader r, YamlNode node, string path, Preset? preset)
    {
        var d = DefaultWeight(preset);
        bool perChannel = d.PerChannel, bias = d.BiasCorrection, equalization = d.Equalization;
        string? metric = null;
        int? biasSamples = null;
        SourcePosition perChannelAt = default, biasAt = default, biasSamplesAt = default;
        foreach (var (key, _, v) in r.Entries(r.Mapping(node, path), path, WeightKeys))
        {
            var p = $"{path}.{key}";
            if (key == "per_channel") { perChannel = r.Bool(v, p); perChannelAt = r.At(v); continue; }
            if (key == "equalization") { equalization = r.Bool(v, p); continue; }
            biasAt = r.At(v);
            if (v is YamlMappingNode bm)
            {
                // HMCT writes bias_correction as a mapping of its options; its presence enables it.
                bias = true;
                foreach (var (bk, _, bv) in r.Entries(bm, p, BiasCorrectionKeys))
                {
                    if (bk == "metric")
                    {
                        metric = r.String(bv, $"{p}.metric");
                        // The metric judges each layer's correction on the samples (Calibration/BiasCorrection).
                        if (!BiasCorrectionMetrics.Contains(metric))
                            throw r.Error(ErrorCode.ConfigInvalidValue, bv, $"{p}.metric: '{metric}' is not one of {string.Join(", ", BiasCorrectionMetrics)}");
                    }
                    else
                    {
                        biasSamplesAt = r.At(bv);
                        biasSamples = r.Integer(bv, $"{p}.num_sample");
                        if (biasSamples < 1) throw r.Error(ErrorCode.ConfigInvalidValue, bv, $"{p}.num_sample: {biasSamples} must be at least 1");
                    }
                }
            }
            else if (v is YamlScalarNode && !YamlReader.IsNull(v)) bias = r.Bool(v, p);
            else throw r.Error(ErrorCode.ConfigWrongType, v, $"{p}: expected true, false or a mapping ({string.Join(", ", BiasCorrectionKeys)}), got {YamlReader.Describe(v)}");
        }
        return new WeightConfig
        {
            PerChannel = perChannel, BiasCorrection = bias, Equalization = equalization, BiasCorrectionMetric = metric, BiasCorrectionSamples = biasSamples,
            Position = r.At(node), PerChannelPosition = perChannelAt, BiasCorrectionPosition = biasAt,
            BiasCorrectionSamplesPosition = biasSamplesAt,
        };
    }

    private static Dictionary<string, OpTypeConfig> ReadOps(YamlReader r, YamlNode node, string path)
    {
        var result = new Dictionary<string, OpTypeConfig>(StringComparer.Ordinal);
        foreach (var (op, keyNode, v) in r.Entries(r.Mapping(node, path), path, null))
        {
            var p = $"{path}.{op}";
            QType? q = null;
            SourcePosition qAt = default;
            foreach (var (key, _, qv) in r.Entries(r.Mapping(v, p), p, OpKeys))
            {
                q = r.Choice(qv, $"{p}.{key}", QTypes);
                qAt = r.At(qv);
            }
            result[op] = new OpTypeConfig { OpType = op, QType = q, Position = r.At(keyNode), QTypePosition = qAt };
        }
        return result;
    }

    [GeneratedRegex(@"^input(0|[1-9][0-9]{0,3})$", RegexOptions.CultureInvariant)]
    private static partial Regex InputKey();

    private static Dictionary<string, NodeConfig> ReadNodes(YamlReader r, YamlNode node, string path)
    {
        var result = new Dictionary<string, NodeConfig>(StringComparer.Ordinal);
        foreach (var (name, keyNode, v) in r.Entries(r.Mapping(node, path), path, null))
        {
            var p = $"{path}.{name}";
            QType? q = null;
            float? scale = null, threshold = null;
            SourcePosition qAt = default, scaleAt = default, thresholdAt = default;
            var inputs = new Dictionary<int, InputQType>();
            foreach (var (key, kn, kv) in r.Entries(r.Mapping(v, p), p, null))
            {
                var kp = $"{p}.{key}";
                switch (key)
                {
                    case "qtype": q = r.Choice(kv, kp, QTypes); qAt = r.At(kv); break;
                    case "scale": scale = Positive(r, kv, kp); scaleAt = r.At(kv); break;
                    case "threshold": threshold = Positive(r, kv, kp); thresholdAt = r.At(kv); break;
                    default:
                        var m = InputKey().Match(key);
                        if (!m.Success) throw r.UnknownKey(kn, p, "qtype, input0, input1, ... (one per node input), scale, threshold", NodeKeyCandidates);
                        var iq = r.Choice(kv, kp, InputQTypes);
                        inputs[int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)] = new InputQType(iq.QType, iq.QType is null, r.At(kv));
                        break;
                }
            }
            if (scale is not null && threshold is not null)
                throw new QuantException(ErrorCode.ConfigInvalidValue, thresholdAt,
                    $"{p}: give either scale or threshold (threshold = scale * qmax), not both");
            result[name] = new NodeConfig
            {
                NodeName = name, QType = q, Inputs = inputs, Scale = scale, Threshold = threshold,
                Position = r.At(keyNode), QTypePosition = qAt, ScalePosition = scaleAt, ThresholdPosition = thresholdAt,
            };
        }
        return result;
    }

    private static float Positive(YamlReader r, YamlNode v, string path)
    {
        var x = r.Float(v, path);
        if (!(x > 0)) throw r.Error(ErrorCode.ConfigInvalidValue, v, $"{path}: {((YamlScalarNode)v).Value} must be greater than 0");
        return x;
    }

    private static Dictionary<string, SubgraphConfig> ReadSubgraphs(YamlReader r, YamlNode node, string path)
    {
        var result = new Dictionary<string, SubgraphConfig>(StringComparer.Ordinal);
        foreach (var (name, keyNode, v) in r.Entries(r.Mapping(node, path), path, null))
        {
            var p = $"{path}.{name}";
            List<string>? ins = null, outs = null;
            List<SourcePosition> insAt = [], outsAt = [];
            QType? q = null;
            foreach (var (key, _, kv) in r.Entries(r.Mapping(v, p), p, SubgraphKeys))
            {
                var kp = $"{p}.{key}";
                switch (key)
                {
                    case "inputs": (ins, insAt) = Names(r, kv, kp); break;
                    case "outputs": (outs, outsAt) = Names(r, kv, kp); break;
                    case "qtype": q = r.Choice(kv, kp, QTypes); break;
                }
            }
            var missing = (ins is null ? "inputs" : null) ?? (outs is null ? "outputs" : null) ?? (q is null ? "qtype" : null);
            if (missing is not null)
                throw r.Error(ErrorCode.ConfigInvalidValue, keyNode, $"{p}: '{missing}' is required (a subgraph needs inputs, outputs and qtype)");
            result[name] = new SubgraphConfig
            {
                Name = name, Inputs = ins!, Outputs = outs!, QType = q!.Value, Position = r.At(keyNode), InputPositions = insAt, OutputPositions = outsAt,
            };
        }
        return result;
    }

    private static (List<string>, List<SourcePosition>) Names(YamlReader r, YamlNode node, string path)
    {
        var items = node is YamlSequenceNode seq ? seq.Children.ToList() : [node];
        if (items.Count == 0) throw r.Error(ErrorCode.ConfigInvalidValue, node, $"{path}: the list is empty; name at least one tensor");
        return (items.Select((n, i) => r.String(n, node is YamlSequenceNode ? $"{path}[{i}]" : path)).ToList(), items.Select(r.At).ToList());
    }

    private static Dictionary<string, InputConfig> ReadInputs(YamlReader r, YamlNode node)
    {
        var result = new Dictionary<string, InputConfig>(StringComparer.Ordinal);
        foreach (var (name, keyNode, v) in r.Entries(r.Mapping(node, "inputs"), "inputs", null))
        {
            var p = $"inputs.{name}";
            List<string> data = [];
            List<SourcePosition> dataAt = [];
            ElementType? dtype = null;
            int[]? shape = null;
            var layout = DataLayout.NCHW;
            float scale = 1f, divisor = 1f;
            float[]? mean = null, std = null;
            var order = ChannelOrder.Keep;
            SourcePosition dtypeAt = default, shapeAt = default, layoutAt = default, scaleAt = default, meanAt = default, stdAt = default, orderAt = default;
            var entries = r.Entries(r.Mapping(v, p), p, InputKeys).ToList();
            foreach (var (key, _, kv) in entries)
            {
                var kp = $"{p}.{key}";
                switch (key)
                {
                    case "data": (data, dataAt) = Names(r, kv, kp); break;
                    case "dtype": dtype = r.Choice(kv, kp, DataTypes); dtypeAt = r.At(kv); break;
                    case "shape":
                        var dims = r.Sequence(kv, kp).Children;
                        shape = dims.Select((dn, i) =>
                        {
                            var d = r.Integer(dn, $"{kp}[{i}]");
                            if (d < 1) throw r.Error(ErrorCode.ConfigInvalidValue, dn, $"{kp}[{i}]: {d} is not a dimension; stored samples have positive sizes");
                            return d;
                        }).ToArray();
                        if (shape.Length == 0) throw r.Error(ErrorCode.ConfigInvalidValue, kv, $"{kp}: the shape is empty");
                        shapeAt = r.At(kv);
                        break;
                    case "layout": layout = r.Choice(kv, kp, Layouts); layoutAt = r.At(kv); break;
                    case "scale": (scale, divisor) = ReadScale(r, kv, kp); scaleAt = r.At(kv); break;
                    case "mean": mean = r.OneOrMany(kv, kp, r.Float).ToArray(); meanAt = r.At(kv); break;
                    case "std":
                        std = r.OneOrMany(kv, kp, (n, q) =>
                        {
                            var x = r.Float(n, q);
                            if (x == 0) throw r.Error(ErrorCode.ConfigInvalidValue, n, $"{q}: a std of 0 divides by zero");
                            return x;
                        }).ToArray();
                        stdAt = r.At(kv);
                        break;
                    case "channel_order": order = r.Choice(kv, kp, ChannelOrders); orderAt = r.At(kv); break;
                }
            }
            var image = ImagePreprocessingReader.Read(r, p, entries);
            if (data.Count == 0)
                throw r.Error(ErrorCode.ConfigInvalidValue, keyNode, $"{p}: 'data' is required (file globs of the calibration samples, e.g. calib/*.npy)");
            result[name] = new InputConfig
            {
                Name = name, Data = data, DataPositions = dataAt, StoredType = dtype, Shape = shape, Layout = layout,
                Scale = scale, ScaleDivisor = divisor, Mean = mean, Std = std, ChannelOrder = order,
                Position = r.At(keyNode), StoredTypePosition = dtypeAt, ShapePosition = shapeAt, LayoutPosition = layoutAt,
                ScalePosition = scaleAt, MeanPosition = meanAt, StdPosition = stdAt, ChannelOrderPosition = orderAt,
                Image = image,
            };
        }
        return result;
    }

    /// <summary>A number, or a fraction <c>N/D</c> kept as numerator and divisor so that x * N / D is exact for 1/255.</summary>
    private static (float, float) ReadScale(YamlReader r, YamlNode node, string path)
    {
        var s = r.Scalar(node, path, "a number or a fraction like 1/255");
        var text = s.Value!;
        int slash = text.IndexOf('/');
        float num, den;
        if (slash < 0) { num = r.Float(node, path); den = 1f; }
        else if (float.TryParse(text.AsSpan(0, slash), NumberStyles.Float, CultureInfo.InvariantCulture, out num)
                 && float.TryParse(text.AsSpan(slash + 1), NumberStyles.Float, CultureInfo.InvariantCulture, out den)) { }
        else throw r.Error(ErrorCode.ConfigWrongType, node, $"{path}: expected a number or a fraction like 1/255, got '{text}'");
        if (num == 0 || den == 0 || !float.IsFinite(num) || !float.IsFinite(den))
            throw r.Error(ErrorCode.ConfigInvalidValue, node, $"{path}: '{text}' would make every sample {(den == 0 ? "infinite" : "zero")}; give a finite non-zero scale");
        return (num, den);
    }

    private static CalibrationSettings ReadCalibration(YamlReader r, YamlScalarNode keyNode, YamlNode node)
    {
        int? samples = null;
        int batch = 1;
        SourcePosition samplesAt = default, batchAt = default;
        foreach (var (key, _, v) in r.Entries(r.Mapping(node, "calibration"), "calibration", CalibrationKeys))
        {
            var p = $"calibration.{key}";
            var x = r.Integer(v, p);
            if (x < 1) throw r.Error(ErrorCode.ConfigInvalidValue, v, $"{p}: {x} must be at least 1");
            if (key == "samples") { samples = x; samplesAt = r.At(v); }
            else { batch = x; batchAt = r.At(v); }
        }
        return new CalibrationSettings { Samples = samples, BatchSize = batch, Position = r.At(keyNode), SamplesPosition = samplesAt, BatchSizePosition = batchAt };
    }
}
