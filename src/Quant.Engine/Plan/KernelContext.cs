using Quant.Onnx;

namespace Quant.Engine;

/// <summary>One kernel invocation: its inputs, a way to allocate outputs, and the thread budget.</summary>
public sealed class KernelContext
{
    private readonly Tensor?[] _inputs;
    private readonly Tensor?[] _outputs;
    private readonly BufferPool _pool;
    private readonly ArenaBuffer? _arena;
    private readonly (long Offset, long Bytes)[]? _places;

    internal KernelContext(Node node, Tensor?[] inputs, Tensor?[] outputs, BufferPool pool, int threads,
        ArenaBuffer? arena = null, (long Offset, long Bytes)[]? places = null)
    {
        Node = node;
        _inputs = inputs;
        _outputs = outputs;
        _pool = pool;
        Threads = threads;
        _arena = arena;
        _places = places;
    }

    public Node Node { get; }
    public int InputCount => _inputs.Length;
    public int OutputCount => _outputs.Length;
    /// <summary>Most threads the kernel may use (1 = run inline).</summary>
    public int Threads { get; }
    /// <summary>Set when a run's observer takes the values inside fused chains (<see cref="ITileObserver"/>).</summary>
    internal ITileObserver? TileObserver { get; init; }

    /// <summary>Input <paramref name="index"/>, or null when omitted (optional input).</summary>
    public Tensor? Input(int index) => index < _inputs.Length ? _inputs[index] : null;

    /// <summary>Input <paramref name="index"/>, which the op requires.</summary>
    public Tensor Required(int index) =>
        Input(index) ?? throw Error($"required input {index} is missing");

    /// <summary>Whether output <paramref name="index"/> is consumed or wanted (optional outputs may be skipped).</summary>
    public bool WantsOutput(int index) => index < _outputs.Length && Node.Outputs[index].Length > 0;

    /// <summary>Allocates output <paramref name="index"/>. Contents are undefined: write every element.</summary>
    public Tensor Output(int index, ElementType type, ReadOnlySpan<int> shape)
    {
        // At its planned place in the arena when it has one and fits (inputs larger than planned fall back to the pool).
        if (_arena is not null && _places is not null && index < _places.Length && _places[index].Bytes > 0 && type != ElementType.String)
        {
            int n = Tensor.ElementCount(shape);
            if ((long)n * type.SizeOf() <= _places[index].Bytes)
            {
                var view = new Tensor(type, shape.ToArray(), _arena.Bytes, _arena.Base + (int)_places[index].Offset, n);
                _outputs[index] = view;
                return view;
            }
        }
        var t = _pool.Rent(type, shape);
        _outputs[index] = t;
        return t;
    }

    /// <summary>Allocates output <paramref name="index"/> filled with zeros.</summary>
    public Tensor OutputZeroed(int index, ElementType type, ReadOnlySpan<int> shape)
    {
        var t = Output(index, type, shape);
        if (type == ElementType.String) Array.Clear(t.Buffer, 0, t.Length);
        else t.Bytes().Clear();
        return t;
    }

    /// <summary>Scratch memory for the duration of this call; return it with <see cref="ReturnScratch"/>.</summary>
    public float[] RentScratch(int length) => _pool.RentScratch(length);
    public void ReturnScratch(float[] buffer) => _pool.ReturnScratch(buffer);

    /// <summary>Runs <paramref name="body"/> for 0..count-1, split over at most <see cref="Threads"/> threads.</summary>
    public void For(int count, Action<int> body)
    {
        if (count <= 0) return;
        if (Threads <= 1 || count == 1)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = Threads }, body);
    }

    /// <summary>An <see cref="EngineException"/> naming this node and its input shapes.</summary>
    public EngineException Error(string message)
    {
        var shapes = string.Join(", ", _inputs.Select((t, i) => $"{(i < Node.Inputs.Count ? Node.Inputs[i] : "?")}: {t?.ToString() ?? "none"}"));
        return new EngineException($"{Node.Describe()}: {message} (inputs {shapes})");
    }
}
