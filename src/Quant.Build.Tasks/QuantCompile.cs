using System.Collections.Generic;
using Microsoft.Build.Framework;

namespace Quant.Build.Tasks;

/// <summary><c>quant-check compile</c>: <c>NAME.quantized.onnx</c> → <c>NAME.qbm</c> (the deployable program) and <c>NAME.compile.json</c>.</summary>
public sealed class QuantCompile : QuantToolTask
{
    /// <summary>The convert stage's NAME.quantized.onnx. Maps to the <c>QUANTIZED</c> argument.</summary>
    [Required] public string QuantizedModel { get; set; } = "";
    /// <summary>NAME.qbm. Maps to <c>--out</c>.</summary>
    [Required] public string CompiledModel { get; set; } = "";
    /// <summary>Maps to <c>--input-shape</c>, once per <c>NAME=D1xD2x...</c> (QuantCompileInputShapes): the shapes the memory plan is made for.</summary>
    public string[]? InputShapes { get; set; }
    /// <summary>The model's OutputName, for the run log.</summary>
    public string? Name { get; set; }
    /// <summary>A line is appended here after a successful run (the build's record of what ran).</summary>
    public string? RunLog { get; set; }

    protected override void AddArguments(ArgumentList args)
    {
        args.Add("compile").Add(QuantizedModel).Add("--out", CompiledModel);
        foreach (var shape in InputShapes ?? []) args.Add("--input-shape", shape.Trim());
    }

    protected override IEnumerable<string> StampedArtifacts() =>
        QuantPrepare.ArtifactsOf(QuantPrepare.CompileArtifacts, System.IO.Path.GetDirectoryName(CompiledModel)!, Name);

    protected override void OnSucceeded() => AppendRunLog(RunLog, $"compile {Name}");
}
