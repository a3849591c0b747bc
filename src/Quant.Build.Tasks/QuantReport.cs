using Microsoft.Build.Framework;

namespace Quant.Build.Tasks;

/// <summary>
/// <c>quant-check report</c>: <c>NAME.report.html</c>, the self-contained HTML page of everything the stages left in
/// the model's folder (docs/report.md). Runs after the check, or after export when there is no check.
/// </summary>
public sealed class QuantReport : QuantToolTask
{
    /// <summary>The model's intermediate folder (where export and check wrote). Maps to <c>--dir</c>.</summary>
    [Required] public string Directory { get; set; } = "";
    /// <summary>The model's OutputName. Maps to <c>--name</c>.</summary>
    [Required] public string Name { get; set; } = "";
    /// <summary>The page. Maps to <c>--out</c>.</summary>
    [Required] public string ReportFile { get; set; } = "";
    /// <summary>A line is appended here after a successful run (the build's record of what ran).</summary>
    public string? RunLog { get; set; }

    protected override void AddArguments(ArgumentList args) =>
        args.Add("report").Add("--dir", Directory).Add("--name", Name).Add("--out", ReportFile);

    protected override void OnSucceeded() => AppendRunLog(RunLog, $"report {Name}");
}
