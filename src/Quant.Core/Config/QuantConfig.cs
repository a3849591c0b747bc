using Quant.Core.Diagnostics;
using Quant.Onnx;
using YamlDotNet.RepresentationModel;

namespace Quant.Core.Config;

/// <summary>The precision a node, input or output is computed in (HMCT's qtype).</summary>
public enum QType { Int8, Int16, Float16, Float32 }

/// <summary>How activation scales are derived from calibration statistics (HMCT's calibration_type).</summary>
public enum CalibrationMethod { Default, Max, Percentile, Kl, Mse, Fixed }

/// <summary>The J6 precision templates (see docs/config-reference.md for what each sets).</summary>
public enum Preset { Performance, Base, Precision, UpperBound }

/// <summary>
/// A parsed quantization config: HMCT's <c>quant_config</c> block (model_config, op_config,
/// node_config, subgraph_config) plus Quant.Build's own sections (inputs, calibration, preset).
/// Every user-written entry remembers where it was written, so later stages can point at it.
/// </summary>
public sealed class QuantConfig
{
    public required string SourceFile { get; init; }
    public ModelConfig Model { get; init; } = new();
    /// <summary>op_config: by ONNX op type (e.g. Softmax).</summary>
    public Dictionary<string, OpTypeConfig> OpTypes { get; init; } = new(StringComparer.Ordinal);
    /// <summary>node_config: by node name.</summary>
    public Dictionary<string, NodeConfig> Nodes { get; init; } = new(StringComparer.Ordinal);
    /// <summary>subgraph_config: by the user's subgraph name.</summary>
    public Dictionary<string, SubgraphConfig> Subgraphs { get; init; } = new(StringComparer.Ordinal);
    public Preset? Preset { get; init; }
    public SourcePosition PresetPosition { get; init; }
    /// <summary>inputs: by model input name.</summary>
    public Dictionary<string, InputConfig> Inputs { get; init; } = new(StringComparer.Ordinal);
    public CalibrationSettings Calibration { get; init; } = new();
    /// <summary>
    /// The <c>checks:</c> section as written (with its YAML positions) when it is a mapping; null when absent or
    /// written as a list. <see cref="CheckRules"/> is the parsed form.
    /// </summary>
    public YamlMappingNode? Checks { get; init; }
    public SourcePosition ChecksPosition { get; init; }
    /// <summary>The parsed <c>checks:</c> rules (empty when absent).</summary>
    public ChecksConfig CheckRules { get; init; } = ChecksConfig.None;
    /// <summary>The <c>tune:</c> section as written (read by <c>quant-check tune</c>, Tuning/TuneConfig); null when absent.</summary>
    public YamlNode? Tune { get; init; }
    public SourcePosition TunePosition { get; init; }

    /// <summary>The folder data globs are relative to.</summary>
    public string BaseDirectory => Path.GetDirectoryName(Path.GetFullPath(SourceFile)) ?? ".";
}

/// <summary>model_config.</summary>
public sealed class ModelConfig
{
    /// <summary>all_node_type: the default qtype of every node.</summary>
    public QType? AllNodeType { get; init; }
    public SourcePosition AllNodeTypePosition { get; init; }
    /// <summary>model_output_type: the qtype of the nodes producing model outputs.</summary>
    public QType? ModelOutputType { get; init; }
    public SourcePosition ModelOutputTypePosition { get; init; }
    public ActivationConfig Activation { get; init; } = new();
    public WeightConfig Weight { get; init; } = new();
    /// <summary>layerwise_search: the per-tensor calibration choice; null when not asked for.</summary>
    public LayerwiseSearchConfig? LayerwiseSearch { get; init; }
}

/// <summary>
/// model_config.layerwise_search (<c>true</c> or <c>{samples: N}</c>): after the model-wise choice, each activation
/// tensor's calibration method is chosen by its effect on the model output, on at most <see cref="Samples"/> scored samples.
/// </summary>
public sealed record LayerwiseSearchConfig(int Samples, SourcePosition Position)
{
    public const int DefaultSamples = 4;
}

/// <summary>model_config.activation. Lists are the candidates HMCT searches when several are given.</summary>
public sealed class ActivationConfig
{
    public IReadOnlyList<CalibrationMethod> CalibrationTypes { get; init; } = [CalibrationMethod.Default];
    /// <summary>max_percentile candidates for the percentile method (fraction, e.g. 0.99995).</summary>
    public IReadOnlyList<double> MaxPercentiles { get; init; } = [0.99995];
    public IReadOnlyList<bool> PerChannel { get; init; } = [false];
    public IReadOnlyList<bool> Asymmetric { get; init; } = [false];
    /// <summary>num_bin: histogram bins per tensor (the first of <see cref="NumBinCandidates"/>).</summary>
    public int NumBins { get; init; } = 2048;
    /// <summary>num_bin as written: HMCT accepts a list of candidates too.</summary>
    public IReadOnlyList<int> NumBinCandidates { get; init; } = [2048];
    public SourcePosition Position { get; init; }
    public SourcePosition CalibrationTypesPosition { get; init; }
    public SourcePosition MaxPercentilesPosition { get; init; }
    public SourcePosition PerChannelPosition { get; init; }
    public SourcePosition AsymmetricPosition { get; init; }
    public SourcePosition NumBinsPosition { get; init; }
}

/// <summary>model_config.weight.</summary>
public sealed class WeightConfig
{
    public bool PerChannel { get; init; } = true;
    /// <summary>bias_correction: true, or a mapping (HMCT's <c>{metric: mae, num_sample: 8}</c>), which also enables it.</summary>
    public bool BiasCorrection { get; init; }
    /// <summary>bias_correction.metric when given as a mapping: cosine, mse or mae (how each layer's correction is judged).</summary>
    public string? BiasCorrectionMetric { get; init; }
    /// <summary>bias_correction.num_sample when given as a mapping.</summary>
    public int? BiasCorrectionSamples { get; init; }
    /// <summary>equalization: cross-layer equalization of convolution pairs in graph preparation (docs/config-reference.md).</summary>
    public bool Equalization { get; init; }
    public SourcePosition Position { get; init; }
    public SourcePosition PerChannelPosition { get; init; }
    public SourcePosition BiasCorrectionPosition { get; init; }
    public SourcePosition BiasCorrectionSamplesPosition { get; init; }
}

/// <summary>op_config entry.</summary>
public sealed class OpTypeConfig
{
    public required string OpType { get; init; }
    public QType? QType { get; init; }
    /// <summary>Where the op type (the key) is written.</summary>
    public SourcePosition Position { get; init; }
    public SourcePosition QTypePosition { get; init; }
}

/// <summary>The qtype of one input of a node: a precision, or <c>ec</c> (HMCT: leave it to error compensation).</summary>
public readonly record struct InputQType(QType? QType, bool ErrorCompensation, SourcePosition Position);

/// <summary>node_config entry.</summary>
public sealed class NodeConfig
{
    public required string NodeName { get; init; }
    public QType? QType { get; init; }
    /// <summary>input0, input1, ...: by input index.</summary>
    public Dictionary<int, InputQType> Inputs { get; init; } = [];
    /// <summary>A fixed activation scale for the node's output (wins over calibration).</summary>
    public float? Scale { get; init; }
    /// <summary>A fixed threshold (max |x|) for the node's output; scale = threshold / qmax.</summary>
    public float? Threshold { get; init; }
    /// <summary>Where the node name (the key) is written.</summary>
    public SourcePosition Position { get; init; }
    public SourcePosition QTypePosition { get; init; }
    public SourcePosition ScalePosition { get; init; }
    public SourcePosition ThresholdPosition { get; init; }
}

/// <summary>subgraph_config entry: every node between the inputs and the outputs gets the qtype.</summary>
public sealed class SubgraphConfig
{
    public required string Name { get; init; }
    /// <summary>Value (tensor) names where the subgraph starts.</summary>
    public IReadOnlyList<string> Inputs { get; init; } = [];
    /// <summary>Value (tensor) names where the subgraph ends.</summary>
    public IReadOnlyList<string> Outputs { get; init; } = [];
    public QType QType { get; init; }
    /// <summary>Where the subgraph name (the key) is written.</summary>
    public SourcePosition Position { get; init; }
    /// <summary>Where each entry of <see cref="Inputs"/> is written (same order).</summary>
    public IReadOnlyList<SourcePosition> InputPositions { get; init; } = [];
    /// <summary>Where each entry of <see cref="Outputs"/> is written (same order).</summary>
    public IReadOnlyList<SourcePosition> OutputPositions { get; init; } = [];
}

public enum ChannelOrder { Keep, BgrToRgb, RgbToBgr }

public enum DataLayout { NCHW, NHWC }

/// <summary>The channels an image is decoded to (<c>color:</c>): BGR as OpenCV's imread gives, RGB, or one grey channel.</summary>
public enum ImageColor { Bgr, Rgb, Gray }

/// <summary>How <c>resize:</c> chooses the output size.</summary>
public enum ResizeMode { Exact, LongerSide, ShorterSide }

/// <summary>The resampling of <c>resize:</c> (OpenCV's INTER_LINEAR / INTER_NEAREST).</summary>
public enum Interpolation { Bilinear, Nearest }

/// <summary><c>resize:</c> <c>{height, width}</c> (Exact), <c>{longer_side}</c> or <c>{shorter_side}</c> (aspect ratio kept).</summary>
public readonly record struct ImageResize(ResizeMode Mode, int Height, int Width, int Side);

/// <summary>
/// How an image file becomes a uint8 [1,C,H,W] sample before the float steps: decode to <see cref="Color"/>, resize,
/// centre crop, pad right and bottom, HWC to CHW (see docs/config-reference.md). Only image files take these keys.
/// </summary>
public sealed class ImagePreprocessing
{
    public ImageColor? Color { get; init; }
    public ImageResize? Resize { get; init; }
    public Interpolation Interpolation { get; init; } = Interpolation.Bilinear;
    /// <summary>Centre crop (height, width).</summary>
    public (int Height, int Width)? Crop { get; init; }
    /// <summary>Pad right and bottom to (height, width) with the uint8 value.</summary>
    public (int Height, int Width, byte Value)? Pad { get; init; }
    public SourcePosition ColorPosition { get; init; }
    public SourcePosition ResizePosition { get; init; }
    public SourcePosition InterpolationPosition { get; init; }
    public SourcePosition CropPosition { get; init; }
    public SourcePosition PadPosition { get; init; }

    /// <summary>Where the first image key is written (default when none is).</summary>
    public SourcePosition FirstKeyPosition =>
        new[] { ColorPosition, ResizePosition, InterpolationPosition, CropPosition, PadPosition }
            .Where(p => p.Line > 0).OrderBy(p => p.Line).ThenBy(p => p.Column).FirstOrDefault();

    /// <summary>True when any image key is written.</summary>
    public bool Any => FirstKeyPosition.Line > 0;
}

/// <summary>inputs entry: where a model input's calibration data lives and how it becomes the model's input.</summary>
public sealed class InputConfig
{
    public required string Name { get; init; }
    /// <summary>File globs (relative to the config file's folder): .npy, .npz, raw .bin with <see cref="Shape"/>, or images.</summary>
    public IReadOnlyList<string> Data { get; init; } = [];
    /// <summary>Where each glob of <see cref="Data"/> is written (same order).</summary>
    public IReadOnlyList<SourcePosition> DataPositions { get; init; } = [];
    /// <summary>Element type of the stored data (for .bin; checked for .npy/.npz).</summary>
    public ElementType? StoredType { get; init; }
    /// <summary>Shape of one stored sample (required for .bin).</summary>
    public int[]? Shape { get; init; }
    /// <summary>Layout of the stored data; transposed to the model's NCHW when NHWC.</summary>
    public DataLayout Layout { get; init; } = DataLayout.NCHW;
    /// <summary>
    /// Preprocessing, in this order: x * Scale / ScaleDivisor, channel reorder, (x - mean[c]) / std[c],
    /// NHWC to NCHW. <c>scale: 1/255</c> is kept as Scale 1, ScaleDivisor 255 so x / 255 is computed exactly.
    /// </summary>
    public float Scale { get; init; } = 1f;
    public float ScaleDivisor { get; init; } = 1f;
    /// <summary>Per channel (one value: every channel).</summary>
    public float[]? Mean { get; init; }
    public float[]? Std { get; init; }
    public ChannelOrder ChannelOrder { get; init; } = ChannelOrder.Keep;
    /// <summary>Where the input name (the key) is written.</summary>
    public SourcePosition Position { get; init; }
    public SourcePosition StoredTypePosition { get; init; }
    public SourcePosition ShapePosition { get; init; }
    public SourcePosition LayoutPosition { get; init; }
    public SourcePosition ScalePosition { get; init; }
    public SourcePosition MeanPosition { get; init; }
    public SourcePosition StdPosition { get; init; }
    public SourcePosition ChannelOrderPosition { get; init; }
    /// <summary>Image decoding and geometry (color, resize, interpolation, crop, pad); only for image files.</summary>
    public ImagePreprocessing Image { get; init; } = new();

    /// <summary>True when any float preprocessing is declared (scale, mean, std or a channel reorder).</summary>
    public bool HasPreprocessing => Scale != 1f || ScaleDivisor != 1f || Mean is not null || Std is not null || ChannelOrder != ChannelOrder.Keep;
}

/// <summary>calibration section.</summary>
public sealed class CalibrationSettings
{
    /// <summary>Use at most this many samples (null: all that the globs match).</summary>
    public int? Samples { get; init; }
    public int BatchSize { get; init; } = 1;
    public SourcePosition Position { get; init; }
    public SourcePosition SamplesPosition { get; init; }
    public SourcePosition BatchSizePosition { get; init; }
}
