using Quant.Onnx;

namespace Quant.Engine;

/// <summary>A value as the engine produced it: its name, the node that produced it (null for graph inputs).</summary>
public readonly record struct ObservedValue(string Name, Tensor Value, Node? Producer);

/// <summary>
/// Sees every value of a run as it is produced (graph inputs first, then each node output in plan
/// order). The tensor's buffer is reused after its last consumer runs: copy what you keep
/// (<see cref="Tensor.Clone"/>). Return a tensor to replace the value for all downstream consumers
/// (fake quantization hooks in here), or null to leave it.
/// </summary>
public interface IValueObserver
{
    Tensor? OnValue(in ObservedValue value);
}

/// <summary>Every value of a run by name, kept so that a later run can reuse the upstream part.</summary>
public sealed class ValueCache
{
    private readonly Dictionary<string, Tensor> _values = new(StringComparer.Ordinal);

    public int Count => _values.Count;
    public IEnumerable<string> Names => _values.Keys;
    public Tensor this[string name] => _values[name];
    public bool TryGet(string name, out Tensor value) => _values.TryGetValue(name, out value!);
    internal void Set(string name, Tensor value) => _values[name] = value;
}

public sealed class RunOptions
{
    public IValueObserver? Observer { get; init; }
    /// <summary>When set, every value of the run (inputs, intermediates, outputs) is kept here instead of being recycled.</summary>
    public ValueCache? KeepValues { get; init; }
}

public sealed class SessionOptions
{
    /// <summary>Most threads a kernel may use; 1 runs everything on the calling thread.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
    public KernelRegistry Registry { get; init; } = KernelRegistry.Default;
    /// <summary>Evaluate nodes whose inputs are all constant once, when the plan is built.</summary>
    public bool FoldConstants { get; init; } = true;
}
