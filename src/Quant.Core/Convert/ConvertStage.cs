using Quant.Core.Diagnostics;
using Quant.Onnx;

namespace Quant.Core.Conversion;

/// <summary>What one convert run produced (the full per-node list is in NAME.convert.json).</summary>
public sealed record ConvertSummary(int IntegerGroups, int FloatIslands, string ReportPath)
{
    /// <summary>Per computing node of the qat model: what it became.</summary>
    public IReadOnlyList<ConvertedNode> Nodes { get; init; } = [];
}

/// <summary>The convert stage: NAME.qat.onnx → NAME.quantized.onnx (+ NAME.convert.json), docs/quantized-model.md.</summary>
public static class ConvertStage
{
    /// <summary>The file name of the quantized model for a model called <paramref name="name"/>.</summary>
    public static string FileName(string name) => name + ".quantized.onnx";

    /// <summary>NAME.convert.json beside NAME.quantized.onnx.</summary>
    public static string ReportPath(string quantizedPath)
    {
        var file = Path.GetFileName(quantizedPath);
        var stem = file.EndsWith(".quantized.onnx", StringComparison.Ordinal) ? file[..^".quantized.onnx".Length] : Path.GetFileNameWithoutExtension(file);
        return Path.Combine(Path.GetDirectoryName(Path.GetFullPath(quantizedPath))!, stem + ".convert.json");
    }

    /// <summary>Converts <paramref name="qatPath"/>, writing <paramref name="quantizedPath"/> and its report atomically.</summary>
    /// <exception cref="QuantException">QB3001 (unreadable model), QB7001–QB7008 (spec §3.6)</exception>
    public static ConvertSummary Run(string qatPath, string quantizedPath)
    {
        OnnxModel model;
        try
        {
            model = OnnxModelReader.Load(qatPath);
        }
        catch (Exception e) when (e is OnnxFormatException or IOException or UnauthorizedAccessException)
        {
            throw new QuantException(ErrorCode.ModelUnreadable, SourcePosition.InFile(qatPath), $"cannot read the qat model: {e.Message}", e);
        }
        var (quantized, nodes) = Converter.Convert(model, qatPath);
        var bytes = OnnxModelWriter.ToBytes(quantized);
        var reportPath = ReportPath(quantizedPath);
        var dir = Path.GetDirectoryName(Path.GetFullPath(quantizedPath))!;
        Directory.CreateDirectory(dir);
        AtomicFile.Write(quantizedPath, s => s.Write(bytes));
        AtomicText.Write(reportPath, ConvertReport.Json(Path.GetFileName(qatPath), Path.GetFileName(quantizedPath), nodes));
        return new ConvertSummary(nodes.Count(n => n.FloatIsland is null), nodes.Count(n => n.FloatIsland is not null), reportPath) { Nodes = nodes };
    }
}
