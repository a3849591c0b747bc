using Quant.Core.Diagnostics;
using Quant.Core.Stages;
using Quant.Runtime;

namespace Quant.Core.Compilation;

/// <summary>What one compile run produced (the full per-op estimate is in NAME.compile.json).</summary>
public sealed record CompileSummary(long ArenaBytes, double EstimatedMilliseconds, string ReportPath)
{
    public string QbmPath { get; init; } = "";
    public long QbmBytes { get; init; }
    public int OpCount { get; init; }
}

/// <summary>The compile stage: NAME.quantized.onnx → NAME.qbm (+ NAME.compile.json), docs/artifact-format.md.</summary>
public static class CompileStage
{
    /// <summary>Compiles <paramref name="quantizedPath"/>, writing <paramref name="qbmPath"/> and its report atomically.</summary>
    public static CompileSummary Run(string quantizedPath, string qbmPath) => Run(quantizedPath, qbmPath, new CompileOptions());

    public static CompileSummary Run(string quantizedPath, string qbmPath, CompileOptions options)
    {
        var model = StageModels.Load(quantizedPath);
        var result = QbmCompiler.Compile(model, quantizedPath, options);
        var bytes = QbmWriter.Write(result.File);
        // The writer and the loader must agree before anything is published: load what we are about to write.
        try { QbmValidator.Validate(QbmReader.Read(bytes, qbmPath), qbmPath); }
        catch (QbmFormatException e) { throw new InvalidOperationException($"the compiler wrote an invalid .qbm: {e.Message}", e); }

        var reportPath = ReportPath(qbmPath);
        var dir = Path.GetDirectoryName(Path.GetFullPath(qbmPath))!;
        Directory.CreateDirectory(dir);
        AtomicFile.Write(qbmPath, s => s.Write(bytes));
        AtomicText.Write(reportPath, CompileReport.Json(result, Path.GetFileName(quantizedPath), Path.GetFileName(qbmPath), bytes.LongLength));
        return new CompileSummary(result.File.MemoryPlan.ArenaBytes, result.File.Cost.TotalMicroseconds / 1000, reportPath)
        {
            QbmPath = qbmPath, QbmBytes = bytes.LongLength, OpCount = result.File.Ops.Count,
        };
    }

    /// <summary>NAME.compile.json beside NAME.qbm.</summary>
    public static string ReportPath(string qbmPath)
    {
        var full = Path.GetFullPath(qbmPath);
        var name = Path.GetFileName(full);
        if (name.EndsWith(".qbm", StringComparison.OrdinalIgnoreCase)) name = name[..^4];
        return Path.Combine(Path.GetDirectoryName(full)!, name + ".compile.json");
    }
}
