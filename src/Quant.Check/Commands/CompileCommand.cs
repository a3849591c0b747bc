using System.CommandLine;
using System.Globalization;
using Quant.Core.Compilation;

namespace Quant.Check.Commands;

/// <summary>
/// <c>quant-check compile</c>: NAME.quantized.onnx → NAME.qbm, the deployable program Quant.Runtime loads
/// (docs/artifact-format.md), and its cost report NAME.compile.json.
/// </summary>
internal static class CompileCommand
{
    public const string QbmSuffix = ".qbm";

    public static Command Create()
    {
        var quantized = new Argument<FileInfo>("quantized") { Description = "The integer model (NAME.quantized.onnx) from quant-check convert" };
        var output = new Option<FileInfo?>("--out", "-o") { Description = "The program to write (default: NAME.qbm beside the quantized model)" };
        var inputShapes = new Option<string[]>("--input-shape")
        {
            Description = "NAME=D1xD2x...: the input shape the static memory plan and the cost estimate are made for (repeatable; " +
                          "default: the declared dims, batch 1 and 640 for other unknown dims)",
            AllowMultipleArgumentsPerToken = false,
        };
        var cmd = new Command("compile", "Compile an integer model into the deployable program Quant.Runtime runs (NAME.qbm)") { quantized, output, inputShapes };
        cmd.SetAction(parse => CliErrors.Guard(() =>
        {
            var input = parse.GetValue(quantized)!.FullName;
            var target = parse.GetValue(output)?.FullName ?? ConvertCommand.Sibling(input, ConvertCommand.QuantizedSuffix, QbmSuffix);
            CliFiles.RequireInput(input, "quantized model");
            CliFiles.RequireDistinct(input, target);
            var options = new CompileOptions { InputShapes = ParseShapes(parse.GetValue(inputShapes) ?? []) };
            using var held = Quant.Core.Diagnostics.ModelLock.Acquire(Path.GetDirectoryName(target)!, CliLock.NameOf(target, QbmSuffix), CliLock.Announce);
            var summary = CompileStage.Run(input, target, options);
            var inv = CultureInfo.InvariantCulture;
            Console.WriteLine($"{summary.OpCount} ops; arena {summary.ArenaBytes.ToString("N0", inv)} bytes; estimated {summary.EstimatedMilliseconds.ToString("F2", inv)} ms per run");
            Console.WriteLine($"program:        {target} ({summary.QbmBytes.ToString("N0", inv)} bytes)");
            Console.WriteLine($"compile report: {summary.ReportPath}");
            return 0;
        }));
        return cmd;
    }

    /// <summary><c>NAME=1x3x48x192</c> each (x separates dims so that MSBuild's -p: and lists never split a shape).</summary>
    internal static Dictionary<string, int[]> ParseShapes(IEnumerable<string> specs)
    {
        var shapes = new Dictionary<string, int[]>(StringComparer.Ordinal);
        foreach (var spec in specs)
        {
            int eq = spec.IndexOf('=');
            var dims = eq > 0 ? spec[(eq + 1)..].Split('x', 'X') : [];
            var parsed = dims.Select(d => int.TryParse(d.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : 0).ToArray();
            if (eq <= 0 || parsed.Length == 0 || parsed.Contains(0))
                throw new CliUsageException($"--input-shape '{spec}': expected NAME=D1xD2x... with positive dims, e.g. x=1x3x48x192");
            var name = spec[..eq].Trim();
            if (!shapes.TryAdd(name, parsed)) throw new CliUsageException($"--input-shape: '{name}' is given twice");
        }
        return shapes;
    }
}
