using Quant.Onnx;

namespace Quant.Engine;

/// <summary>
/// A session's packed GEMM weights: the pre-packed ones it was given (<see cref="SessionOptions.PackedWeights"/>),
/// which kernels take instead of packing, and the packings its kernels made or took, for
/// <see cref="InferenceSession.PackedWeights"/> to hand to a compiler.
/// </summary>
internal sealed class PackedWeightsStore
{
    private readonly Dictionary<(Node Node, string Slot), IReadOnlyList<PackedGemmWeights>> _given = new(Key.Comparer);
    private readonly HashSet<(Node Node, string Slot)> _taken = new(Key.Comparer);
    private readonly List<(Node Node, string Slot, Func<PackedGemmWeights[]?> Export)> _slots = [];
    private int _packings;

    public PackedWeightsStore(IReadOnlyList<PackedWeightsEntry>? given)
    {
        foreach (var e in given ?? [])
            if (!_given.TryAdd((e.Node, e.Slot), e.Groups))
                throw new PackedWeightsException($"{e.Node.Describe()} is given packed weights for slot '{e.Slot}' twice");
    }

    /// <summary>How many weight sets kernels packed themselves (none when every packing was given).</summary>
    public int Packings => Volatile.Read(ref _packings);

    public void CountPacking() => Interlocked.Increment(ref _packings);

    public T[]? Take<T>(Node node, string slot, int groups, int k, int n, Func<PackedGemmWeights, T> unpack)
    {
        if (!_given.TryGetValue((node, slot), out var list)) return null;
        _taken.Add((node, slot));
        if (list.Count != groups)
            throw new PackedWeightsException($"{node.Describe()}: packed weights '{slot}' have {list.Count} groups, the node needs {groups}");
        var result = new T[groups];
        for (int g = 0; g < groups; g++)
        {
            var p = list[g];
            if (p.K != k || p.N != n)
                throw new PackedWeightsException($"{node.Describe()}: packed weights '{slot}' group {g} are [{p.K}, {p.N}], the node needs [{k}, {n}]");
            try { result[g] = unpack(p); }
            catch (ArgumentException e) { throw new PackedWeightsException($"{node.Describe()}: packed weights '{slot}' group {g}: {e.Message}"); }
        }
        return result;
    }

    public void Register(Node node, string slot, Func<PackedGemmWeights[]?> export) => _slots.Add((node, slot, export));

    /// <summary>Given packings no kernel asked for (a node without that slot, or a node that does not exist).</summary>
    public IEnumerable<(Node Node, string Slot)> Unclaimed => _given.Keys.Where(k => !_taken.Contains(k));

    public IReadOnlyList<PackedWeightsEntry> Materialized(IEnumerable<Node> nodes)
    {
        var planned = nodes.ToHashSet(ReferenceEqualityComparer.Instance);
        return
        _slots.Where(s => planned.Contains(s.Node)).Select(s => (s.Node, s.Slot, Weights: s.Export()))
            .Where(s => s.Weights is not null).Select(s => new PackedWeightsEntry(s.Node, s.Slot, s.Weights!)).ToList();
    }

    /// <summary>(node object, slot) keys: nodes by reference, slots by ordinal.</summary>
    private sealed class Key : IEqualityComparer<(Node Node, string Slot)>
    {
        public static readonly Key Comparer = new();
        public bool Equals((Node Node, string Slot) a, (Node Node, string Slot) b) => ReferenceEquals(a.Node, b.Node) && string.Equals(a.Slot, b.Slot, StringComparison.Ordinal);
        public int GetHashCode((Node Node, string Slot) k) => HashCode.Combine(System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(k.Node), StringComparer.Ordinal.GetHashCode(k.Slot));
    }
}

/// <summary>Pre-packed weights that do not fit the node they are given for.</summary>
public sealed class PackedWeightsException(string message) : Exception(message);
