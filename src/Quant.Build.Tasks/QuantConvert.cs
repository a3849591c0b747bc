using System.Collections.Generic;
using Microsoft.Build.Framework;

namespace Quant.Build.Tasks;

/// <summary><c>quant-check convert</c>: <c>NAME.qat.onnx</c> → <c>NAME.quantized.onnx</c> (the integer model) and <c>NAME.convert.json</c>.</summary>
public sealed class QuantConvert : QuantToolTask
{
    /// <summary>The export's NAME.qat.onnx. Maps to the <c>QAT</c> argument.</summary>
    [Required] public string QatModel { get; set; } = "";
    /// <summary>NAME.quantized.onnx. Maps to <c>--out</c>.</summary>
    [Required] public string QuantizedModel { get; set; } = "";
    /// <summary>The model's OutputName, for the run log.</summary>
    public string? Name { get; set; }
    /// <summary>A line is appended here after a successful run (the build's record of what ran).</summary>
    public string? RunLog { get; set; }

    protected override void AddArguments(ArgumentList args) =>
        args.Add("convert").Add(QatModel).Add("--out", QuantizedModel);

    protected override IEnumerable<string> StampedArtifacts() =>
        QuantPrepare.ArtifactsOf(QuantPrepare.ConvertArtifacts, System.IO.Path.GetDirectoryName(QuantizedModel)!, Name);

    protected override void OnSucceeded() => AppendRunLog(RunLog, $"convert {Name}");
}
