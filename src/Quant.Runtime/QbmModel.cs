using Quant.Engine;
using Quant.Onnx;

namespace Quant.Runtime;

/// <summary>
/// A loaded, validated NAME.qbm (docs/artifact-format.md). Loading checks everything (header, hash, every offset
/// and size, value ids, the memory plan) before anything runs; a bad file is one <see cref="QbmFormatException"/>.
/// Running reconstructs the program as a graph for the engine's <see cref="InferenceSession"/>, the one way the
/// toolchain runs a graph, so a compiled model computes exactly what the engine computes for its source model.
/// </summary>
public sealed class QbmModel
{
    private readonly InferenceSession _session;

    private QbmModel(QbmFile file, InferenceSession session, string source)
    {
        File = file;
        _session = session;
        Source = source;
    }

    /// <summary>The decoded content (program, constants, memory plan, cost estimate).</summary>
    public QbmFile File { get; }
    public string Source { get; }
    public IReadOnlyList<string> InputNames => File.Inputs.Select(i => File.Values[i.Value].Name).ToList();
    public IReadOnlyList<string> OutputNames => File.Outputs.Select(o => File.Values[o.Value].Name).ToList();
    /// <summary>Peak bytes of the static memory plan (at the planned input shapes).</summary>
    public long ArenaBytes => File.MemoryPlan.ArenaBytes;
    /// <summary>The compiler's latency estimate for one run at the planned input shapes.</summary>
    public double EstimatedMilliseconds => File.Cost.TotalMicroseconds / 1000;
    /// <summary>
    /// Peak bytes of live tensors during the most recent run: the arena (<see cref="ArenaBytes"/>) plus the engine's
    /// buffer pool peak (values kept out of the arena, kernel scratch).
    /// </summary>
    public long LastRunPeakBytes => _session.LastRunPeakBytes;
    /// <summary>
    /// How many of the memory plan's values run at their planned offsets in the arena. The others (values a float
    /// kernel that needs CLR arrays produces or reads) run in the engine's buffer pool.
    /// </summary>
    public int ArenaValueCount => _session.ArenaValueCount;

    /// <summary>How many weight sets the kernels have packed themselves since loading: 0 when the file carries every packing they use.</summary>
    public int WeightsPackedAtRun => _session.WeightsPackedLazily;

    /// <summary>The options the model was loaded with (thread count).</summary>
    public QbmRunOptions Options { get; private init; } = QbmRunOptions.Default;

    /// <summary>Reads and validates a .qbm (version, hash, every offset and size) before anything runs.</summary>
    public static QbmModel Load(string path) => Load(path, null);

    /// <summary>As <see cref="Load(string)"/>, running with <paramref name="options"/> (null: the defaults).</summary>
    public static QbmModel Load(string path, QbmRunOptions? options)
    {
        byte[] bytes;
        try { bytes = System.IO.File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            throw new QbmFormatException(QbmError.Unreadable, path, $"cannot read the file: {e.Message}", e);
        }
        return Load(bytes, path, options);
    }

    /// <summary>Validates and loads a .qbm held in memory; <paramref name="source"/> names it in error messages.</summary>
    public static QbmModel Load(byte[] bytes, string source = "<memory>") => Load(bytes, source, null);

    /// <summary>As <see cref="Load(byte[], string)"/>, running with <paramref name="options"/> (null: the defaults).</summary>
    public static QbmModel Load(byte[] bytes, string source, QbmRunOptions? options)
    {
        options ??= QbmRunOptions.Default;
        if (options.Threads < 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.Threads, $"QbmRunOptions.Threads must be at least 1 (loading {source})");
        var file = QbmReader.Read(bytes, source);
        QbmValidator.Validate(file, source);
        var model = ToModel(file, source);
        try
        {
            var packed = file.PackedWeights.GroupBy(p => (p.Step, p.Slot))
                .Select(g => new PackedWeightsEntry(model.Graph.Nodes[g.Key.Step], g.Key.Slot, g.Select(p => p.Weights).ToList())).ToList();
            var arena = new ArenaPlan(file.MemoryPlan.ArenaBytes, file.MemoryPlan.Placements
                .Select(p => new ArenaPlacement(file.Values[p.Value].Name, p.Offset, p.Bytes, p.FirstStep, p.LastStep)).ToList());
            var session = new InferenceSession(model, new SessionOptions { Threads = options.Threads, PackedWeights = packed, Arena = arena });
            return new QbmModel(file, session, source) { Options = options };
        }
        catch (PackedWeightsException e)
        {
            throw new QbmFormatException(QbmError.BadPackedWeights, source, $"section PackedWeights: {e.Message}", e);
        }
        // A well-formed file can still hold attributes a kernel refuses (validation checks encodings, not op semantics);
        // kernel factories report those in more ways than EngineException, and loading reports them all as one error.
        catch (Exception e) when (e is not (OutOfMemoryException or StackOverflowException or ThreadAbortException))
        {
            throw new QbmFormatException(QbmError.Unrunnable, source, $"the engine cannot run the program: {e.Message}", e);
        }
    }

    /// <summary>Runs the program on named inputs; returns the graph outputs by name (the caller owns them).</summary>
    public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs) => _session.Run(inputs);

    /// <summary>
    /// As <see cref="Run(IReadOnlyDictionary{string, Tensor})"/>, adding each executed op's wall time to
    /// <paramref name="timings"/> (accumulated over runs; null: not timed). Ops are timed as they run: a chain of float
    /// elementwise ops the engine runs as one pass appears as one entry named <c>fused[op1,op2,...]</c>.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, NodeTimings? timings) =>
        _session.Run(inputs, new RunOptions { Timings = timings });

    /// <summary>
    /// As <see cref="Run(IReadOnlyDictionary{string, Tensor})"/>, showing every value to <paramref name="observer"/> as it is
    /// produced (inputs first, then each op's outputs in schedule order; layer-wise debugging). Observed runs use the buffer
    /// pool instead of the static arena and run no fused elementwise chains; results are the same bits.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, IValueObserver observer) =>
        _session.Run(inputs, new RunOptions { Observer = observer });

    /// <summary>The program as an engine graph: constants become initializers, ops become nodes in schedule order.</summary>
    private static OnnxModel ToModel(QbmFile f, string source)
    {
        var g = new Graph { Name = Path.GetFileNameWithoutExtension(source) };
        string Name(int v) => v == QbmFile.Omitted ? "" : f.Values[v].Name;
        foreach (var io in f.Inputs) g.Inputs.Add(new ValueInfo(Name(io.Value), f.Values[io.Value].Type, io.Shape));
        foreach (var io in f.Outputs) g.Outputs.Add(new ValueInfo(Name(io.Value), f.Values[io.Value].Type, io.Shape));
        foreach (var c in f.Constants)
        {
            var v = f.Values[c.Value];
            g.Initializers[v.Name] = new TensorData(v.Name, v.Type, v.Dims, c.Data);
        }
        foreach (var op in f.Ops)
        {
            var node = new Node(op.Name, op.OpType, op.Domain, op.Inputs.Select(Name), op.Outputs.Select(Name));
            foreach (var a in op.Attributes) node.Set(a);
            g.Nodes.Add(node);
        }
        var model = new OnnxModel(g) { SourcePath = source };
        foreach (var (domain, version) in f.Opsets) model.Opsets[domain] = version;
        return model;
    }
}
