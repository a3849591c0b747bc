using Microsoft.Build.Framework;

namespace Quant.Build.Tasks;

/// <summary>
/// <c>quant-check baseline resolve</c>: which version a floating <c>Baseline="package:ID"</c> means now. Runs every
/// build (a metadata look-up at the project's package sources); the tool rewrites <see cref="OutputFile"/> only when
/// the answer changes, and that file is an input of the check, so a newly shipped version re-runs the check and an
/// unchanged one does not. Resolution runs in the tool, so NuGet's client libraries never load into MSBuild.
/// </summary>
public sealed class QuantResolveBaseline : QuantToolTask
{
    /// <summary><c>package:ID</c> (or <c>package:ID@VERSION</c>). Maps to the <c>PACKAGE</c> argument.</summary>
    [Required] public string Baseline { get; set; } = "";
    /// <summary>The model's OutputName: its NAME.check.json must be in the package. Maps to <c>--name</c>.</summary>
    [Required] public string Name { get; set; } = "";
    /// <summary>The project file: its folder's nuget.config gives the sources. Maps to <c>--project</c>.</summary>
    [Required] public string Project { get; set; } = "";
    /// <summary>baseline.resolved. Maps to <c>--out</c>.</summary>
    [Required] public string OutputFile { get; set; } = "";

    protected override void AddArguments(ArgumentList args) =>
        args.Add("baseline").Add("resolve").Add(Baseline)
            .Add("--name", Name)
            .Add("--project", Project)
            .Add("--out", OutputFile);
}
