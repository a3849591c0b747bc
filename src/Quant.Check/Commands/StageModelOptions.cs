using System.CommandLine;

namespace Quant.Check.Commands;

/// <summary>The later stages' models a check measures: <c>--quantized</c> and <c>--compiled</c> (check and baseline update).</summary>
internal static class StageModelOptions
{
    public static (Option<FileInfo?> Quantized, Option<FileInfo?> Compiled) Create() =>
        (new Option<FileInfo?>("--quantized") { Description = "The convert stage's NAME.quantized.onnx: measures quantized_vs_qat (both in the engine)" },
         new Option<FileInfo?>("--compiled") { Description = "The compile stage's NAME.qbm: measures compiled_vs_quantized (Quant.Runtime against the engine; must be bit-exact)" });
}
