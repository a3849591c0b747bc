using System.Diagnostics;
using System.Globalization;
using Quant.Engine;
using Quant.Onnx;

/// <summary>
/// Where one model's time goes node by node: runs MODEL (a float, qat or quantized .onnx) in the engine on a det or
/// rec sample at the given thread count and prints the slowest nodes with their input shapes, then the op totals.
/// A NAME.qat.onnx is converted first. Usage: nodes MODEL det|rec [--threads N] [--runs N] [--top N]
/// </summary>
internal static class NodeProfile
{
    public static int Run(string[] args)
    {
        if (args.Length < 2) { Console.Error.WriteLine("usage: nodes MODEL det|rec [--threads N] [--runs N] [--top N]"); return 2; }
        int threads = 1, runs = 5, top = 30;
        for (int i = 2; i < args.Length; i++)
        {
            if (args[i] == "--threads") threads = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--runs") runs = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--top") top = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else { Console.Error.WriteLine($"unknown argument {args[i]}"); return 2; }
        }
        var model = CompiledBench.Describe(args[1]);
        var path = args[0];
        if (path.EndsWith(".qat.onnx", StringComparison.Ordinal))
        {
            // A qat model is converted first (beside it), so a convert change can be profiled without a new export.
            var quantized = path[..^".qat.onnx".Length] + ".quantized.onnx";
            long c0 = Stopwatch.GetTimestamp();
            var summary = Quant.Core.Conversion.ConvertStage.Run(path, quantized);
            Console.WriteLine($"converted in {Stopwatch.GetElapsedTime(c0).TotalSeconds:F1} s: {summary.IntegerGroups} integer groups, {summary.FloatIslands} float islands");
            path = quantized;
        }
        var session = new InferenceSession(OnnxModelReader.Load(path), new SessionOptions { Threads = threads });
        var feeds = new Dictionary<string, Tensor> { ["x"] = model.Input };
        var warm = Stopwatch.StartNew();
        while (warm.Elapsed.TotalSeconds < 1.5) session.Run(feeds);
        var timings = new NodeTimings();
        var shapes = new ValueCache();
        session.Run(feeds, new RunOptions { KeepValues = shapes });
        long t0 = Stopwatch.GetTimestamp();
        for (int r = 0; r < runs; r++) session.Run(feeds, new RunOptions { Timings = timings });
        double total = Stopwatch.GetElapsedTime(t0).TotalMilliseconds / runs;
        // On a shared machine wall time mostly measures the other tenants; at 1 thread the run is on this thread, so
        // its CPU time (the kernel's schedstat, ns) is the steadier number for comparing two builds.
        long cpu0 = ThreadCpuNs();
        for (int r = 0; r < runs; r++) session.Run(feeds);
        double cpu = (ThreadCpuNs() - cpu0) / 1e6 / runs;
        var byCpu = new CpuPerNode();
        if (threads == 1)
            for (int r = 0; r < runs; r++) { byCpu.Start(); session.Run(feeds, new RunOptions { Observer = byCpu }); }
        Console.WriteLine($"{path}: {total:F1} ms per run (timed per op), {threads} thread(s); {(threads == 1 ? $"{cpu:F1} ms thread CPU per untimed run" : "")}");
        foreach (var (node, ms, _) in timings.ByNode().Take(top))
        {
            var ins = node.Inputs.Where(i => i.Length > 0 && shapes.TryGet(i, out var t) && t.Length > 1)
                .Select(i => $"{shapes[i].Type.OnnxName()}[{string.Join("x", shapes[i].Shape)}]");
            var attrs = string.Join(" ", node.Attributes.Values.Where(a => a.Name is "kernel_shape" or "strides" or "group").Select(a => $"{a.Name}={string.Join(",", a.Ints)}{(a.Name == "group" ? a.Int.ToString(CultureInfo.InvariantCulture) : "")}"));
            Console.WriteLine($"{ms / runs,8:F2} ms  {node.OpType,-20} {node.Name,-28} {string.Join(" ", ins)} {attrs}");
        }
        Console.WriteLine(string.Join(", ", timings.ByOpType().Select(t => $"{t.OpType} {t.Milliseconds / runs:F1} ({t.Nodes})")));
        if (threads == 1)
        {
            Console.WriteLine("thread CPU ms per run by op type: " + string.Join(", ", byCpu.ByOp.OrderByDescending(kv => kv.Value.Ns)
                .Select(kv => $"{kv.Key} {kv.Value.Ns / 1e6 / runs:F1} ({kv.Value.Count / runs})")));
            Console.WriteLine("slowest nodes by thread CPU: " + string.Join(", ", byCpu.ByNode.OrderByDescending(kv => kv.Value).Take(top)
                .Select(kv => $"{kv.Key} {kv.Value / 1e6 / runs:F2}")));
        }
        return 0;
    }

    /// <summary>CPU time between consecutive node outputs of a 1-thread run, credited to the producing node.</summary>
    private sealed class CpuPerNode : IValueObserver
    {
        private long _last;
        public Dictionary<string, (long Ns, int Count)> ByOp { get; } = [];
        public Dictionary<string, long> ByNode { get; } = [];
        public void Start() => _last = ThreadCpuNs();
        public Tensor? OnValue(in ObservedValue value)
        {
            long now = ThreadCpuNs();
            if (value.Producer is { } p && value.Producer.Outputs[0] == value.Name)
            {
                long d = now - _last;
                ByOp.TryGetValue(p.OpType, out var t);
                ByOp[p.OpType] = (t.Ns + d, t.Count + 1);
                ByNode[$"{p.OpType}:{p.Name}"] = ByNode.GetValueOrDefault($"{p.OpType}:{p.Name}") + d;
            }
            _last = ThreadCpuNs();
            return null;
        }
    }

    /// <summary>This thread's CPU time in ns (Linux /proc/thread-self/schedstat), 0 elsewhere.</summary>
    internal static long ThreadCpuNs()
    {
        try { return long.Parse(File.ReadAllText("/proc/thread-self/schedstat").Split(' ')[0], CultureInfo.InvariantCulture); }
        catch (IOException) { return 0; }
    }
}
