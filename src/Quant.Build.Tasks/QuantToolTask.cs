using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Quant.Core.Diagnostics;

namespace Quant.Build.Tasks;

/// <summary>
/// Runs one <c>quant-check</c> command out of process (<c>dotnet quant-check.dll @response-file</c>), so the
/// engine, its dependencies and its memory never live in the MSBuild node. The tool prints canonical
/// diagnostics (<c>file(line,col): error QBnnnn: ...</c>), which ToolTask turns into MSBuild errors and
/// warnings as they stream. Cancelling the build kills the tool (ToolTask's cancel), and the stamp file —
/// the only output the stage targets trust — is written only after the tool exited with 0.
/// </summary>
public abstract class QuantToolTask : ToolTask
{
    /// <summary>The framework-dependent <c>quant-check.dll</c> to launch.</summary>
    [Required] public string ToolDll { get; set; } = "";

    /// <summary>Deleted before the run and written after a successful one (exit code 0, no error logged).</summary>
    public string? StampFile { get; set; }

    /// <summary>When set, a run that reported warnings writes no stamp, so the next build runs it again and the warnings stay visible.</summary>
    public bool RerunWhenWarnings { get; set; }

    /// <summary>Shown at normal verbosity when the stage starts and ends, e.g. "export cls".</summary>
    public string? Description { get; set; }

    /// <summary>
    /// <c>$(QuantLockTimeout)</c>: seconds the tool waits while another build holds the model's lock (QUANT_LOCK_TIMEOUT
    /// for the tool); empty: the tool's default.
    /// </summary>
    public string? LockTimeout { get; set; }

    /// <summary>How the tool's line saying it waits for another build's lock starts (it is shown at normal verbosity).</summary>
    private const string WaitingPrefix = "quant-check: waiting for another build";

    private bool _sawWarning;
    private readonly Stopwatch _clock = new Stopwatch();

    protected override string ToolName => RuntimeInformationHelper.IsWindows ? "dotnet.exe" : "dotnet";

    /// <summary>The tool's own lines are detail; its diagnostics are parsed and logged whatever the importance.</summary>
    protected override MessageImportance StandardOutputLoggingImportance => MessageImportance.Low;
    protected override MessageImportance StandardErrorLoggingImportance => MessageImportance.Low;

    protected override Encoding ResponseFileEncoding => new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);

    /// <summary>The host that runs this build (so the tool runs on the same .NET), else <c>dotnet</c> from PATH.</summary>
    protected override string GenerateFullPathToTool()
    {
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        return !string.IsNullOrEmpty(host) && File.Exists(host) ? host! : ToolName;
    }

    protected override string GenerateCommandLineCommands() => Quote(ToolDll);

    protected override string GenerateResponseFileCommands()
    {
        var args = new ArgumentList();
        AddArguments(args);
        return args.ToString();
    }

    /// <summary>The command and its arguments, one token per call.</summary>
    protected abstract void AddArguments(ArgumentList args);

    protected override bool ValidateParameters()
    {
        if (!File.Exists(ToolDll))
        {
            Log.LogError(null, ErrorCode.BuildToolNotFound.Text(), null, null, 0, 0, 0, 0, "the quant-check tool was not found at '{0}'; the Quant.Build package is incomplete or QuantToolPath points elsewhere", ToolDll);
            return false;
        }
        return base.ValidateParameters();
    }

    public override bool Execute()
    {
        if (!string.IsNullOrEmpty(StampFile) && File.Exists(StampFile)) File.Delete(StampFile);
        if (!string.IsNullOrEmpty(Description)) Log.LogMessage(MessageImportance.Normal, "Quant: {0} started", Description);
        _clock.Start();
        bool ok = base.Execute() && !Log.HasLoggedErrors;
        _clock.Stop();
        if (!string.IsNullOrEmpty(Description))
            Log.LogMessage(MessageImportance.Normal, "Quant: {0} {1} in {2:F1} s", Description, ok ? "finished" : "failed", _clock.Elapsed.TotalSeconds);
        if (ok && !(RerunWhenWarnings && _sawWarning))
        {
            OnSucceeded();
            // Atomically, and recording the artifacts as the tool left them (StageStamp): the next build trusts them only if they still are.
            if (!string.IsNullOrEmpty(StampFile)) StageStamp.Write(StampFile!, StampedArtifacts());
        }
        return ok;
    }

    /// <summary>The artifacts the stamp vouches for (their size and write time are recorded in it).</summary>
    protected virtual IEnumerable<string> StampedArtifacts() => Array.Empty<string>();

    /// <summary>Runs after a successful tool run, before the stamp is written.</summary>
    protected virtual void OnSucceeded() { }

    /// <summary>Appends <c>LINE TIME</c> to the model's run log (the build's record of which stages ran).</summary>
    protected static void AppendRunLog(string? runLog, string line)
    {
        if (string.IsNullOrEmpty(runLog)) return;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(runLog))!);
        File.AppendAllText(runLog, $"{line} {DateTime.UtcNow:o}{Environment.NewLine}");
    }

    /// <summary>The tool's environment: the lock wait, when the build sets one.</summary>
    protected override ProcessStartInfo GetProcessStartInfo(string pathToTool, string commandLineCommands, string responseFileSwitch)
    {
        var info = base.GetProcessStartInfo(pathToTool, commandLineCommands, responseFileSwitch);
        if (!string.IsNullOrWhiteSpace(LockTimeout)) info.EnvironmentVariables["QUANT_LOCK_TIMEOUT"] = LockTimeout!.Trim();
        return info;
    }

    protected override void LogEventsFromTextOutput(string singleLine, MessageImportance messageImportance)
    {
        if (singleLine.IndexOf(": warning QB", StringComparison.Ordinal) >= 0) _sawWarning = true;
        // Another build of the same model is running: say so where the user looks, not only in detailed logs.
        if (singleLine.StartsWith(WaitingPrefix, StringComparison.Ordinal)) messageImportance = MessageImportance.High;
        base.LogEventsFromTextOutput(singleLine, messageImportance);
    }

    internal static string Quote(string s) =>
        s.Length > 0 && s.IndexOfAny(new[] { ' ', '\t', '"', '\'', '@' }) < 0 ? s : "\"" + s.Replace("\"", "\\\"") + "\"";
}

/// <summary>Response-file lines: one token per line, quoted when it holds spaces (System.CommandLine's format).</summary>
public sealed class ArgumentList
{
    private readonly StringBuilder _text = new StringBuilder();

    public ArgumentList Add(string token)
    {
        _text.Append(QuantToolTask.Quote(token)).Append('\n');
        return this;
    }

    public ArgumentList Add(string option, string? value)
    {
        if (!string.IsNullOrEmpty(value)) Add(option).Add(value!);
        return this;
    }

    public ArgumentList AddFlag(string option, bool on)
    {
        if (on) Add(option);
        return this;
    }

    public override string ToString() => _text.ToString();
}

internal static class RuntimeInformationHelper
{
    public static bool IsWindows => Path.DirectorySeparatorChar == '\\';
}
