namespace Quant.Core.Conversion;

/// <summary>What one convert run produced (the full per-node list is in NAME.convert.json).</summary>
public sealed record ConvertSummary(int IntegerGroups, int FloatIslands, string ReportPath);

/// <summary>The convert stage: NAME.qat.onnx → NAME.quantized.onnx (+ NAME.convert.json), docs/quantized-model.md.</summary>
public static class ConvertStage
{
    /// <summary>Converts <paramref name="qatPath"/>, writing <paramref name="quantizedPath"/> and its report atomically.</summary>
    public static ConvertSummary Run(string qatPath, string quantizedPath) =>
        throw new NotSupportedException("convert is not implemented yet");
}
