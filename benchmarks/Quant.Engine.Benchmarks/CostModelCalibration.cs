using System.Diagnostics;
using System.Globalization;
using Quant.Core.Compilation;
using Quant.Engine;
using Quant.Engine.Kernels.Integer;
using Quant.Onnx;
using Quant.Runtime;
using Quant.TestSupport;

/// <summary>
/// Measures the compile stage's cost-model constants on this machine with the engine's own kernels
/// (<c>costmodel</c>), and compares the estimate of compiled models with their measured latency (<c>estimate</c>).
/// Every timing is the fastest of 40 runs after 3 warm-up runs, engine default threads: the fastest, not the median,
/// because the constants describe the kernels, not the other processes sharing the cores (the build machine often runs
/// several jobs at once); the estimate is compared with the fastest run of the model for the same reason.
/// Usage: dotnet run -c Release --project benchmarks/Quant.Engine.Benchmarks -- costmodel
///        dotnet run -c Release --project benchmarks/Quant.Engine.Benchmarks -- estimate [det=PATH] [rec=PATH] [cls=PATH]
/// </summary>
internal static class CostModelCalibration
{
    private const int Runs = 40;

    /// <summary>Five passes over every measurement; each constant is its best pass (see the class comment).</summary>
    public static int Measure()
    {
        int threads = Environment.ProcessorCount;
        const int passes = 5;
        var best = new double[6];
        double best3 = 0, best1 = 0;
        for (int pass = 0; pass < passes; pass++)
        {
            // Dense float conv: 3x3 and 1x1 layers of the sizes the PaddleOCR backbones have (wide and small, narrow and
            // large); the rate is their MACs over their time. Depthwise likewise.
            var (c3, m3) = TimeConv(64, 64, 80, 3, 1);
            var (c1, m1) = TimeConv(128, 128, 80, 1, 1);
            var (s3, n3) = TimeConv(16, 16, 160, 3, 1);
            var (s1, n1) = TimeConv(16, 32, 160, 1, 1);
            var (cd, md) = TimeConv(128, 128, 80, 3, 128);
            var (sd, nd) = TimeConv(32, 32, 160, 3, 32);
            // Integer GEMMs as an im2col'd 3x3 conv (M = 80·80 positions, K = 64·9, N = 64), rows split over the cores.
            const int M = 6400, K = 576, N = 64;
            // Bandwidth: float Add of two [1,16,320,320] tensors (two reads, one write), det's largest activations.
            double addBytes = 3.0 * 16 * 320 * 320 * 4;
            double[] rates =
            [
                (m3 + m1 + n3 + n1) / (c3 + c1 + s3 + s1) / 1e9,
                (md + nd) / (cd + sd) / 1e9,
                (double)M * K * N / TimeInt8(M, K, N, threads) / 1e9,
                (double)M * K * N / TimeInt16(M, K, N, threads) / 1e9,
                addBytes / TimeGraph(Add(16, 320)) / 1e9,
                // Per-op overhead: 200 Relu nodes on [1,16], unfused, per node (its inverse is kept as a "rate").
                1 / (TimeGraph(ReluChain(200), fuse: false) / 200 * 1e6),
            ];
            for (int i = 0; i < rates.Length; i++) best[i] = Math.Max(best[i], rates[i]);
            best3 = Math.Max(best3, (m3 + n3) / (c3 + s3) / 1e9);
            best1 = Math.Max(best1, (m1 + n1) / (c1 + s1) / 1e9);
        }

        Console.WriteLine($"cost model constants, {threads} cores, AVX-512F {System.Runtime.Intrinsics.X86.Avx512F.IsSupported}, AVX-VNNI {System.Runtime.Intrinsics.X86.AvxVnni.IsSupported}, best of {passes} passes of the fastest of {Runs} runs:");
        Console.WriteLine($"  float conv 3x3 (64->64 @80x80, 16->16 @160x160): {best3:F2} GMAC/s; 1x1 (128->128 @80x80, 16->32 @160x160): {best1:F2} GMAC/s");
        string[] names = ["FloatGmacPerSecond", "DepthwiseGmacPerSecond", "Int8GmacPerSecond", "Int16GmacPerSecond", "GigabytesPerSecond", "OpOverheadMicroseconds"];
        for (int i = 0; i < names.Length; i++)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"        {names[i]}: {(i == 5 ? 1 / best[i] : best[i]):F2}{(i == 5 ? ");" : ",")}"));
        return 0;
    }

    /// <summary>Compiles each model at its sample's shape, then: .qbm size, arena vs the engine's peak, estimate vs measured.</summary>
    public static int Estimate(string[] args)
    {
        var models = args.Length > 0
            ? args.Select(a => a.Split('=', 2)).Select(p => (p[0], p[1])).ToList()
            : [("det", TestAssets.DetModel), ("rec", TestAssets.RecModel), ("cls", TestAssets.ClsModel)];
        var dir = TestAssets.TempDir("estimate");
        Console.WriteLine($"{"model",-28} {"qbm MiB",8} {"arena MiB",10} {"engine peak MiB",16} {"estimate ms",12} {"measured ms",12}");
        foreach (var (kind, path) in models)
        {
            var input = kind switch
            {
                "det" => OcrSamples.Det(OcrSamples.DetFiles[0]),
                "rec" => OcrSamples.Rec(OcrSamples.RecFiles[0]),
                "cls" => OcrSamples.Cls(OcrSamples.ClsFiles[0]),
                _ => throw new ArgumentException($"unknown model kind {kind}"),
            };
            var qbm = Path.Combine(dir, Path.GetFileNameWithoutExtension(path) + ".qbm");
            var summary = CompileStage.Run(path, qbm, new CompileOptions { InputShapes = new Dictionary<string, int[]> { ["x"] = input.Shape } });
            var model = QbmModel.Load(qbm);
            var feeds = new Dictionary<string, Tensor> { ["x"] = input };
            double ms = Fastest(() => model.Run(feeds)) * 1000;
            Console.WriteLine($"{Path.GetFileName(path) + " [" + string.Join("x", input.Shape) + "]",-28} {summary.QbmBytes / 1048576.0,8:F2} {summary.ArenaBytes / 1048576.0,10:F2} " +
                $"{model.LastRunPeakBytes / 1048576.0,16:F2} {summary.EstimatedMilliseconds,12:F1} {ms,12:F1}");
            // Where the estimate misses: estimated vs measured ms by op type (unfused run with per-node timings).
            var timings = new NodeTimings();
            var session = new InferenceSession(Quant.Onnx.OnnxModelReader.Load(path));
            for (int i = 0; i < 3; i++) session.Run(feeds, new RunOptions { Observer = new Unobserved() });
            session.Run(feeds, new RunOptions { Timings = timings, Observer = new Unobserved() });
            var estimated = model.File.Ops.Select((op, i) => (op.OpType, model.File.Cost.Ops[i].Microseconds)).GroupBy(x => x.OpType)
                .ToDictionary(g => g.Key, g => g.Sum(x => x.Microseconds) / 1000);
            Console.WriteLine("    by op type (estimate / measured ms): " + string.Join(", ", timings.ByOpType().Take(8)
                .Select(t => $"{t.OpType} {estimated.GetValueOrDefault(t.OpType):F1}/{t.Milliseconds:F1}")));
        }
        return 0;
    }

    /// <summary>Makes a run take the unfused plan, where every node is timed on its own.</summary>
    private sealed class Unobserved : IValueObserver
    {
        public Tensor? OnValue(in ObservedValue value) => null;
    }

    private static (double Seconds, double Macs) TimeConv(int cin, int cout, int size, int k, int group)
    {
        var g = new Graph { Name = "conv" };
        g.Inputs.Add(new ValueInfo("x", ElementType.Float, [1, cin, size, size]));
        g.Outputs.Add(new ValueInfo("y", ElementType.Float, null));
        var w = new float[cout * (cin / group) * k * k];
        var random = new Random(1);
        for (int i = 0; i < w.Length; i++) w[i] = (float)(random.NextDouble() - 0.5);
        g.Initializers["w"] = TensorData.FromFloats("w", [cout, cin / group, k, k], w);
        var node = new Node("conv", "Conv", "", ["x", "w"], ["y"]);
        node.Set(AttributeValue.Of("kernel_shape", new long[] { k, k }));
        node.Set(AttributeValue.Of("pads", new long[] { k / 2, k / 2, k / 2, k / 2 }));
        node.Set(AttributeValue.Of("group", (long)group));
        g.Nodes.Add(node);
        double macs = (double)cout * size * size * (cin / group) * k * k;
        return (TimeGraph(g), macs);
    }

    private static Graph Add(int c, int size)
    {
        var g = new Graph { Name = "add" };
        g.Inputs.Add(new ValueInfo("x", ElementType.Float, [1, c, size, size]));
        g.Inputs.Add(new ValueInfo("z", ElementType.Float, [1, c, size, size]));
        g.Outputs.Add(new ValueInfo("y", ElementType.Float, null));
        g.Nodes.Add(new Node("add", "Add", "", ["x", "z"], ["y"]));
        return g;
    }

    private static Graph ReluChain(int n)
    {
        var g = new Graph { Name = "relu" };
        g.Inputs.Add(new ValueInfo("x", ElementType.Float, [1, 16]));
        for (int i = 0; i < n; i++) g.Nodes.Add(new Node($"r{i}", "Relu", "", [i == 0 ? "x" : $"v{i - 1}"], [$"v{i}"]));
        g.Outputs.Add(new ValueInfo($"v{n - 1}", ElementType.Float, null));
        return g;
    }

    private static double TimeGraph(Graph g, bool fuse = true)
    {
        var model = new OnnxModel(g);
        model.Opsets[""] = 17;
        var session = new InferenceSession(model, new SessionOptions { FuseElementwise = fuse });
        var random = new Random(2);
        var feeds = g.Inputs.ToDictionary(i => i.Name, i =>
        {
            var shape = i.Shape!.Select(d => (int)d.Value).ToArray();
            var data = new float[Tensor.ElementCount(shape)];
            for (int k = 0; k < data.Length; k++) data[k] = (float)(random.NextDouble() - 0.5);
            return Tensor.From(data, shape);
        });
        return Fastest(() => session.Run(feeds));
    }

    private static double TimeInt8(int m, int k, int n, int threads)
    {
        var (a, b) = Operands(m, k, n);
        var packed = Int8Weights.Pack(b, k, n);
        var c = new int[m * n];
        return Fastest(() => Split(m, threads, (from, rows) => Int8Gemm.Run(a.AsSpan(from * k, rows * k), packed, rows, c.AsSpan(from * n, rows * n))));
    }

    private static double TimeInt16(int m, int k, int n, int threads)
    {
        var (a8, b8) = Operands(m, k, n);
        var a = a8.Select(x => (short)(x * 100)).ToArray();
        var packed = Int16Weights.Pack(b8.Select(x => (short)(x * 100)).ToArray(), k, n);
        var c = new int[m * n];
        return Fastest(() => Split(m, threads, (from, rows) => Int16Gemm.RunInt32(a.AsSpan(from * k, rows * k), packed, rows, c.AsSpan(from * n, rows * n))));
    }

    private static (sbyte[] A, sbyte[] B) Operands(int m, int k, int n)
    {
        var random = new Random(3);
        var a = new sbyte[m * k];
        var b = new sbyte[k * n];
        for (int i = 0; i < a.Length; i++) a[i] = (sbyte)random.Next(-128, 128);
        for (int i = 0; i < b.Length; i++) b[i] = (sbyte)random.Next(-127, 128);
        return (a, b);
    }

    private static void Split(int m, int parts, Action<int, int> body)
    {
        int per = (m + parts - 1) / parts;
        Parallel.For(0, parts, p =>
        {
            int from = p * per, rows = Math.Min(per, m - from);
            if (rows > 0) body(from, rows);
        });
    }

    /// <summary>Fastest seconds of <see cref="Runs"/> runs after 3 warm-up runs.</summary>
    private static double Fastest(Action run)
    {
        for (int i = 0; i < 3; i++) run();
        var times = new double[Runs];
        for (int i = 0; i < Runs; i++)
        {
            long t = Stopwatch.GetTimestamp();
            run();
            times[i] = Stopwatch.GetElapsedTime(t).TotalSeconds;
        }
        return times.Min();
    }
}
