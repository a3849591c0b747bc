namespace Quant.Engine.Kernels;

/// <summary>
/// Multidirectional (numpy) broadcasting: the output shape of several inputs, and a plan that walks
/// the output in contiguous segments, telling for each input where the segment starts and whether
/// the input advances along it (stride 1) or stays on one element (broadcast, stride 0).
/// </summary>
internal static class Broadcast
{
    /// <summary>The broadcast shape of <paramref name="shapes"/>, or null with <paramref name="error"/> set.</summary>
    public static int[]? TryShape(ReadOnlySpan<int[]> shapes, out string? error)
    {
        error = null;
        int rank = 0;
        foreach (var s in shapes) rank = Math.Max(rank, s.Length);
        var result = new int[rank];
        for (int d = 0; d < rank; d++)
        {
            int dim = 1;
            foreach (var s in shapes)
            {
                int k = d - (rank - s.Length);
                if (k < 0) continue;
                int v = s[k];
                if (v == 1 || v == dim) continue;
                if (dim == 1) { dim = v; continue; }
                error = $"shapes {string.Join(" and ", shapes.ToArray().Select(s => Format(s)))} cannot be broadcast together (dimension {d} of the result: {dim} vs {v})";
                return null;
            }
            result[d] = dim;
        }
        return result;
    }

    /// <summary>The broadcast shape; throws <see cref="ArgumentException"/> naming both shapes when they are incompatible.</summary>
    public static int[] Shape(params ReadOnlySpan<int[]> shapes) =>
        TryShape(shapes, out var error) ?? throw new ArgumentException(error);

    /// <summary>Whether <paramref name="from"/> broadcasts to exactly <paramref name="to"/> (unidirectional).</summary>
    public static bool CanBroadcastTo(ReadOnlySpan<int> from, ReadOnlySpan<int> to)
    {
        if (from.Length > to.Length) return false;
        int off = to.Length - from.Length;
        for (int i = 0; i < from.Length; i++)
            if (from[i] != 1 && from[i] != to[off + i]) return false;
        return true;
    }

    public static string Format(ReadOnlySpan<int> shape) => $"[{string.Join(",", shape.ToArray())}]";
}

/// <summary>
/// How several inputs map onto a broadcast output. Dimensions are collapsed as far as every input
/// allows, so the innermost collapsed dimension (<see cref="Inner"/> elements) is a run that each
/// input either walks contiguously or holds constant. Common cases therefore become one long run
/// (same shapes), constant runs (scalars, per-channel [1,C,1,1] operands) or contiguous runs
/// repeated over outer dimensions (bias over rows).
/// </summary>
internal sealed class BroadcastPlan
{
    // Outer (collapsed) dimensions, outermost first, excluding the inner run.
    private readonly int[] _outerDims;
    // _outerStrides[k][d]: element stride of input k along outer dimension d (0 when broadcast).
    private readonly int[][] _outerStrides;

    private BroadcastPlan(int[] outShape, int length, int inner, bool[] innerSteps, int[] outerDims, int[][] outerStrides)
    {
        OutShape = outShape;
        Length = length;
        Inner = inner;
        InnerSteps = innerSteps;
        _outerDims = outerDims;
        _outerStrides = outerStrides;
    }

    public int[] OutShape { get; }
    /// <summary>Output element count.</summary>
    public int Length { get; }
    /// <summary>Length of the innermost run (1 when the output is empty or a scalar).</summary>
    public int Inner { get; }
    /// <summary>Per input: true when it advances along the inner run, false when it stays constant over it.</summary>
    public bool[] InnerSteps { get; }
    public int InputCount => InnerSteps.Length;
    /// <summary>Number of inner runs (Length / Inner).</summary>
    public int Runs => Inner == 0 ? 0 : Length / Inner;

    /// <summary>Input <paramref name="k"/> has the output's element layout (same count, no broadcasting).</summary>
    public bool IsDense(int k)
    {
        if (!InnerSteps[k]) return Length <= 1;
        foreach (var s in _outerStrides[k]) if (s == 0) return false;
        return true;
    }

    /// <summary>Input <paramref name="k"/> is one element repeated over the whole output.</summary>
    public bool IsScalar(int k)
    {
        if (InnerSteps[k] && Inner > 1) return false;
        foreach (var s in _outerStrides[k]) if (s != 0) return false;
        return true;
    }

    /// <summary>Plans broadcasting <paramref name="inputs"/> to their common shape.</summary>
    public static BroadcastPlan Create(params int[][] inputs) => CreateTo(Broadcast.Shape(inputs), inputs);

    /// <summary>Plans broadcasting each of <paramref name="inputs"/> to <paramref name="outShape"/> (each must be compatible).</summary>
    public static BroadcastPlan CreateTo(int[] outShape, params int[][] inputs)
    {
        int rank = outShape.Length;
        int n = inputs.Length;
        int length = Tensor.ElementCount(outShape);
        // Per input, stride along each output dimension (0 where the input is 1 or absent).
        var strides = new int[n][];
        for (int k = 0; k < n; k++)
        {
            var s = inputs[k];
            if (!Broadcast.CanBroadcastTo(s, outShape))
                throw new ArgumentException($"shape {Broadcast.Format(s)} cannot be broadcast to {Broadcast.Format(outShape)}");
            strides[k] = new int[rank];
            int stride = 1;
            for (int d = rank - 1; d >= 0; d--)
            {
                int j = d - (rank - s.Length);
                int dim = j >= 0 ? s[j] : 1;
                strides[k][d] = dim == 1 ? 0 : stride;
                stride *= dim;
            }
        }

        // Collapse: drop size-1 output dimensions, merge a dimension into its inner neighbour when
        // every input's stride pattern is continuous across the two.
        var dims = new List<int>();
        var cols = new List<int[]>();
        for (int d = 0; d < rank; d++)
        {
            if (outShape[d] == 1) continue;
            var col = new int[n];
            for (int k = 0; k < n; k++) col[k] = strides[k][d];
            if (dims.Count > 0)
            {
                var prev = cols[^1];
                bool merge = true;
                for (int k = 0; k < n && merge; k++) merge = prev[k] == col[k] * outShape[d];
                if (merge)
                {
                    dims[^1] *= outShape[d];
                    cols[^1] = col;
                    continue;
                }
            }
            dims.Add(outShape[d]);
            cols.Add(col);
        }

        var innerSteps = new bool[n];
        int inner = 1;
        if (length == 0)
        {
            inner = 0;
            dims.Clear();
            cols.Clear();
        }
        else if (dims.Count > 0)
        {
            inner = dims[^1];
            for (int k = 0; k < n; k++) innerSteps[k] = cols[^1][k] != 0;
            dims.RemoveAt(dims.Count - 1);
            cols.RemoveAt(cols.Count - 1);
        }
        var outerStrides = new int[n][];
        for (int k = 0; k < n; k++)
        {
            outerStrides[k] = new int[dims.Count];
            for (int d = 0; d < dims.Count; d++) outerStrides[k][d] = cols[d][k];
        }
        return new BroadcastPlan(outShape, length, inner, innerSteps, [.. dims], outerStrides);
    }

    /// <summary>A segment of output: <paramref name="length"/> elements from <paramref name="outOffset"/>;
    /// input k starts at <paramref name="inputOffsets"/>[k] and advances iff <see cref="InnerSteps"/>[k].</summary>
    public delegate void Segment(int outOffset, int length, ReadOnlySpan<int> inputOffsets);

    /// <summary>Calls <paramref name="body"/> for segments covering output elements [start, end), in order.</summary>
    public void Walk(int start, int end, Segment body)
    {
        if (start >= end) return;
        int n = InputCount;
        int outer = _outerDims.Length;
        Span<int> index = outer <= 16 ? stackalloc int[outer] : new int[outer];
        Span<int> offsets = n <= 16 ? stackalloc int[n] : new int[n];
        int run = start / Inner;
        int within = start - run * Inner;
        // Position the odometer on the run containing start.
        int rem = run;
        for (int d = outer - 1; d >= 0; d--)
        {
            index[d] = rem % _outerDims[d];
            rem /= _outerDims[d];
        }
        for (int k = 0; k < n; k++)
        {
            int o = 0;
            for (int d = 0; d < outer; d++) o += index[d] * _outerStrides[k][d];
            offsets[k] = o;
        }
        Span<int> segOffsets = n <= 16 ? stackalloc int[n] : new int[n];
        int pos = start;
        while (pos < end)
        {
            int len = Math.Min(Inner - within, end - pos);
            for (int k = 0; k < n; k++) segOffsets[k] = offsets[k] + (InnerSteps[k] ? within : 0);
            body(pos, len, segOffsets);
            pos += len;
            within = 0;
            // Advance the odometer by one run.
            for (int d = outer - 1; d >= 0; d--)
            {
                if (++index[d] < _outerDims[d])
                {
                    for (int k = 0; k < n; k++) offsets[k] += _outerStrides[k][d];
                    break;
                }
                index[d] = 0;
                for (int k = 0; k < n; k++) offsets[k] -= _outerStrides[k][d] * (_outerDims[d] - 1);
            }
        }
    }

    /// <summary>Walks the whole output, split into contiguous chunks over <paramref name="ctx"/>'s threads when it is large.</summary>
    public void Run(KernelContext? ctx, Segment body, int minChunk = ElementwiseChunk.MinElements)
    {
        int chunks = ElementwiseChunk.Count(Length, ctx?.Threads ?? 1, minChunk);
        if (chunks <= 1 || ctx is null) { Walk(0, Length, body); return; }
        ctx.For(chunks, c =>
        {
            var (s, e) = ElementwiseChunk.Range(Length, chunks, c);
            Walk(s, e, body);
        });
    }
}

/// <summary>How elementwise kernels split a flat range over threads.</summary>
internal static class ElementwiseChunk
{
    /// <summary>Below this many elements per chunk, thread hand-off costs more than it saves.</summary>
    public const int MinElements = 32 * 1024;

    public static int Count(long length, int threads, int minChunk = MinElements)
    {
        if (threads <= 1 || length < 2L * minChunk) return 1;
        return (int)Math.Min(threads * 4L, length / minChunk);
    }

    /// <summary>Chunk <paramref name="c"/> of <paramref name="chunks"/>, boundaries rounded to 16 elements (whole vectors).</summary>
    public static (int Start, int End) Range(int length, int chunks, int c)
    {
        long s = (long)length * c / chunks;
        long e = (long)length * (c + 1) / chunks;
        s = c == 0 ? 0 : s & ~15L;
        e = c == chunks - 1 ? length : e & ~15L;
        return ((int)s, (int)e);
    }

    /// <summary>Runs <paramref name="body"/>(start, end) over [0, length), chunked across threads when large.</summary>
    public static void For(KernelContext? ctx, int length, Action<int, int> body, int minChunk = MinElements)
    {
        int chunks = Count(length, ctx?.Threads ?? 1, minChunk);
        if (chunks <= 1 || ctx is null) { if (length > 0) body(0, length); return; }
        ctx.For(chunks, c =>
        {
            var (s, e) = Range(length, chunks, c);
            if (e > s) body(s, e);
        });
    }
}

/// <summary>
/// Remembers the plan of the last input shapes a kernel saw: a session runs the same shapes over
/// and over, and small ops would otherwise spend more time planning than computing. Safe for
/// concurrent runs (the cached entry is replaced as a whole).
/// </summary>
internal sealed class BroadcastPlanCache
{
    private sealed record Entry(int[]? OutShape, int[][] Shapes, BroadcastPlan Plan);
    private Entry? _last;

    /// <summary>The plan broadcasting <paramref name="shapes"/> together; throws <see cref="ArgumentException"/> when they are incompatible.</summary>
    public BroadcastPlan Get(params int[][] shapes) => Get(null, shapes);

    /// <summary>The plan broadcasting each of <paramref name="shapes"/> to <paramref name="outShape"/> (null: their common shape).</summary>
    public BroadcastPlan Get(int[]? outShape, params int[][] shapes)
    {
        var e = _last;
        if (e is not null && Same(e.OutShape, outShape) && e.Shapes.Length == shapes.Length)
        {
            bool same = true;
            for (int i = 0; i < shapes.Length && same; i++) same = e.Shapes[i].AsSpan().SequenceEqual(shapes[i]);
            if (same) return e.Plan;
        }
        var plan = outShape is null ? BroadcastPlan.Create(shapes) : BroadcastPlan.CreateTo(outShape, shapes);
        _last = new Entry(outShape is null ? null : (int[])outShape.Clone(), shapes.Select(s => (int[])s.Clone()).ToArray(), plan);
        return plan;
    }

    private static bool Same(int[]? a, int[]? b) => a is null ? b is null : b is not null && a.AsSpan().SequenceEqual(b);
}
