namespace Quant.Core.Compilation;

/// <summary>What one compile run produced (the full per-op estimate is in NAME.compile.json).</summary>
public sealed record CompileSummary(long ArenaBytes, double EstimatedMilliseconds, string ReportPath);

/// <summary>The compile stage: NAME.quantized.onnx → NAME.qbm (+ NAME.compile.json), docs/artifact-format.md.</summary>
public static class CompileStage
{
    /// <summary>Compiles <paramref name="quantizedPath"/>, writing <paramref name="qbmPath"/> and its report atomically.</summary>
    public static CompileSummary Run(string quantizedPath, string qbmPath) =>
        throw new NotSupportedException("compile is not implemented yet");
}
