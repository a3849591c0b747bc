using Quant.Core.Config;

namespace Quant.Core.Analysis.Sensitivity;

/// <summary>What a candidate is (hmct-debugger's node_type): a node, the weight inputs of a node, or an activation tensor.</summary>
public enum CandidateType { Node, Weight, Activation }

/// <summary>
/// How a candidate is scored. <see cref="Alone"/> (HMCT's semantics): only the candidate is quantized as the config
/// says, everything else is float. <see cref="Restore"/>: everything is quantized as the config says except the
/// candidate, which is restored to float32; this sees interactions and is the ranking a mixed-precision search needs.
/// </summary>
public enum SensitivityMode { Alone, Restore }

/// <summary>The options of <see cref="NodeSensitivity.Run(Quant.Core.Stages.CalibratedModel, Quant.Core.Stages.QuantizedModel, SensitivityOptions, IProgress{Quant.Core.Stages.StageProgress}?, CancellationToken)"/>.</summary>
public sealed class SensitivityOptions
{
    public const int DefaultSamples = 8;

    public CandidateType Type { get; init; } = CandidateType.Node;
    public SensitivityMode Mode { get; init; } = SensitivityMode.Alone;
    /// <summary>The metrics to compute; candidates are ranked by the first.</summary>
    public IReadOnlyList<CheckMetric> Metrics { get; init; } = [CheckMetric.Cosine];
    /// <summary>The model outputs to score (null: every float output).</summary>
    public IReadOnlyList<string>? Outputs { get; init; }
    /// <summary>How many calibration samples to score on (the first ones of the config's data).</summary>
    public int Samples { get; init; } = DefaultSamples;
    /// <summary>When true, <see cref="Samples"/> is an upper bound (the command's default -d): data with fewer samples is not an error.</summary>
    public bool SamplesAtMost { get; init; }
    /// <summary>Only these candidates (node names; for <see cref="CandidateType.Activation"/> also tensor names); null: all.</summary>
    public IReadOnlyList<string>? Nodes { get; init; }
    /// <summary>
    /// Memory for the base runs' kept values: when every sample's fit, each candidate is scored on all samples before the
    /// next (first results early); otherwise samples are taken one at a time. The scores are the same either way.
    /// </summary>
    public long MaxKeptBytes { get; init; } = 2L << 30;
    /// <summary>Downstream re-runs (the default); <see cref="SensitivityStrategy.FullExport"/> exports and runs every variant whole (benchmarks).</summary>
    public SensitivityStrategy Strategy { get; init; } = SensitivityStrategy.Downstream;

    /// <summary>The spelling users type and the JSON holds.</summary>
    public static string Name(CandidateType t) => t switch { CandidateType.Weight => "weight", CandidateType.Activation => "activation", _ => "node" };
    public static string Name(SensitivityMode m) => m == SensitivityMode.Restore ? "restore" : "alone";
    public static CandidateType? TypeOf(string text) => text switch { "node" => CandidateType.Node, "weight" => CandidateType.Weight, "activation" => CandidateType.Activation, _ => null };
    public static SensitivityMode? ModeOf(string text) => text switch { "alone" => SensitivityMode.Alone, "restore" => SensitivityMode.Restore, _ => null };
}
