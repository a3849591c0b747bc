using Microsoft.Build.Framework;

namespace Quant.Build.Tasks;

/// <summary><c>quant-check compile</c>: <c>NAME.quantized.onnx</c> → <c>NAME.qbm</c> (the deployable program) and <c>NAME.compile.json</c>.</summary>
public sealed class QuantCompile : QuantToolTask
{
    /// <summary>The convert stage's NAME.quantized.onnx. Maps to the <c>QUANTIZED</c> argument.</summary>
    [Required] public string QuantizedModel { get; set; } = "";
    /// <summary>NAME.qbm. Maps to <c>--out</c>.</summary>
    [Required] public string CompiledModel { get; set; } = "";
    /// <summary>False maps to <c>--skip-verify</c>: the written program is not loaded back and validated (QuantCompileVerify).</summary>
    public bool Verify { get; set; } = true;
    /// <summary>The model's OutputName, for the run log.</summary>
    public string? Name { get; set; }
    /// <summary>A line is appended here after a successful run (the build's record of what ran).</summary>
    public string? RunLog { get; set; }

    protected override void AddArguments(ArgumentList args) =>
        args.Add("compile").Add(QuantizedModel).Add("--out", CompiledModel).AddFlag("--skip-verify", !Verify);

    protected override void OnSucceeded() => AppendRunLog(RunLog, $"compile {Name}");
}
