namespace Quant.Core.Compilation;

/// <summary>What the compile plans for: the static input shapes of the memory plan and the cost estimate.</summary>
public sealed record CompileOptions
{
    /// <summary>Planned shape per input name; inputs not listed use their declared dims.</summary>
    public IReadOnlyDictionary<string, int[]> InputShapes { get; init; } = new Dictionary<string, int[]>();
    /// <summary>
    /// Size planned for a declared-unknown dim of an unlisted input: axis 0 (batch) is 1, every other unknown dim this
    /// (640: the PaddleOCR det/rec side the docs and benchmarks use).
    /// </summary>
    public int UnknownDimension { get; init; } = 640;
}
