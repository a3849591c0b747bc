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
/// <summary>
/// A read-only observer that can take the values computed inside a fused elementwise chain tile by tile. With one,
/// a run keeps the fused plan: values between steps come to <see cref="IValueObserver.OnValue"/> as usual (its
/// result is ignored: nothing is replaced), and each float value that only exists inside a fused chain comes to
/// <see cref="OnTile(string, ReadOnlySpan{float}, int)"/> as consecutive pieces during that step. With
/// <see cref="TileLanes"/> 1 they come in order on the calling thread (the chain then runs its tiles on one thread);
/// with more, the chain splits its tiles into up to that many contiguous runs ("lanes", numbered from 0) that run at
/// the same time on the session's threads: each lane's pieces come in order on one thread at a time, pieces of
/// different lanes concurrently. Integer values inside a fused Quantize→Dequantize pair are not seen.
/// </summary>
public interface ITileObserver : IValueObserver
{
    /// <summary>False to be an ordinary observer for now (the run then executes the unfused plan).</summary>
    bool TakesTiles { get; }

    /// <summary>Most lanes the observer takes pieces in at once (see the type); 1 means in order on one thread.</summary>
    int TileLanes => 1;

    /// <summary>The next piece of float value <paramref name="name"/> in <paramref name="lane"/> (valid only during the call).</summary>
    void OnTile(string name, ReadOnlySpan<float> tile, int lane);
}

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
    /// <summary>When set, each executed node's wall time is added here (where the time goes, for benchmarks).</summary>
    public NodeTimings? Timings { get; init; }
}

/// <summary>Accumulated wall time per node over one or more runs.</summary>
public sealed class NodeTimings
{
    private readonly Dictionary<Node, (long Ticks, int Calls)> _byNode = new(ReferenceEqualityComparer.Instance);

    internal void Add(Node node, long ticks)
    {
        _byNode.TryGetValue(node, out var t);
        _byNode[node] = (t.Ticks + ticks, t.Calls + 1);
    }

    /// <summary>Milliseconds per node, slowest first.</summary>
    public IReadOnlyList<(Node Node, double Milliseconds, int Calls)> ByNode() =>
        _byNode.Select(kv => (kv.Key, kv.Value.Ticks * 1000.0 / System.Diagnostics.Stopwatch.Frequency, kv.Value.Calls))
            .OrderByDescending(x => x.Item2).ToList();

    /// <summary>Milliseconds per op type, slowest first.</summary>
    public IReadOnlyList<(string OpType, double Milliseconds, int Nodes)> ByOpType() =>
        _byNode.GroupBy(kv => kv.Key.OpType)
            .Select(g => (g.Key, g.Sum(kv => kv.Value.Ticks) * 1000.0 / System.Diagnostics.Stopwatch.Frequency, g.Count()))
            .OrderByDescending(x => x.Item2).ToList();
}

public sealed class SessionOptions
{
    /// <summary>Most threads a kernel may use; 1 runs everything on the calling thread.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
    public KernelRegistry Registry { get; init; } = KernelRegistry.Default;
    /// <summary>Evaluate nodes whose inputs are all constant once, when the plan is built.</summary>
    public bool FoldConstants { get; init; } = true;
    /// <summary>
    /// Run chains of float elementwise nodes as one pass when nobody observes the intermediates
    /// (no observer, no kept values). Results are bit-identical either way.
    /// </summary>
    public bool FuseElementwise { get; init; } = true;
    /// <summary>
    /// Run each per-tensor QuantizeLinear whose only reader is one DequantizeLinear as a single fake-quant pass
    /// (no integer tensor in between) when nobody observes the run (no observer, no kept values; downstream re-runs
    /// use the separate nodes too). Results are bit-identical either way; off only to measure or test the separate
    /// kernels. Needs <see cref="FuseElementwise"/>.
    /// </summary>
    public bool FuseFakeQuant { get; init; } = true;
    /// <summary>
    /// Integer GEMM weights already in the kernels' packed layout (a compiled model's), by node and slot: the kernels
    /// take them as they are instead of packing. Ones that do not fit their node fail the session's construction
    /// with <see cref="PackedWeightsException"/>, and so do ones no kernel asks for.
    /// </summary>
    public IReadOnlyList<PackedWeightsEntry>? PackedWeights { get; init; }
    /// <summary>
    /// A static memory plan (a compiled model's): unobserved runs place the values it covers at its offsets in one
    /// 64-byte-aligned arena, allocated with the session (another for each run that overlaps one in progress), and
    /// run the unfused steps the plan was made for. Values whose kernels need arrays, or whose lifetime differs from
    /// the plan's, keep the buffer pool. Outputs are copied out of the arena.
    /// </summary>
    public ArenaPlan? Arena { get; init; }
}
