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
        Console.WriteLine($"{path}: {total:F1} ms per run (timed per op), {threads} thread(s)");
        foreach (var (node, ms, _) in timings.ByNode().Take(top))
        {
            var ins = node.Inputs.Where(i => i.Length > 0 && shapes.TryGet(i, out var t) && t.Length > 1)
                .Select(i => $"{shapes[i].Type.OnnxName()}[{string.Join("x", shapes[i].Shape)}]");
            var attrs = string.Join(" ", node.Attributes.Values.Where(a => a.Name is "kernel_shape" or "strides" or "group").Select(a => $"{a.Name}={string.Join(",", a.Ints)}{(a.Name == "group" ? a.Int.ToString(CultureInfo.InvariantCulture) : "")}"));
            Console.WriteLine($"{ms / runs,8:F2} ms  {node.OpType,-20} {node.Name,-28} {string.Join(" ", ins)} {attrs}");
        }
        Console.WriteLine(string.Join(", ", timings.ByOpType().Select(t => $"{t.OpType} {t.Milliseconds / runs:F1} ({t.Nodes})")));
        return 0;
    }
}
