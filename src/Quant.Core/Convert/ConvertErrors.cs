using System.Globalization;
using Quant.Core.Diagnostics;

namespace Quant.Core.Conversion;

/// <summary>The errors of docs/quantization-spec.md §3.6, each at the qat model file, naming the node and tensor and the fix.</summary>
internal static class ConvertErrors
{
    public static QuantException At(string modelFile, ErrorCode code, string message) =>
        new(code, SourcePosition.InFile(modelFile), message);

    public static string Num(double v) => v.ToString("G9", CultureInfo.InvariantCulture);
}
