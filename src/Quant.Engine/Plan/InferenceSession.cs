using Quant.Onnx;

namespace Quant.Engine;

/// <summary>
/// A graph compiled into an execution plan: nodes in topological order with their kernels, values
/// mapped to slots, constants folded, and for each step the values that die after it (their
/// buffers go back to the arena). Shapes are resolved per run from the actual inputs, so one
/// session serves every input size. The only way the toolchain runs a graph.
/// </summary>
public sealed class InferenceSession
{
    private sealed record Step(Node Node, IKernel Kernel, int[] Inputs, int[] Outputs, int[] ReleaseAfter);

    /// <summary>Per step of <see cref="_steps"/>, per output: its arena byte range (Bytes 0: not in the arena).</summary>
    private readonly (long Offset, long Bytes)[][]? _arenaPlaces;
    private readonly long _arenaBytes;
    private ArenaBuffer? _idleArena;

    private readonly SessionOptions _options;
    private readonly Dictionary<string, int> _slotOf = new(StringComparer.Ordinal);
    private readonly List<string> _slotNames = [];
    private readonly Tensor?[] _constants;
    private readonly Step[] _steps;
    /// <summary>The same plan with elementwise chains fused; used when no one looks at intermediates.</summary>
    private readonly Step[] _fastSteps;
    private readonly (int Slot, ValueInfo Info)[] _inputs;
    private readonly (int Slot, string Name)[] _outputs;
    private readonly bool[] _isGraphOutput;
    private readonly object _poolLock = new();
    private BufferPool? _idlePool = new();
    private readonly PackedWeightsStore _packed;

    public InferenceSession(OnnxModel model, SessionOptions? options = null)
    {
        _options = options ?? new SessionOptions();
        Model = model;
        var graph = model.Graph;
        string modelName = model.SourcePath is null ? "model" : Path.GetFileName(model.SourcePath);

        var order = graph.TopologicalOrder();
        foreach (var vi in graph.Inputs) Slot(vi.Name);
        foreach (var name in graph.Initializers.Keys) Slot(name);
        foreach (var n in order)
        {
            foreach (var i in n.Inputs) if (i.Length > 0) Slot(i);
            foreach (var o in n.Outputs) if (o.Length > 0) Slot(o);
        }
        foreach (var o in graph.Outputs)
            if (!_slotOf.ContainsKey(o.Name))
                throw new EngineException($"{modelName}: graph output '{o.Name}' is not produced by any node, input or initializer");

        var constants = new Tensor?[_slotNames.Count];
        foreach (var (name, data) in graph.Initializers)
        {
            try { constants[_slotOf[name]] = Tensor.FromData(data); }
            catch (Exception e) when (e is ArgumentException or NotSupportedException)
            { throw new EngineException($"{modelName}: initializer '{name}': {e.Message}", e); }
        }
        var runtimeInputs = graph.RuntimeInputs.ToList();
        // An initializer that is also a graph input may be overridden by the caller, so it is not constant.
        foreach (var vi in graph.Inputs)
            if (graph.Initializers.ContainsKey(vi.Name)) { runtimeInputs.Add(vi); }
        _inputs = runtimeInputs.Select(vi => (_slotOf[vi.Name], vi)).ToArray();
        var overridable = new HashSet<int>(_inputs.Select(i => i.Slot));

        _packed = new PackedWeightsStore(_options.PackedWeights);
        var steps = new List<Step>();
        var foldPool = new BufferPool();
        foreach (var node in order)
        {
            long opset = model.OpsetFor(node.Domain);
            var factory = _options.Registry.Find(node.Domain, node.OpType, opset)
                ?? throw new EngineException(
                    $"{modelName}: {node.Describe()} uses op type '{node.OpType}' of domain '{(node.IsDefaultDomain ? "ai.onnx" : node.Domain)}' at opset {opset}, " +
                    "which the engine does not implement; replace the op in the exporter or add a kernel (see docs/implementation-notes.md)");
            IKernel kernel;
            try
            {
                kernel = factory(new KernelSetup(node, opset, name => _slotOf.TryGetValue(name, out var s) && !overridable.Contains(s) ? constants[s] : null, _packed));
            }
            catch (EngineException e) { throw new EngineException($"{modelName}: {e.Message}", e); }
            var inputs = node.Inputs.Select(i => i.Length == 0 ? -1 : _slotOf[i]).ToArray();
            var outputs = node.Outputs.Select(o => o.Length == 0 ? -1 : _slotOf[o]).ToArray();

            bool foldable = _options.FoldConstants && inputs.All(s => s < 0 || (constants[s] is not null && !overridable.Contains(s)))
                && node.OpType is not ("RandomNormal" or "RandomUniform" or "RandomNormalLike" or "RandomUniformLike" or "Multinomial" or "Bernoulli");
            if (foldable)
            {
                var produced = Execute(node, kernel, inputs, outputs, constants, foldPool, _options.Threads);
                for (int k = 0; k < outputs.Length; k++)
                    if (outputs[k] >= 0 && produced[k] is { } t) constants[outputs[k]] = t.Clone();
                continue;
            }
            steps.Add(new Step(node, kernel, inputs, outputs, []));
        }
        _constants = constants;

        _isGraphOutput = new bool[_slotNames.Count];
        foreach (var o in graph.Outputs) _isGraphOutput[_slotOf[o.Name]] = true;
        _steps = WithLifetimes(steps, constants, overridable);
        _fastSteps = _options.FuseElementwise ? WithLifetimes(Fuse(model, steps, constants), constants, overridable) : _steps;
        _outputs = graph.Outputs.Select(o => (_slotOf[o.Name], o.Name)).ToArray();
        if (_options.Arena is { } arena && arena.Bytes > 0 && arena.Bytes <= Array.MaxLength - ArenaBuffer.Alignment)
        {
            _arenaPlaces = PlaceInArena(arena, constants, overridable);
            _arenaBytes = arena.Bytes;
            _idleArena = new ArenaBuffer(arena.Bytes);
        }
        if (_packed.Unclaimed.FirstOrDefault() is ({ } unclaimedNode, { } slot))
            throw new PackedWeightsException($"{modelName}: packed weights '{slot}' are given for {unclaimedNode.Describe()}, whose kernel has no such weights");
    }

    /// <summary>
    /// Lifetimes: a runtime value dies after the last step that reads it (or right after its producer
    /// if nothing reads it); graph outputs, constants and caller-provided inputs never die.
    /// </summary>
    private Step[] WithLifetimes(List<Step> steps, Tensor?[] constants, HashSet<int> overridable)
    {
        var lastUse = Enumerable.Repeat(-1, _slotNames.Count).ToArray();
        for (int s = 0; s < steps.Count; s++)
        {
            foreach (var o in steps[s].Outputs) if (o >= 0) lastUse[o] = Math.Max(lastUse[o], s);
            foreach (var i in steps[s].Inputs) if (i >= 0) lastUse[i] = s;
        }
        var releases = new List<int>[steps.Count];
        for (int s = 0; s < steps.Count; s++) releases[s] = [];
        for (int slot = 0; slot < lastUse.Length; slot++)
        {
            if (lastUse[slot] < 0 || _isGraphOutput[slot] || constants[slot] is not null || overridable.Contains(slot)) continue;
            releases[lastUse[slot]].Add(slot);
        }
        return steps.Select((st, i) => st with { ReleaseAfter = [.. releases[i]] }).ToArray();
    }

    /// <summary>
    /// The arena placements the session can honour: a value produced by a planned step, whose producer and readers all
    /// touch tensors through spans only (<see cref="ArenaOps"/>), whose lifetime over <see cref="_steps"/> is exactly the
    /// plan's (so the plan's no-overlap guarantee holds for this schedule) and whose range lies in the arena. Every other
    /// value keeps the buffer pool.
    /// </summary>
    private (long, long)[][] PlaceInArena(ArenaPlan arena, Tensor?[] constants, HashSet<int> overridable)
    {
        var producer = Enumerable.Repeat(-1, _slotNames.Count).ToArray();
        var output = new int[_slotNames.Count];
        var lastUse = Enumerable.Repeat(-1, _slotNames.Count).ToArray();
        var spansOnly = Enumerable.Repeat(true, _slotNames.Count).ToArray();
        for (int st = 0; st < _steps.Length; st++)
        {
            bool supported = ArenaOps.Supports(_steps[st].Node);
            var outs = _steps[st].Outputs;
            for (int k = 0; k < outs.Length; k++)
            {
                if (outs[k] < 0) continue;
                producer[outs[k]] = st;
                output[outs[k]] = k;
                lastUse[outs[k]] = Math.Max(lastUse[outs[k]], st);
                spansOnly[outs[k]] &= supported;
            }
            foreach (var i in _steps[st].Inputs)
                if (i >= 0) { lastUse[i] = st; spansOnly[i] &= supported; }
        }
        var places = _steps.Select(st => new (long, long)[st.Outputs.Length]).ToArray();
        foreach (var p in arena.Placements)
        {
            if (!_slotOf.TryGetValue(p.Value, out int slot) || producer[slot] < 0 || !spansOnly[slot]
                || constants[slot] is not null || overridable.Contains(slot)) continue;
            int last = _isGraphOutput[slot] ? _steps.Length - 1 : lastUse[slot];
            if (producer[slot] != p.FirstStep || last != p.LastStep) continue;
            if (p.Offset < 0 || p.Bytes <= 0 || p.Offset % ArenaBuffer.Alignment != 0 || p.Offset > arena.Bytes - p.Bytes) continue;
            places[producer[slot]][output[slot]] = (p.Offset, p.Bytes);
            ArenaValueCount++;
        }
        return places;
    }

    private List<Step> Fuse(OnnxModel model, List<Step> steps, Tensor?[] constants)
    {
        Dictionary<string, ValueInfo> inferred;
        try { inferred = Quant.Onnx.Shapes.ShapeInference.Run(model); }
        catch (Exception e) when (e is OnnxFormatException or ArgumentException or InvalidOperationException or KeyNotFoundException)
        {
            return steps; // without types, nothing is known to be float: run unfused
        }
        bool IsFloatWithRank(int slot) =>
            inferred.TryGetValue(_slotNames[slot], out var vi) && vi.Type == ElementType.Float && vi.Shape is { Length: >= 1 };
        if (_options.FuseFakeQuant)
        {
            var pairs = FakeQuantFusion.Plan(steps.Select(st => new ElementwiseFusion.StepView(st.Node, st.Inputs, st.Outputs)).ToList(),
                slot => constants[slot], IsFloatWithRank, slot => _isGraphOutput[slot], slot => _slotNames[slot]);
            var kernel = new Kernels.FakeQuantizeKernel();
            steps = pairs.Select(item => item is FakeQuantFusion.Pair p ? new Step(p.Node, kernel, p.Inputs, p.Outputs, []) : steps[(int)item]).ToList();
        }
        var plan = ElementwiseFusion.Plan(
            steps.Select(st => new ElementwiseFusion.StepView(st.Node, st.Inputs, st.Outputs)).ToList(),
            slot => constants[slot], IsFloatWithRank, slot => _isGraphOutput[slot], slot => _slotNames[slot]);
        var fused = new List<Step>(plan.Count);
        foreach (var item in plan)
        {
            if (item is int index) { fused.Add(steps[index]); continue; }
            var chain = (ElementwiseFusion.FusedChain)item;
            var members = chain.Members.Select(m => steps[m].Node).ToList();
            var node = new Node($"fused[{string.Join(",", members.Select(m => m.Name))}]", "FusedElementwise", "quant.engine",
                [_slotNames[chain.Head]], chain.Outputs.Select(o => _slotNames[o]));
            fused.Add(new Step(node, chain.Kernel, [chain.Head], chain.Outputs, []));
        }
        return fused;
    }

    public OnnxModel Model { get; }
    public IReadOnlyList<ValueInfo> Inputs => _inputs.Select(i => i.Info).ToList();
    public IReadOnlyList<string> OutputNames => _outputs.Select(o => o.Name).ToList();
    /// <summary>The steps of an unobserved run, in order: fused chains appear as one FusedElementwise node.</summary>
    internal IReadOnlyList<Node> FastPlanNodes => _fastSteps.Select(s => s.Node).ToList();
    /// <summary>Nodes that run per call, in plan order (folded constant nodes excluded).</summary>
    public IReadOnlyList<Node> PlannedNodes => _steps.Select(s => s.Node).ToList();
    /// <summary>
    /// Peak bytes of live tensors and scratch during the most recent run: with an arena (<see cref="SessionOptions.Arena"/>)
    /// its size plus the buffer pool's peak (the values kept out of the arena, and kernel scratch).
    /// </summary>
    public long LastRunPeakBytes { get; private set; }
    /// <summary>How many values of <see cref="SessionOptions.Arena"/> the session places in the arena (0 without one).</summary>
    public int ArenaValueCount { get; private set; }
    /// <summary>How many nodes the most recent run executed (fewer than planned for a downstream re-run).</summary>
    public int LastRunNodeCount { get; private set; }

    /// <summary>
    /// The packed integer GEMM weights of the planned nodes that their kernels have packed or taken so far (those of the
    /// paths a run used): what a compiler stores so that loading does not pack.
    /// </summary>
    public IReadOnlyList<PackedWeightsEntry> PackedWeights() => _packed.Materialized(_steps.Select(s => s.Node));

    /// <summary>How many weight sets the kernels have packed themselves so far (0 when every one they used was given pre-packed).</summary>
    public int WeightsPackedLazily => _packed.Packings;

    /// <summary>The value of <paramref name="name"/> if it is known at plan time (initializer or folded).</summary>
    public Tensor? ConstantValue(string name) => _slotOf.TryGetValue(name, out var s) ? _constants[s] : null;

    private int Slot(string name)
    {
        if (_slotOf.TryGetValue(name, out var s)) return s;
        _slotOf[name] = s = _slotNames.Count;
        _slotNames.Add(name);
        return s;
    }

    /// <summary>Runs the whole graph. Returns the graph outputs by name; the caller owns them.</summary>
    public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, RunOptions? options = null)
    {
        options ??= new RunOptions();
        var values = new Tensor?[_slotNames.Count];
        var owned = new bool[_slotNames.Count];
        Array.Copy(_constants, values, values.Length);
        foreach (var (slot, info) in _inputs)
        {
            if (!inputs.TryGetValue(info.Name, out var t))
            {
                if (_constants[slot] is not null) continue; // initializer default
                throw new EngineException($"input '{info.Name}' was not given; the model's inputs are {string.Join(", ", _inputs.Select(i => i.Info.ToString()))}");
            }
            CheckInput(info, t);
            values[slot] = t;
        }
        foreach (var name in inputs.Keys)
            if (!_inputs.Any(i => i.Info.Name == name))
                throw new EngineException($"'{name}' is not an input of the model; its inputs are {string.Join(", ", _inputs.Select(i => i.Info.Name))}");
        foreach (var (slot, info) in _inputs)
            if (values[slot] is { } t) Observe(options, info.Name, slot, null, values, owned);

        // A tile observer sees the values inside fused chains piece by piece, so its runs keep the fused plan.
        bool watched = options.KeepValues is not null || options.Observer is not null and not ITileObserver { TakesTiles: true };
        // The arena runs the unfused steps: the plan's lifetimes are those of the program's own step order.
        if (!watched && options.Observer is null && _arenaPlaces is not null) return Execute(_steps, values, owned, options, stepFilter: null, arena: true);
        return Execute(watched ? _steps : _fastSteps, values, owned, options, stepFilter: null);
    }

    /// <summary>
    /// Re-runs only the nodes downstream of <paramref name="changed"/>, reading every other value from
    /// <paramref name="upstream"/> (a <see cref="RunOptions.KeepValues"/> cache of an earlier run).
    /// The result equals a full run with the changed values substituted.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> RunDownstream(ValueCache upstream, IReadOnlyDictionary<string, Tensor> changed, RunOptions? options = null)
    {
        options ??= new RunOptions();
        var values = new Tensor?[_slotNames.Count];
        var owned = new bool[_slotNames.Count];
        var dirty = new bool[_slotNames.Count];
        Array.Copy(_constants, values, values.Length);
        foreach (var (name, t) in changed)
        {
            if (!_slotOf.TryGetValue(name, out var s))
                throw new EngineException($"'{name}' is not a value of the model");
            values[s] = t;
            dirty[s] = true;
        }
        var run = new bool[_steps.Length];
        for (int i = 0; i < _steps.Length; i++)
        {
            var st = _steps[i];
            if (!st.Inputs.Any(s => s >= 0 && dirty[s])) continue;
            run[i] = true;
            foreach (var o in st.Outputs) if (o >= 0) dirty[o] = true;
        }
        // Everything a re-run step reads that is not recomputed comes from the cache.
        for (int i = 0; i < _steps.Length; i++)
        {
            if (!run[i]) continue;
            foreach (var s in _steps[i].Inputs)
            {
                if (s < 0 || dirty[s] || values[s] is not null) continue;
                if (!upstream.TryGet(_slotNames[s], out var cached))
                    throw new EngineException($"the value cache has no '{_slotNames[s]}'; run the graph with RunOptions.KeepValues first");
                values[s] = cached;
            }
        }
        foreach (var (s, _) in _outputs)
            if (!dirty[s] && values[s] is null && upstream.TryGet(_slotNames[s], out var cachedOut)) values[s] = cachedOut;
        return Execute(_steps, values, owned, options, run);
    }

    private IReadOnlyDictionary<string, Tensor> Execute(Step[] plan, Tensor?[] values, bool[] owned, RunOptions options, bool[]? stepFilter, bool arena = false)
    {
        var pool = TakePool();
        var arenaBuffer = arena ? TakeArena() : null;
        int executed = 0;
        try
        {
            for (int i = 0; i < plan.Length; i++)
            {
                if (stepFilter is not null && !stepFilter[i]) continue;
                executed++;
                var st = plan[i];
                long started = options.Timings is null ? 0 : System.Diagnostics.Stopwatch.GetTimestamp();
                var produced = Execute(st.Node, st.Kernel, st.Inputs, st.Outputs, values, pool, _options.Threads,
                    arenaBuffer, arenaBuffer is null ? null : _arenaPlaces![i], options.Observer is ITileObserver { TakesTiles: true } tileObserver ? tileObserver : null);
                options.Timings?.Add(st.Node, System.Diagnostics.Stopwatch.GetTimestamp() - started);
                for (int k = 0; k < st.Outputs.Length; k++)
                {
                    int slot = st.Outputs[k];
                    if (slot < 0) continue;
                    values[slot] = produced[k] ?? throw new EngineException($"{st.Node.Describe()}: the kernel did not produce output '{st.Node.Outputs[k]}'");
                    owned[slot] = true;
                    Observe(options, _slotNames[slot], slot, st.Node, values, owned);
                }
                if (options.KeepValues is not null) continue;
                foreach (var slot in st.ReleaseAfter)
                {
                    if (owned[slot] && values[slot] is { IsArenaView: false } dead) pool.Return(dead);
                    values[slot] = null;
                    owned[slot] = false;
                }
            }
            var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            var outputGiven = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
            foreach (var (slot, name) in _outputs)
            {
                var t = values[slot] ?? throw new EngineException($"graph output '{name}' was not computed");
                // An arena view is overwritten by the next run: the caller gets a copy. A pooled buffer the caller gets
                // leaves the pool's live bytes (before, every run's outputs stayed counted in later runs' peaks).
                bool handOver = owned[slot] && options.KeepValues is null && !t.IsArenaView;
                result[name] = handOver ? t : t.Clone();
                if (handOver && outputGiven.Add(t)) pool.Forget(t);
            }
            if (options.KeepValues is { } keep)
                for (int s = 0; s < values.Length; s++)
                    if (values[s] is { } v) keep.Set(_slotNames[s], v);
            LastRunPeakBytes = pool.PeakBytes + (arenaBuffer is null ? 0 : _arenaBytes);
            LastRunNodeCount = executed;
            return result;
        }
        finally
        {
            ReturnPool(pool);
            if (arenaBuffer is not null) ReturnArena(arenaBuffer);
        }
    }

    private void Observe(RunOptions options, string name, int slot, Node? producer, Tensor?[] values, bool[] owned)
    {
        if (options.Observer is null) return;
        var replacement = options.Observer.OnValue(new ObservedValue(name, values[slot]!, producer));
        if (options.Observer is ITileObserver { TakesTiles: true }) return; // read-only: the fused plan has no place for a replacement
        if (replacement is null || ReferenceEquals(replacement, values[slot])) return;
        values[slot] = replacement;
        owned[slot] = false; // the observer owns it; never recycle its buffer
    }

    private static Tensor?[] Execute(Node node, IKernel kernel, int[] inputSlots, int[] outputSlots, Tensor?[] values, BufferPool pool, int threads,
        ArenaBuffer? arena = null, (long Offset, long Bytes)[]? places = null, ITileObserver? tiles = null)
    {
        var inputs = new Tensor?[inputSlots.Length];
        for (int k = 0; k < inputSlots.Length; k++)
            inputs[k] = inputSlots[k] < 0 ? null : values[inputSlots[k]]
                ?? throw new EngineException($"{node.Describe()}: input '{node.Inputs[k]}' has no value");
        var outputs = new Tensor?[outputSlots.Length];
        var ctx = new KernelContext(node, inputs, outputs, pool, threads, arena, places) { TileObserver = tiles };
        try
        {
            kernel.Run(ctx);
        }
        catch (EngineException) { throw; }
        catch (Exception e) when (e is ArgumentException or IndexOutOfRangeException or InvalidOperationException
                                     or InvalidCastException or NotSupportedException or OverflowException or AggregateException)
        {
            var inner = e is AggregateException ae ? ae.Flatten().InnerExceptions[0] : e;
            if (inner is EngineException ee) throw ee;
            throw ctx.Error(inner.Message);
        }
        return outputs;
    }

    private static void CheckInput(ValueInfo info, Tensor t)
    {
        if (info.Type != ElementType.Undefined && info.Type != t.Type)
            throw new EngineException($"input '{info.Name}' must be {info.Type.OnnxName()} but {t.Type.OnnxName()} was given");
        if (info.Shape is null) return;
        bool ok = info.Shape.Length == t.Rank;
        for (int d = 0; ok && d < t.Rank; d++)
            if (info.Shape[d].IsKnown && info.Shape[d].Value != t.Shape[d]) ok = false;
        if (!ok)
            throw new EngineException($"input '{info.Name}' must have shape [{string.Join(",", info.Shape)}] but [{string.Join(",", t.Shape)}] was given");
    }

    private BufferPool TakePool()
    {
        lock (_poolLock)
        {
            var p = _idlePool ?? new BufferPool();
            _idlePool = null;
            p.ResetPeak();
            return p;
        }
    }

    private void ReturnPool(BufferPool pool)
    {
        lock (_poolLock) _idlePool ??= pool;
    }

    /// <summary>The idle arena, or a new one when another run holds it (concurrent runs each need their own).</summary>
    private ArenaBuffer TakeArena()
    {
        lock (_poolLock)
        {
            var a = _idleArena ?? new ArenaBuffer(_arenaBytes);
            _idleArena = null;
            return a;
        }
    }

    private void ReturnArena(ArenaBuffer arena)
    {
        lock (_poolLock) _idleArena ??= arena;
    }
}
