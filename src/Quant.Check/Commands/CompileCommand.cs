using System.CommandLine;
using System.Globalization;
using Quant.Core.Compilation;
using Quant.Core.Stages;

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
        var skipVerify = new Option<bool>("--skip-verify") { Description = "Do not load the written program back with Quant.Runtime (which validates its version, hash and every offset and size) before reporting success" };
        var cmd = new Command("compile", "Compile an integer model into the deployable program Quant.Runtime runs (NAME.qbm)") { quantized, output, skipVerify };
        cmd.SetAction(parse => CliErrors.Guard(() =>
        {
            var input = parse.GetValue(quantized)!.FullName;
            var target = parse.GetValue(output)?.FullName ?? ConvertCommand.Sibling(input, ConvertCommand.QuantizedSuffix, QbmSuffix);
            CliFiles.RequireInput(input, "quantized model");
            CliFiles.RequireDistinct(input, target);
            var summary = CompileStage.Run(input, target);
            // Loaded back as a deployment would load it: a program Quant.Runtime refuses fails here, not on a device.
            if (!parse.GetValue(skipVerify))
            {
                try { CompiledModels.Load(target); }
                catch
                {
                    File.Delete(target); // a program the runtime refuses is no artifact to leave behind
                    throw;
                }
                Console.WriteLine("verified: Quant.Runtime loads and validates the program");
            }
            var inv = CultureInfo.InvariantCulture;
            Console.WriteLine($"arena: {summary.ArenaBytes.ToString("N0", inv)} bytes, estimated {summary.EstimatedMilliseconds.ToString("F2", inv)} ms per run");
            Console.WriteLine($"program:        {target}");
            Console.WriteLine($"compile report: {summary.ReportPath}");
            return 0;
        }));
        return cmd;
    }
}
