using System;
using System.Collections.Generic;
using System.IO;
using Microsoft.Build.Framework;

namespace Quant.Build.Tasks;

/// <summary>
/// <c>quant-check check</c>: compares the qat model with the float model (and ONNX Runtime, the quantized and the
/// compiled model with their references) against the yaml's <c>checks:</c>
/// thresholds (and a baseline); each failing check is a positioned QB5xxx diagnostic, i.e. a build error,
/// or a warning when <see cref="WarnOnly"/>.
/// </summary>
public sealed class QuantCheck : QuantToolTask
{
    /// <summary>The float model. Maps to the <c>MODEL</c> argument.</summary>
    [Required] public string Model { get; set; } = "";
    /// <summary>Maps to <c>--config</c>.</summary>
    [Required] public string Config { get; set; } = "";
    /// <summary>Maps to <c>--qat</c>.</summary>
    [Required] public string QatModel { get; set; } = "";
    /// <summary>Maps to <c>--quantized</c> (quantized_vs_qat, and the reference of compiled_vs_quantized); empty: not checked.</summary>
    public string? QuantizedModel { get; set; }
    /// <summary>Maps to <c>--compiled</c> (compiled_vs_quantized); empty: not checked.</summary>
    public string? CompiledModel { get; set; }
    /// <summary>Maps to <c>--out</c> (NAME.check.json, NAME.check.junit.xml, NAME.check.md).</summary>
    [Required] public string OutputDirectory { get; set; } = "";
    /// <summary>Maps to <c>--name</c>.</summary>
    public string? Name { get; set; }
    /// <summary>Maps to <c>--baseline</c>: a file, or <c>package:ID[@VERSION]</c>.</summary>
    public string? Baseline { get; set; }
    /// <summary>
    /// For a package baseline: the file holding the exact <c>package:ID@VERSION</c> it resolved to (baseline.resolved),
    /// passed instead of <see cref="Baseline"/> so the check compares with the version the build tracked.
    /// </summary>
    public string? BaselineResolvedFile { get; set; }
    /// <summary>Maps to <c>--project</c>: whose nuget.config resolves a package baseline, and where its problems are reported.</summary>
    public string? Project { get; set; }
    /// <summary>Maps to <c>--warn-only</c>.</summary>
    public bool WarnOnly { get; set; }
    /// <summary>A line is appended here after a successful run (the build's record of what ran).</summary>
    public string? RunLog { get; set; }

    /// <summary>Maps to <c>--calibration-data</c>, once per glob (absolute): the item's CalibrationData metadata.</summary>
    public string[]? CalibrationData { get; set; }

    /// <summary>Maps to <c>--deps-file</c>: the files the evaluator commands name, for the next build's up-to-date check.</summary>
    public string? DepsFile { get; set; }

    /// <summary>Maps to <c>--stage</c>, once per stage pair; empty: the tool's default (every available pair).</summary>
    public string[]? Stages { get; set; }

    protected override void AddArguments(ArgumentList args)
    {
        args.Add("check").Add(Model)
            .Add("--config", Config)
            .Add("--qat", QatModel)
            .Add("--quantized", QuantizedModel)
            .Add("--compiled", CompiledModel)
            .Add("--out", OutputDirectory)
            .Add("--name", Name)
            .Add("--baseline", ResolvedBaseline())
            .Add("--project", Project)
            .Add("--deps-file", DepsFile)
            .AddFlag("--warn-only", WarnOnly);
        foreach (var glob in CalibrationData ?? []) args.Add("--calibration-data", glob);
        foreach (var stage in Stages ?? []) args.Add("--stage", stage);
    }

    private string? ResolvedBaseline()
    {
        if (string.IsNullOrEmpty(BaselineResolvedFile) || !File.Exists(BaselineResolvedFile)) return Baseline;
        var exact = File.ReadAllText(BaselineResolvedFile).Trim();
        return exact.Length > 0 ? exact : Baseline;
    }

    protected override IEnumerable<string> StampedArtifacts() => QuantPrepare.ArtifactsOf(QuantPrepare.CheckArtifacts, OutputDirectory, Name);

    protected override void OnSucceeded() => AppendRunLog(RunLog, $"check {Name}");
}
