using Quant.Onnx;

namespace Quant.Engine;

/// <summary>What a kernel factory may look at: the node, the opset in force, and inputs known at plan time.</summary>
public sealed class KernelSetup
{
    private readonly Func<string, Tensor?> _constantLookup;
    private readonly PackedWeightsStore? _packed;

    internal KernelSetup(Node node, long opset, Func<string, Tensor?> constantLookup, PackedWeightsStore? packed = null)
    {
        Node = node;
        Opset = opset;
        _constantLookup = constantLookup;
        _packed = packed;
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

    /// <summary>
    /// The node's packed GEMM weights of <paramref name="slot"/> (one matrix B[<paramref name="k"/>, <paramref name="n"/>]
    /// per group): the pre-packed ones the session was given (a compiled model; checked against the shape the kernel
    /// needs, taken without packing), else packed by <paramref name="pack"/> when first used.
    /// </summary>
    internal Lazy<T[]> Packed<T>(string slot, int groups, int k, int n, Func<T[]> pack) where T : class, IPackedGemm<T>
    {
        var lazy = _packed?.Take(Node, slot, groups, k, n, T.FromPacked) is { } given
            ? new Lazy<T[]>(given)
            : new Lazy<T[]>(() => { _packed?.CountPacking(); return pack(); });
        _packed?.Register(Node, slot, () => lazy.IsValueCreated ? lazy.Value.Select(w => w.ToPacked()).ToArray() : null);
        return lazy;
    }

    /// <summary>As <see cref="Packed{T}"/> for a node with one weight matrix.</summary>
    internal Lazy<T> Packed<T>(string slot, int k, int n, Func<T> pack) where T : class, IPackedGemm<T>
    {
        var all = Packed<T>(slot, 1, k, n, () => [pack()]);
        return new Lazy<T>(() => all.Value[0]);
    }
}
