using Quant.Onnx;

namespace Quant.Engine;

/// <summary>What a kernel factory may look at: the node, the opset in force, and inputs known at plan time.</summary>
public sealed class KernelSetup
{
    private readonly Func<string, Tensor?> _constantLookup;

    internal KernelSetup(Node node, long opset, Func<string, Tensor?> constantLookup)
    {
        Node = node;
        Opset = opset;
        _constantLookup = constantLookup;
    }

    public Node Node { get; }
    /// <summary>Opset version of the node's domain imported by the model.</summary>
    public long Opset { get; }

    /// <summary>Input <paramref name="index"/> if it is a constant (initializer or folded), else null. Do not mutate it.</summary>
    public Tensor? Constant(int index)
    {
        var name = Node.InputOrNull(index);
        return name is null ? null : _constantLookup(name);
    }

    /// <summary>An <see cref="EngineException"/> naming this node.</summary>
    public EngineException Error(string message) => new($"{Node.Describe()}: {message}");
}
