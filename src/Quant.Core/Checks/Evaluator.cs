using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Engine;

namespace Quant.Core.Checks;

/// <summary>
/// The folder an evaluator reads: <c>NNNN/OUTPUT.npy</c> per sample (output names with characters other than
/// letters, digits, '.', '_' and '-' replaced by '_') and <c>index.json</c> mapping each sample's source file
/// and output names to those files.
/// </summary>
public sealed class OutputFolder
{
    private readonly List<(int Index, string Source, SortedDictionary<string, string> Files)> _samples = [];

    public OutputFolder(string path)
    {
        Root = path;
        Directory.CreateDirectory(path);
    }

    public string Root { get; }

    public void Add(int index, string source, IReadOnlyDictionary<string, Tensor> outputs)
    {
        var sub = index.ToString("D4", CultureInfo.InvariantCulture);
        Directory.CreateDirectory(Path.Combine(Root, sub));
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, t) in outputs)
        {
            var rel = $"{sub}/{SafeName(name)}.npy";
            try { Npy.Write(Path.Combine(Root, sub, SafeName(name) + ".npy"), t); }
            catch (NotSupportedException) { continue; } // a type .npy cannot hold (string): the evaluator cannot read it anyway
            files[name] = rel;
        }
        _samples.Add((index, source, files));
    }

    public void WriteIndex()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartArray("samples");
            foreach (var (index, source, files) in _samples)
            {
                w.WriteStartObject();
                w.WriteNumber("index", index);
                w.WriteString("source", source);
                w.WriteStartObject("outputs");
                foreach (var (k, v) in files) w.WriteString(k, v);
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        AtomicText.Write(Path.Combine(Root, "index.json"), Encoding.UTF8.GetString(ms.ToArray()) + "\n");
    }

    public static string SafeName(string name)
    {
        var sb = new StringBuilder(name.Length);
        foreach (var c in name) sb.Append(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '_');
        return sb.ToString();
    }
}

/// <summary>Runs an evaluator command and reads its metric (errors are QB5003 at the command in the yaml).</summary>
public static class EvaluatorRunner
{
    public const string OutputsVariable = "QUANT_OUTPUTS";
    public const string ReferenceVariable = "QUANT_REFERENCE";
    public const string ResultVariable = "QUANT_EVALUATOR_RESULT";

    /// <summary>
    /// Runs <paramref name="evaluator"/>'s command through the shell (<c>/bin/sh -c</c>; <c>cmd /c</c> on Windows) in
    /// <paramref name="workDir"/> with <c>{outputs}</c> and <c>{reference}</c> replaced by the folders, and returns the metric.
    /// </summary>
    public static double Run(EvaluatorConfig evaluator, string outputs, string reference, string resultFile, string workDir,
        IReadOnlyDictionary<string, string> environment, CancellationToken cancel)
    {
        var command = evaluator.Command.Replace("{outputs}", outputs, StringComparison.Ordinal).Replace("{reference}", reference, StringComparison.Ordinal);
        if (File.Exists(resultFile)) File.Delete(resultFile);
        var psi = OperatingSystem.IsWindows()
            ? new ProcessStartInfo("cmd.exe") { ArgumentList = { "/d", "/s", "/c", command } }
            : new ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", command } };
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.UseShellExecute = false;
        psi.WorkingDirectory = workDir;
        psi.Environment[OutputsVariable] = outputs;
        psi.Environment[ReferenceVariable] = reference;
        psi.Environment[ResultVariable] = resultFile;
        foreach (var (k, v) in environment) psi.Environment[k] = v;

        QuantException Fail(string message) => new(ErrorCode.CheckEvaluatorFailed, evaluator.CommandPosition, $"evaluator '{evaluator.Metric}': {message}");

        Process process;
        try { process = Process.Start(psi)!; }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException) { throw Fail($"cannot start the shell: {e.Message}"); }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
            var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
            bool exited;
            try { exited = process.WaitForExitAsync(cancel).Wait(TimeSpan.FromSeconds(evaluator.TimeoutSeconds)); }
            catch (AggregateException e) when (e.InnerException is OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new OperationCanceledException(cancel);
            }
            if (!exited)
            {
                process.Kill(entireProcessTree: true);
                throw Fail($"the command did not finish within {evaluator.TimeoutSeconds} s (evaluator.timeout)");
            }
            process.WaitForExit();
            string output = stdout.Result, errors = stderr.Result;
            if (process.ExitCode != 0)
            {
                var last = errors.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();
                throw Fail($"the command exited with code {process.ExitCode}" + (last is null ? "" : $": {last}"));
            }
            var (json, from) = File.Exists(resultFile) ? (File.ReadAllText(resultFile), $"${ResultVariable}") : (output, "its output");
            var obj = ParseObject(json) ?? throw Fail($"{from} holds no JSON object (print one, e.g. {{\"{evaluator.Metric}\": 0.97}})");
            using (obj)
            {
                if (!obj.RootElement.TryGetProperty(evaluator.Metric, out var v))
                    throw Fail($"the JSON object from {from} has no '{evaluator.Metric}' (it has: {string.Join(", ", obj.RootElement.EnumerateObject().Select(p => p.Name))})");
                if (v.ValueKind == JsonValueKind.Number) return v.GetDouble();
                if (v.ValueKind == JsonValueKind.String && double.TryParse(v.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d)) return d;
                throw Fail($"'{evaluator.Metric}' in {from} is {v.ValueKind.ToString().ToLowerInvariant()}, not a number");
            }
        }
    }

    /// <summary>The whole text as a JSON object, else the last line that is one (so a command may log before it).</summary>
    private static JsonDocument? ParseObject(string text)
    {
        if (TryObject(text.Trim()) is { } whole) return whole;
        foreach (var line in text.Split('\n').Select(l => l.Trim()).Reverse())
            if (line.StartsWith('{') && TryObject(line) is { } d) return d;
        return null;
    }

    private static JsonDocument? TryObject(string text)
    {
        if (!text.StartsWith('{')) return null;
        try
        {
            var d = JsonDocument.Parse(text);
            if (d.RootElement.ValueKind == JsonValueKind.Object) return d;
            d.Dispose();
        }
        catch (JsonException) { }
        return null;
    }
}
