using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Quant.Core.Data;
using Quant.Core.Diagnostics;

namespace Quant.Build.Tasks;

/// <summary>
/// Runs in every build, in process and cheaply, before the stage targets: resolves each <c>QuantModel</c>'s
/// metadata defaults and artifact paths, and brings the files the stage targets use as <c>Inputs</c> up to date:
/// <list type="bullet">
/// <item><c>export.hash</c> / <c>convert.hash</c> / <c>compile.hash</c> / <c>check.hash</c>: a hash of the config
/// text each stage reads plus the options that affect it, rewritten only when it changes (so its timestamp moves
/// only then);</item>
/// <item><c>data.list</c>: the calibration files the config's globs match now; rewritten when a file appears or
/// disappears compared with what the last export read (its <c>deps</c> file).</item>
/// </list>
/// </summary>
public sealed class QuantPrepare : Task
{
    /// <summary>The <c>QuantModel</c> items.</summary>
    [Required] public ITaskItem[] Models { get; set; } = Array.Empty<ITaskItem>();
    [Required] public string ProjectDirectory { get; set; } = "";
    /// <summary>Full path of <c>$(QuantIntermediateOutputPath)</c>; each model gets <c>NAME/</c> under it.</summary>
    [Required] public string IntermediateDirectory { get; set; } = "";
    /// <summary>Property values that affect export (hashed into <c>export.hash</c>).</summary>
    public string ExportOptions { get; set; } = "";
    /// <summary>Property values that affect convert (hashed into <c>convert.hash</c>).</summary>
    public string ConvertOptions { get; set; } = "";
    /// <summary>Property values that affect compile (hashed into <c>compile.hash</c>).</summary>
    public string CompileOptions { get; set; } = "";
    /// <summary>Property values that affect the check (hashed into <c>check.hash</c>).</summary>
    public string CheckOptions { get; set; } = "";
    /// <summary>
    /// <c>$(QuantReport)</c>: whether models without <c>Report</c> metadata get <c>NAME.report.html</c>
    /// (<c>true</c>/<c>false</c>, empty is false).
    /// </summary>
    public string ReportDefault { get; set; } = "";
    /// <summary>False: only resolve paths (Clean), write nothing.</summary>
    public bool WriteState { get; set; } = true;

    [Output] public ITaskItem[] Resolved { get; set; } = Array.Empty<ITaskItem>();

    /// <summary>
    /// The files of the <c>Pack="true"</c> models, as the pack targets take them: <c>PackagePath</c> (default
    /// <see cref="DefaultPackagePath"/>), <c>BuildAction</c>, <c>PackageCopyToOutput</c> (the deployable artifacts
    /// yes, the check report no) and <c>PackageFlatten</c>. They exist once the stages have run.
    /// </summary>
    [Output] public ITaskItem[] PackFiles { get; set; } = Array.Empty<ITaskItem>();

    /// <summary>A package's folder for model NAME: content files, so PackageReference consumers get them copied to their output.</summary>
    public static string DefaultPackagePath(string name) => $"contentFiles/any/any/models/{name}/";

    /// <summary>What a model ships: the qat model (for ONNX Runtime), and the compiled program when compile runs.</summary>
    private static string[] DeployableArtifacts(bool compiled) => compiled ? new[] { ".qat.onnx", ".qbm" } : new[] { ".qat.onnx" };
    /// <summary>The spec prefix of a baseline taken from a shipped package (resolved by the tool, never in MSBuild).</summary>
    private const string PackageBaselinePrefix = "package:";

    internal static readonly string[] ExportArtifacts = { ".qat.onnx", ".model_check.txt", ".model_check.json", ".qconfig_changelogs.txt", ".calibration.qcs" };
    internal static readonly string[] ConvertArtifacts = { ".quantized.onnx", ".convert.json" };
    internal static readonly string[] CompileArtifacts = { ".qbm", ".compile.json" };
    internal static readonly string[] CheckArtifacts = { ".check.json", ".check.junit.xml", ".check.md" };
    private const string ReportArtifact = ".report.html";
    private static readonly string[] ReportInputSuffixes = { ".model_check.json", ".calibration.qcs", ".check.json", ".compare.json", ".sensitivity.json", ".tune.json" };

    /// <summary>Every stage <c>Stages</c> may name, in build order. <c>check</c> is the qat_vs_float pair (also accepted by that name).</summary>
    internal const string DefaultStages = "export;convert;compile;check;runtime_vs_qat;quantized_vs_qat;compiled_vs_quantized";
    private static readonly string[] KnownStages = { "export", "convert", "compile", "check", "qat_vs_float", "runtime_vs_qat", "quantized_vs_qat", "compiled_vs_quantized" };

    public override bool Execute()
    {
        var result = new List<ITaskItem>();
        var pack = new List<ITaskItem>();
        var names = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var model in Models)
        {
            var item = Resolve(model, names);
            if (item is null) continue;
            result.Add(item);
            pack.AddRange(PackFilesOf(model, item));
        }
        Resolved = result.ToArray();
        PackFiles = pack.ToArray();
        return !Log.HasLoggedErrors;
    }

    private ITaskItem? Resolve(ITaskItem model, Dictionary<string, string> names)
    {
        string modelPath = Full(model.ItemSpec);
        string name = Meta(model, "OutputName") ?? Path.GetFileNameWithoutExtension(modelPath);
        if (names.TryGetValue(name, out var other))
        {
            Error(ErrorCode.BuildDuplicateOutputName, $"QuantModel '{model.ItemSpec}' has the OutputName '{name}' of '{other}'; give one of them another OutputName");
            return null;
        }
        names[name] = model.ItemSpec;
        string config = Full(Meta(model, "QConfig") ?? Path.Combine(Path.GetDirectoryName(modelPath)!, Path.GetFileNameWithoutExtension(modelPath) + ".quant.yaml"));
        // A package baseline stays a spec; the build tracks it through baseline.resolved (the exact version it means).
        string? baselineSpec = Meta(model, "Baseline")?.Trim();
        bool packageBaseline = baselineSpec is not null && baselineSpec.StartsWith(PackageBaselinePrefix, StringComparison.OrdinalIgnoreCase);
        bool floatingBaseline = packageBaseline && baselineSpec!.IndexOf('@') < 0;
        string? baseline = baselineSpec is null ? null : packageBaseline ? baselineSpec : Full(baselineSpec);
        var stages = new HashSet<string>((Meta(model, "Stages") ?? DefaultStages).Split(new[] { ';', ',' }, StringSplitOptions.RemoveEmptyEntries)
            .Select(s => s.Trim().ToLowerInvariant()).Select(s => s == "qat_vs_float" ? "check" : s));
        foreach (var s in stages.Where(s => Array.IndexOf(KnownStages, s) < 0))
            Error(ErrorCode.BuildUnknownStage, $"QuantModel '{model.ItemSpec}': unknown stage '{s}' in Stages; known stages: {string.Join(", ", KnownStages)}");
        var plan = StagePlan.Of(stages);

        var dir = Path.Combine(IntermediateDirectory, name) + Path.DirectorySeparatorChar;
        var outputs = new TaskItem(modelPath);
        model.CopyMetadataTo(outputs);
        string P(string file) => Path.Combine(dir, file);

        string configText = "";
        if (File.Exists(config)) configText = File.ReadAllText(config);
        else if (WriteState) Error(ErrorCode.BuildConfigNotFound, $"QuantModel '{model.ItemSpec}': the config file '{config}' does not exist (set QConfig, or add {Path.GetFileName(config)} next to the model)");
        if (!File.Exists(modelPath) && WriteState) Error(ErrorCode.BuildModelNotFound, $"QuantModel '{model.ItemSpec}': the model file '{modelPath}' does not exist");
        var (exportText, checkText) = ConfigSections.Split(configText);
        bool hasChecks = checkText.Length > 0;
        bool runExport = stages.Count > 0;
        // The check needs something to check: thresholds in the config or a baseline to compare with.
        bool runCheck = plan.CheckPairs.Count > 0 && (hasChecks || baseline is not null);
        bool runConvert = plan.Convert, runCompile = plan.Compile;
        bool runReport = runExport && ReportWanted(model);

        var extraData = (Meta(model, "CalibrationData") ?? "").Split(new[] { ';' }, StringSplitOptions.RemoveEmptyEntries)
            .SelectMany(g => FileGlob.Expand(ProjectDirectory, g.Trim())).ToList();

        var deps = DepsFile.Read(P("deps"));
        var dataNow = deps.Globs.SelectMany(g => FileGlob.Expand(g.BaseDirectory, g.Pattern)).Concat(deps.Files.Where(File.Exists))
            .Concat(extraData).Distinct(StringComparer.Ordinal).OrderBy(f => f, StringComparer.Ordinal).ToList();

        if (WriteState && !Log.HasLoggedErrors)
        {
            Directory.CreateDirectory(dir);
            WriteIfDifferent(P("export.hash"), Hash("export v1", ExportOptions, $"model={modelPath}", $"name={name}", "---", exportText), null);
            WriteIfDifferent(P("convert.hash"), Hash("convert v1", ConvertOptions), null);
            WriteIfDifferent(P("compile.hash"), Hash("compile v1", CompileOptions), null);
            WriteIfDifferent(P("check.hash"), Hash("check v1", CheckOptions, $"baseline={baseline}", $"pairs={string.Join(";", plan.CheckPairs)}", "---", checkText), null);
            // When the files match what the last export read, a fresh data.list must not look newer than that export.
            // CalibrationData globs are read by the tool itself, so the files it read last time are the whole comparison.
            var read = deps.Files.Distinct(StringComparer.Ordinal).OrderBy(f => f, StringComparer.Ordinal);
            bool asLastRead = deps.Exists && read.SequenceEqual(dataNow, StringComparer.Ordinal);
            WriteIfDifferent(P("data.list"), string.Join("\n", dataNow) + "\n", asLastRead ? deps.WriteTimeUtc : null);
            // A stamp vouches for its stage's artifacts as the stage left them (StageStamp): one deleted by hand, cut
            // short or rewritten since, or a damaged stamp, makes the stage run again.
            VerifyStamp("export", name, P("export.stamp"), ArtifactsOf(ExportArtifacts, dir, name));
            if (runConvert) VerifyStamp("convert", name, P("convert.stamp"), ArtifactsOf(ConvertArtifacts, dir, name));
            if (runCompile) VerifyStamp("compile", name, P("compile.stamp"), ArtifactsOf(CompileArtifacts, dir, name));
            if (runCheck) VerifyStamp("check", name, P("check.stamp"), ArtifactsOf(CheckArtifacts, dir, name));
            // So does an input that is not as the stage read it: timestamps alone miss a file replaced by an older one.
            if (deps.AnyInputChanged()) File.Delete(P("export.stamp"));
            if (runCheck && DepsFile.Read(P("check.deps")).AnyInputChanged()) File.Delete(P("check.stamp"));
            // An exact package version is a stable input: its spec is the whole answer. A floating one is written by
            // the resolve target each build, with the version the sources have now.
            if (packageBaseline && !floatingBaseline) WriteIfDifferent(P("baseline.resolved"), baseline + "\n", null);
        }

        string qat = P(name + ".qat.onnx");
        var copy = new List<string>();
        // A later stage's file is copied only when that stage runs: the default (qat;qbm) also fits Stages="export;check".
        foreach (var kind in (Meta(model, "CopyToOutput") ?? "qat;qbm").Split(new[] { ';', ',' }, StringSplitOptions.RemoveEmptyEntries).Select(k => k.Trim().ToLowerInvariant()))
        {
            switch (kind)
            {
                case "qat": copy.Add(P(name + ".qat.onnx")); break;
                case "quantized": if (runConvert) copy.Add(P(name + ".quantized.onnx")); break;
                case "qbm": if (runCompile) copy.Add(P(name + ".qbm")); break;
                case "none": break;
                case "reports":
                    copy.AddRange(new[] { ".model_check.txt", ".model_check.json", ".qconfig_changelogs.txt" }.Select(e => P(name + e)));
                    if (runConvert) copy.Add(P(name + ".convert.json"));
                    if (runCompile) copy.Add(P(name + ".compile.json"));
                    if (runReport) copy.Add(P(name + ReportArtifact));
                    break;
                case "check": if (runCheck) copy.AddRange(CheckArtifacts.Select(e => P(name + e))); break;
                case "report": if (runReport) copy.Add(P(name + ReportArtifact)); break;
                case "all":
                    copy.AddRange(ExportArtifacts.Where(e => e != ".calibration.qcs").Select(e => P(name + e)));
                    if (runConvert) copy.AddRange(ConvertArtifacts.Select(e => P(name + e)));
                    if (runCompile) copy.AddRange(CompileArtifacts.Select(e => P(name + e)));
                    if (runCheck) copy.AddRange(CheckArtifacts.Select(e => P(name + e)));
                    if (runReport) copy.Add(P(name + ReportArtifact));
                    break;
                default: Error(ErrorCode.BuildUnknownCopyToOutput, $"QuantModel '{model.ItemSpec}': unknown CopyToOutput value '{kind}'; use qat, quantized, qbm (default qat;qbm), reports, check, report, all or none"); break;
            }
        }

        outputs.SetMetadata("QuantModelItem", model.ItemSpec); // as written in the project, for messages
        outputs.SetMetadata("OutputName", name);
        outputs.SetMetadata("QConfigFull", config);
        outputs.SetMetadata("BaselineFull", baseline ?? "");
        // What the check target's up-to-date check reads for the baseline: the file, or the resolved package version.
        outputs.SetMetadata("BaselineInput", packageBaseline ? P("baseline.resolved") : baseline ?? "");
        outputs.SetMetadata("BaselineResolvedFile", packageBaseline ? P("baseline.resolved") : "");
        outputs.SetMetadata("BaselineFloating", floatingBaseline && runCheck ? "true" : "false");
        outputs.SetMetadata("IntermediateDir", dir);
        outputs.SetMetadata("RunExport", runExport ? "true" : "false");
        outputs.SetMetadata("RunConvert", runConvert ? "true" : "false");
        outputs.SetMetadata("RunCompile", runCompile ? "true" : "false");
        outputs.SetMetadata("RunCheck", runCheck ? "true" : "false");
        outputs.SetMetadata("CheckStages", plan.CheckStagesArgument);
        outputs.SetMetadata("RunReport", runReport ? "true" : "false");
        outputs.SetMetadata("ReportFile", P(name + ReportArtifact));
        // What the page shows: export's reports and statistics, the check's results, and whatever the debugging
        // commands (compare, sensitivity, tune) left in the folder; only files that exist (a missing input would
        // make the target run every build).
        outputs.SetMetadata("ReportInputs", string.Join(";", ReportInputSuffixes.Select(e => P(name + e)).Where(f => File.Exists(f) || f.EndsWith(".model_check.json", StringComparison.Ordinal))));
        outputs.SetMetadata("ExportStamp", P("export.stamp"));
        outputs.SetMetadata("ConvertStamp", P("convert.stamp"));
        outputs.SetMetadata("CompileStamp", P("compile.stamp"));
        outputs.SetMetadata("ConvertHashFile", P("convert.hash"));
        outputs.SetMetadata("CompileHashFile", P("compile.hash"));
        outputs.SetMetadata("CheckStamp", P("check.stamp"));
        outputs.SetMetadata("ExportHashFile", P("export.hash"));
        outputs.SetMetadata("CheckHashFile", P("check.hash"));
        outputs.SetMetadata("DataListFile", P("data.list"));
        outputs.SetMetadata("DepsFile", P("deps"));
        // What the last check read beyond the config and the models: the files its evaluator commands name.
        outputs.SetMetadata("CheckDepsFile", P("check.deps"));
        outputs.SetMetadata("CheckDependencies", string.Join(";", DepsFile.Read(P("check.deps")).Others.Distinct(StringComparer.Ordinal)));
        outputs.SetMetadata("RunLog", P("runs.log"));
        outputs.SetMetadata("CalibrationDataFull", string.Join(";", (Meta(model, "CalibrationData") ?? "")
            .Split(new[] { ';' }, StringSplitOptions.RemoveEmptyEntries)
            .Select(g => Path.GetFullPath(Path.Combine(ProjectDirectory, g.Trim())))));
        // The other files the last export read (the model's external data): one that is gone is missing input, so the
        // export runs and says what is missing, rather than keeping a model made from it.
        outputs.SetMetadata("ExportDependencies", string.Join(";", dataNow.Concat(deps.Others).Distinct(StringComparer.Ordinal)));
        outputs.SetMetadata("QatModel", qat);
        outputs.SetMetadata("QuantizedModel", P(name + ".quantized.onnx"));
        outputs.SetMetadata("CompiledModel", P(name + ".qbm"));
        // What the check compares beyond the qat model: passed to the tool, and inputs of its up-to-date check.
        outputs.SetMetadata("CheckQuantizedModel", plan.CheckReadsQuantized ? P(name + ".quantized.onnx") : "");
        outputs.SetMetadata("CheckCompiledModel", plan.CheckReadsCompiled ? P(name + ".qbm") : "");
        outputs.SetMetadata("ExportArtifacts", string.Join(";", ExportArtifacts.Select(e => P(name + e))));
        outputs.SetMetadata("CheckArtifacts", runCheck ? string.Join(";", CheckArtifacts.Select(e => P(name + e))) : "");
        outputs.SetMetadata("CopyFiles", string.Join(";", copy.Distinct(StringComparer.Ordinal)));
        return outputs;
    }

    /// <summary>A stage's artifact paths: <paramref name="suffixes"/> after <paramref name="name"/> in <paramref name="directory"/>.</summary>
    internal static string[] ArtifactsOf(string[] suffixes, string directory, string? name) =>
        suffixes.Select(e => Path.Combine(directory, name + e)).ToArray();

    /// <summary>
    /// Deletes a stamp that no longer vouches for its artifacts, so the stage runs again: a message when an artifact was
    /// deleted (the usual way to force a stage), warning QB6009 naming the file when one was cut short or changed behind
    /// the build's back, or the stamp itself is damaged.
    /// </summary>
    private void VerifyStamp(string stage, string name, string stamp, string[] artifacts)
    {
        var problem = StageStamp.Check(stamp, artifacts);
        if (problem is null) return;
        File.Delete(stamp);
        if (problem.Warn)
            Log.LogWarning(null, ErrorCode.BuildStageRecordMismatch.Text(), null, problem.File, 0, 0, 0, 0,
                "{0}: {1}; {2} runs again", name, problem.Reason, stage);
        else
            Log.LogMessage(MessageImportance.Normal, "Quant: {0} {1} runs again: {2}", stage, name, problem.Reason);
    }

    /// <summary>The model's packed files (none unless <c>Pack="true"</c>); QB6008 when Pack is not a boolean.</summary>
    private IEnumerable<ITaskItem> PackFilesOf(ITaskItem model, ITaskItem resolved)
    {
        var packText = (Meta(model, "Pack") ?? "false").Trim();
        if (packText.Equals("false", StringComparison.OrdinalIgnoreCase)) yield break;
        if (!packText.Equals("true", StringComparison.OrdinalIgnoreCase))
        {
            Error(ErrorCode.BuildInvalidPack, $"QuantModel '{model.ItemSpec}': Pack=\"{packText}\" is not true or false");
            yield break;
        }
        var name = resolved.GetMetadata("OutputName");
        var dir = resolved.GetMetadata("IntermediateDir");
        var path = Meta(model, "PackagePath")?.Replace('\\', '/') ?? DefaultPackagePath(name);
        if (!path.EndsWith("/", StringComparison.Ordinal)) path += "/";
        TaskItem Packed(string extension, bool copyToOutput)
        {
            var item = new TaskItem(Path.Combine(dir, name + extension));
            item.SetMetadata("PackagePath", path + name + extension);
            item.SetMetadata("BuildAction", "None");
            item.SetMetadata("PackageCopyToOutput", copyToOutput ? "true" : "false");
            item.SetMetadata("PackageFlatten", "false");
            item.SetMetadata("QuantModelName", name);
            item.SetMetadata("QuantModelItem", model.ItemSpec);
            return item;
        }
        foreach (var e in DeployableArtifacts(resolved.GetMetadata("RunCompile") == "true")) yield return Packed(e, copyToOutput: true);
        // The accuracy record a later build compares with (Baseline="package:..."); only a checked model has one.
        if (resolved.GetMetadata("RunCheck") == "true") yield return Packed(".check.json", copyToOutput: false);
    }

    /// <summary>The item's <c>Report</c> metadata, else <see cref="ReportDefault"/>; anything but true/false is QB8065.</summary>
    private bool ReportWanted(ITaskItem model)
    {
        var text = (Meta(model, "Report") ?? (ReportDefault.Trim().Length > 0 ? ReportDefault : "false")).Trim();
        if (text.Equals("true", StringComparison.OrdinalIgnoreCase)) return true;
        if (!text.Equals("false", StringComparison.OrdinalIgnoreCase))
            Error(ErrorCode.ReportInvalidSetting, Meta(model, "Report") is null
                ? $"QuantReport=\"{text}\" is not true or false"
                : $"QuantModel '{model.ItemSpec}': Report=\"{text}\" is not true or false");
        return false;
    }

    private string? Meta(ITaskItem item, string name) => item.GetMetadata(name) is { Length: > 0 } v ? v : null;

    private string Full(string path) => Path.GetFullPath(Path.Combine(ProjectDirectory, path));

    private void Error(ErrorCode code, string message) =>
        Log.LogError(null, code.Text(), null, BuildEngine?.ProjectFileOfTaskNode, 0, 0, 0, 0, message);

    private static string Hash(params string[] parts)
    {
        using var sha = SHA256.Create();
        var bytes = sha.ComputeHash(Encoding.UTF8.GetBytes(string.Join("\n", parts)));
        return BitConverter.ToString(bytes).Replace("-", "").ToLowerInvariant() + "\n";
    }

    /// <summary>
    /// Writes only when the content changes, so the file's timestamp says when the content last changed. The new
    /// content goes to a temp file of this call's own and is renamed over the old one: another build preparing the
    /// same project at the same moment sees the old or the new file, never a half-written one.
    /// </summary>
    internal static void WriteIfDifferent(string path, string content, DateTime? writeTimeUtc)
    {
        if (File.Exists(path) && File.ReadAllText(path) == content) return;
        AtomicTaskFile.Write(path, content, writeTimeUtc);
    }
}

/// <summary>
/// The dependency file <c>quant-check export --deps-file</c> writes: one entry per line, <c>kind path</c>;
/// kinds <c>config</c>, <c>model</c>, <c>data</c> (a file read), <c>glob</c> (<c>base-dir TAB pattern</c>, to
/// notice new files), <c>file</c> (any other file read, e.g. external tensor data) and <c>stat</c> (<c>path TAB size
/// TAB ticks</c>: an input as the command read it; the check's deps file has <c>file</c> and <c>stat</c> lines only).
/// </summary>
internal sealed class DepsFile
{
    public bool Exists { get; private set; }
    public DateTime WriteTimeUtc { get; private set; }
    public List<string> Files { get; } = new List<string>();
    public List<string> Others { get; } = new List<string>();
    public List<(string BaseDirectory, string Pattern)> Globs { get; } = new List<(string, string)>();
    /// <summary><c>stat PATH\tSIZE\tTICKS</c> (or <c>PATH\tmissing</c>): each input as the command found it.</summary>
    public List<(string Path, string Stat)> Stats { get; } = new List<(string, string)>();

    /// <summary>Whether an input's size or last write time is not what the command saw (the reverse of its writer's stat line).</summary>
    public bool AnyInputChanged() => Stats.Any(s => InputStat.Of(s.Path) != s.Stat);

    public static DepsFile Read(string path)
    {
        var d = new DepsFile();
        if (!File.Exists(path)) return d;
        d.Exists = true;
        d.WriteTimeUtc = File.GetLastWriteTimeUtc(path);
        foreach (var line in File.ReadAllLines(path))
        {
            int sp = line.IndexOf(' ');
            if (sp <= 0 || line.StartsWith("#", StringComparison.Ordinal)) continue;
            var kind = line.Substring(0, sp);
            var value = line.Substring(sp + 1);
            switch (kind)
            {
                case "data": d.Files.Add(value); break;
                case "glob":
                    int tab = value.IndexOf('\t');
                    if (tab > 0) d.Globs.Add((value.Substring(0, tab), value.Substring(tab + 1)));
                    break;
                case "file": d.Others.Add(value); break;
                case "stat":
                    int t = value.IndexOf('\t');
                    if (t > 0) d.Stats.Add((value.Substring(0, t), value.Substring(t + 1)));
                    break;
            }
        }
        return d;
    }
}
