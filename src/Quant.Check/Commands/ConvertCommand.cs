using System.CommandLine;
using Quant.Core.Conversion;

namespace Quant.Check.Commands;

/// <summary>
/// <c>quant-check convert</c>: NAME.qat.onnx → NAME.quantized.onnx, the integer model our engine runs bit-exactly
/// (docs/quantized-model.md), and its per-node report NAME.convert.json.
/// </summary>
internal static class ConvertCommand
{
    public const string QatSuffix = ".qat.onnx";
    public const string QuantizedSuffix = ".quantized.onnx";

    public static Command Create()
    {
        var qat = new Argument<FileInfo>("qat") { Description = "The exported fake-quant QDQ model (NAME.qat.onnx)" };
        var output = new Option<FileInfo?>("--out", "-o") { Description = "The integer model to write (default: NAME.quantized.onnx beside the qat model)" };
        var cmd = new Command("convert", "Convert a qat model into the integer model our engine runs bit-exactly (NAME.quantized.onnx)") { qat, output };
        cmd.SetAction(parse => CliErrors.Guard(() =>
        {
            var input = parse.GetValue(qat)!.FullName;
            var target = parse.GetValue(output)?.FullName ?? Sibling(input, QatSuffix, QuantizedSuffix);
            CliFiles.RequireInput(input, "qat model");
            CliFiles.RequireDistinct(input, target);
            using var held = Quant.Core.Diagnostics.ModelLock.Acquire(Path.GetDirectoryName(target)!, CliLock.NameOf(target, QuantizedSuffix), CliLock.Announce);
            var summary = ConvertStage.Run(input, target);
            Console.WriteLine($"integer groups: {summary.IntegerGroups}, float islands: {summary.FloatIslands}");
            Console.WriteLine($"quantized model: {target}");
            Console.WriteLine($"convert report:  {summary.ReportPath}");
            return 0;
        }));
        return cmd;
    }

    /// <summary>NAME + <paramref name="to"/> in the folder of <paramref name="path"/>, NAME being the file name without <paramref name="from"/> (else without its extension).</summary>
    internal static string Sibling(string path, string from, string to)
    {
        var file = Path.GetFileName(path);
        var name = file.EndsWith(from, StringComparison.OrdinalIgnoreCase) ? file[..^from.Length] : Path.GetFileNameWithoutExtension(file);
        return Path.Combine(Path.GetDirectoryName(path)!, name + to);
    }
}
