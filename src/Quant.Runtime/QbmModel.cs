using Quant.Engine;

namespace Quant.Runtime;

/// <summary>A loaded, validated NAME.qbm (docs/artifact-format.md). Placeholder API until the compile stage lands.</summary>
public sealed class QbmModel
{
    private QbmModel() { }

    /// <summary>Reads and validates a .qbm (version, hash, every offset and size) before anything runs.</summary>
    public static QbmModel Load(string path) => throw new NotSupportedException($"{path}: .qbm loading is not implemented yet");

    /// <summary>Runs the program on named float/integer inputs; returns the graph outputs by name.</summary>
    public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs) =>
        throw new NotSupportedException(".qbm execution is not implemented yet");
}
