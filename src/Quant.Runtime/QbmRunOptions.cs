namespace Quant.Runtime;

/// <summary>How a loaded .qbm runs. Results do not depend on these options: every kernel is bit-exact at any thread count.</summary>
public sealed record QbmRunOptions
{
    public static QbmRunOptions Default { get; } = new();

    /// <summary>Most threads one op may use (at least 1; 1 runs everything on the calling thread). Default: all cores.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
}
