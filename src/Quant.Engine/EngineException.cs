namespace Quant.Engine;

/// <summary>
/// An error while planning or running a graph: an unsupported operator, a shape that does not fit,
/// an input that is missing. The message names the node (or input) and the shapes involved.
/// </summary>
public sealed class EngineException : Exception
{
    public EngineException(string message, Exception? inner = null) : base(message, inner) { }
}
