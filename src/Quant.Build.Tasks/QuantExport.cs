using System.Collections.Generic;
using Microsoft.Build.Framework;

namespace Quant.Build.Tasks;

/// <summary><c>quant-check export</c>: calibrate a float model and write <c>NAME.qat.onnx</c> and its reports.</summary>
public sealed class QuantExport : QuantToolTask
{
    /// <summary>The float model. Maps to the <c>MODEL</c> argument.</summary>
    [Required] public string Model { get; set; } = "";
    /// <summary>Maps to <c>--config</c>.</summary>
    [Required] public string Config { get; set; } = "";
    /// <summary>Maps to <c>--out</c>.</summary>
    [Required] public string OutputDirectory { get; set; } = "";
    /// <summary>Maps to <c>--name</c>.</summary>
    public string? Name { get; set; }
    /// <summary>Maps to <c>--cache</c> (calibration statistics cache folder).</summary>
    public string? CacheDirectory { get; set; }
    /// <summary>Maps to <c>--threads</c> (0: the tool's default, all cores).</summary>
    public int Threads { get; set; }
    /// <summary>Maps to <c>--deps-file</c>: the files and globs the export read, for the next build's up-to-date check.</summary>
    public string? DepsFile { get; set; }
    /// <summary>Maps to <c>--run-log</c>: one line appended per run (what ran, calibration collected or from cache).</summary>
    public string? RunLog { get; set; }

    /// <summary>Maps to <c>--calibration-data</c>, once per glob (absolute): the item's CalibrationData metadata.</summary>
    public string[]? CalibrationData { get; set; }

    protected override void AddArguments(ArgumentList args)
    {
        args.Add("export").Add(Model)
            .Add("--config", Config)
            .Add("--out", OutputDirectory)
            .Add("--name", Name)
            .Add("--cache", CacheDirectory)
            .Add("--deps-file", DepsFile)
            .Add("--run-log", RunLog);
        if (Threads > 0) args.Add("--threads", Threads.ToString(System.Globalization.CultureInfo.InvariantCulture));
        foreach (var glob in CalibrationData ?? []) args.Add("--calibration-data", glob);
    }

    protected override IEnumerable<string> StampedArtifacts() => QuantPrepare.ArtifactsOf(QuantPrepare.ExportArtifacts, OutputDirectory, Name);
}
