using System.Diagnostics;
using System.Globalization;
using Quant.Core.Calibration;
using Quant.Core.DeploymentRuntime;
using Quant.Core.Passes;
using Quant.Core.Stages;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

/// <summary>
/// Issue 11's tuning-loop speed: per model, in one run on the same real samples, the plain float run, the fake-quant
/// (qat) run of the exported NAME.qat.onnx, one calibration sample (the prepared float graph, as
/// <see cref="ExportStage"/> calibrates it, observed by a <see cref="CalibrationCollector"/> as <see cref="CalibrationPass"/>
/// runs it) and the plain run of that prepared graph, each as a median of alternating rounds, with the ratios qat / float,
/// calibration / float and calibration / prepared float. With <c>--compare</c> the same rounds also time the qat run
/// without the fake-quant fusion (<see cref="SessionOptions.FuseFakeQuant"/> off: the separate Q and DQ kernels), after
/// checking that both give the same output bits on every sample. "Where the time goes" lines per model give the qat and
/// prepared float runs' milliseconds by op type and the calibration's statistics time and observed elements.
/// Usage: build/bench-loop.sh [--repeat N] [--models det,rec,cls] [--threads N] [--preset P] [--compare];
/// "loop binning" and "loop fakequant" time the two kernels alone, "loop calibrate det|rec RUNS THREADS" runs calibration
/// samples only (to profile them, e.g. under perf), "loop keep det|rec" a run keeping every value,
/// "loop export det|rec DIR" exports and keeps the artifacts (to compare builds).
/// </summary>
internal static class LoopBench
{
    public static int Run(string[] args)
    {
        if (args is ["binning"]) return Binning();
        if (args is ["fakequant"]) return FakeQuantPair();
        if (args is ["keep", var keepModel]) return KeepValuesRun(keepModel);
        if (args is ["calibrate", var calibrateModel, var runs, var runThreads]) return CalibrateOnly(calibrateModel, int.Parse(runs, CultureInfo.InvariantCulture), int.Parse(runThreads, CultureInfo.InvariantCulture));
        if (args is ["export", var exportModel, var exportDir])
        {
            // The export alone, artifacts kept (to compare qat.onnx and the statistics cache across builds).
            Export(CompiledBench.Describe(exportModel), exportDir, "performance");
            return 0;
        }
        int repeat = 8, threads = 1;
        var names = new[] { "det", "rec", "cls" };
        string preset = "performance";
        bool compare = false;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--repeat" && i + 1 < args.Length) repeat = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--models" && i + 1 < args.Length) names = args[++i].Split(',');
            else if (args[i] == "--threads" && i + 1 < args.Length) threads = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--preset" && i + 1 < args.Length) preset = args[++i];
            else if (args[i] == "--compare") compare = true;
            else { Console.Error.WriteLine($"unknown argument {args[i]}; usage: loop [--repeat N] [--models det,rec,cls] [--threads N] [--preset P] [--compare]"); return 2; }
        }
        s_threadCpu = threads == 1 && ThreadCpuNs() > 0;
        var work = TestAssets.TempDir("bench-loop");
        Directory.CreateDirectory(work);
        try
        {
            Console.WriteLine($"tuning-loop speed: float run, qat run ({preset} preset, max calibration), one calibration sample (2048 bins) — " +
                              $"{threads} thread(s), {Environment.ProcessorCount} cores, AVX-512F {System.Runtime.Intrinsics.X86.Avx512F.IsSupported}; " +
                              $"{(s_threadCpu ? "thread CPU time" : "wall time")}, median of {repeat} runs each, alternating in {LatencyRounds.DefaultRounds} rounds; load average {LoadAverage()}");
            var rows = new List<string>();
            var profiles = new List<string>();
            foreach (var name in names)
            {
                var model = CompiledBench.Describe(name);
                var qat = Export(model, work, preset);
                var samples = Samples(name);
                var floatModel = OnnxModelReader.Load(model.FloatPath);
                var floatSession = new InferenceSession(floatModel, new SessionOptions { Threads = threads });
                // Calibration runs the prepared graph (folded affines, one HardSwish op), as ExportStage.Calibrate does.
                var preparedSession = new InferenceSession(GraphPreparation.Prepare(floatModel).Model, new SessionOptions { Threads = threads });
                var qatSession = new InferenceSession(OnnxModelReader.Load(qat), new SessionOptions { Threads = threads });
                var contestants = new List<Func<double>>
                {
                    Cycling(samples, feeds => floatSession.Run(feeds)),
                    Cycling(samples, feeds => qatSession.Run(feeds)),
                    Calibrating(samples, preparedSession, threads),
                    Cycling(samples, feeds => preparedSession.Run(feeds)),
                };
                if (compare)
                {
                    var unfusedQat = new InferenceSession(OnnxModelReader.Load(qat), new SessionOptions { Threads = threads, FuseFakeQuant = false });
                    contestants.Add(Cycling(samples, feeds => unfusedQat.Run(feeds)));
                    foreach (var feeds in samples)
                    {
                        var a = qatSession.Run(feeds);
                        var b = unfusedQat.Run(feeds);
                        foreach (var (output, t) in b)
                            if (!t.Bytes().SequenceEqual(a[output].Bytes()))
                                throw new InvalidOperationException($"{name}: the fused qat run's '{output}' differs from the unfused run's");
                    }
                    Console.WriteLine($"{name}: fused and unfused qat outputs are bit-identical on {samples.Count} samples");
                }
                var times = LatencyRounds.Measure(contestants, repeat, warmup: 2);
                var m = times.Select(LatencyRounds.Median).ToArray();
                string label = $"{name} [{string.Join("x", samples[0]["x"].Shape)}]";
                rows.Add($"{label,-20} {m[0],9:F1} {m[1],9:F1} {m[1] / m[0],7:F2} {m[3],13:F1} {m[2],13:F1} {m[2] / m[0],7:F2} {m[2] / m[3],7:F2}" +
                         (compare ? $" {m[4],13:F1} {m[4] / m[0],7:F2}" : ""));
                profiles.Add(Profile(name + " qat", qatSession, samples[0], Math.Max(1, repeat / LatencyRounds.DefaultRounds)));
                profiles.Add(CalibrationProfile(name, preparedSession, samples, threads));
                profiles.Add(Profile(name + " prepared float", preparedSession, samples[0], Math.Max(1, repeat / LatencyRounds.DefaultRounds)));
            }
            Console.WriteLine($"{"model",-20} {"float ms",9} {"qat ms",9} {"ratio",7} {"prepared ms",13} {"calib ms/sample",13} {"/float",7} {"/prep",7}" +
                              (compare ? $" {"qat unfused ms",13} {"ratio",7}" : ""));
            foreach (var r in rows) Console.WriteLine(r);
            foreach (var p in profiles) Console.WriteLine(p);
            Console.WriteLine($"load average at the end: {LoadAverage()}");
            return 0;
        }
        finally
        {
            try { Directory.Delete(work, true); } catch (IOException) { }
        }
    }

    /// <summary>The model's committed calibration samples, preprocessed as the export reads them (det at 640x640).</summary>
    internal static List<Dictionary<string, Tensor>> Samples(string name) => (name switch
    {
        "det" => OcrSamples.DetFiles.Select(f => OcrSamples.Det(f)),
        "rec" => OcrSamples.RecFiles.Select(OcrSamples.Rec),
        "cls" => Enumerable.Range(0, 4).Select(i => OcrSamples.Cls($"cls_{i:D4}.npy")),
        _ => throw new ArgumentException($"unknown model {name} (det, rec or cls)"),
    }).Select(t => new Dictionary<string, Tensor> { ["x"] = t }).ToList();

    /// <summary>The float model exported to NAME.qat.onnx with the preset and max calibration over the committed samples.</summary>
    internal static string Export(CompiledBench.Model m, string work, string preset)
    {
        var dir = Path.Combine(work, $"{m.Name}-{preset}");
        Directory.CreateDirectory(dir);
        var config = Path.Combine(dir, preset + ".yaml");
        File.WriteAllText(config, $"preset: {preset}\nmodel_config:\n  activation:\n    calibration_type: max\ninputs:\n  x:\n    data: \"{m.CalibrationGlob.Replace('\\', '/')}\"\n{m.Preprocessing}");
        long t0 = Stopwatch.GetTimestamp();
        var export = ExportStage.Run(new ExportRequest { ModelPath = m.FloatPath, ConfigPath = config, OutputDirectory = dir, Name = m.Name });
        Console.WriteLine($"{m.Name}: exported {Path.GetFileName(export.QatModelPath)} in {Stopwatch.GetElapsedTime(t0).TotalSeconds:F1} s");
        return export.QatModelPath;
    }

    /// <summary>
    /// One run per call on the next sample. At one thread everything runs on the calling thread, so its CPU time is
    /// measured (on a shared machine wall time mostly measures the neighbours); otherwise wall time.
    /// </summary>
    private static Func<double> Cycling(List<Dictionary<string, Tensor>> samples, Action<Dictionary<string, Tensor>> run)
    {
        int next = 0;
        return () =>
        {
            var feeds = samples[next++ % samples.Count];
            if (s_threadCpu)
            {
                long c0 = ThreadCpuNs();
                run(feeds);
                return (ThreadCpuNs() - c0) / 1e6;
            }
            long t0 = Stopwatch.GetTimestamp();
            run(feeds);
            return Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        };
    }

    private static bool s_threadCpu;

    /// <summary>One calibration sample: the float run observed by a collector that keeps accumulating, as in an export.</summary>
    private static Func<double> Calibrating(List<Dictionary<string, Tensor>> samples, InferenceSession floatSession, int threads)
    {
        var collector = new CalibrationCollector(numBins: 2048, threads: threads, valueOrder: CalibrationPass.ValueOrder(floatSession));
        return Cycling(samples, feeds => floatSession.Run(feeds, new RunOptions { Observer = collector }));
    }

    /// <summary>Calibration samples and nothing else, after a warm-up: what a profiler should look at.</summary>
    private static int CalibrateOnly(string name, int runs, int threads)
    {
        var model = CompiledBench.Describe(name);
        var samples = Samples(name);
        var prepared = new InferenceSession(GraphPreparation.Prepare(OnnxModelReader.Load(model.FloatPath)).Model, new SessionOptions { Threads = threads });
        var calibrate = Calibrating(samples, prepared, threads);
        for (int r = 0; r < 5; r++) calibrate();
        var sw = Stopwatch.StartNew();
        for (int r = 0; r < runs; r++) calibrate();
        Console.WriteLine($"{name}: {sw.Elapsed.TotalMilliseconds / runs:F2} ms per calibration sample (wall, {threads} thread(s), {runs} samples)");
        return 0;
    }

    private static string Profile(string name, InferenceSession qat, Dictionary<string, Tensor> feeds, int runs)
    {
        var timings = new NodeTimings();
        for (int r = 0; r < runs; r++) qat.Run(feeds, new RunOptions { Timings = timings });
        return $"{name}, ms per run by op type: " +
               string.Join(", ", timings.ByOpType().Take(10).Select(t => $"{t.OpType} {t.Milliseconds / runs:F1} ({t.Nodes})"));
    }

    /// <summary>How much calibration observes and how much of its time the statistics take (the rest is the unfused float run).</summary>
    private static string CalibrationProfile(string name, InferenceSession floatSession, List<Dictionary<string, Tensor>> samples, int threads)
    {
        var collector = new CalibrationCollector(numBins: 2048, threads: threads, valueOrder: CalibrationPass.ValueOrder(floatSession));
        var timed = new TimedCollector(collector);
        var run = Cycling(samples, feeds => floatSession.Run(feeds, new RunOptions { Observer = timed }));
        double total = samples.Sum(_ => run()) / samples.Count;
        // The share of elements in the first positive bin (exact zeros and the smallest magnitudes): increments of one counter.
        double firstBin = collector.Tensors.Sum(t => (double)t.PositiveHistogram[0]) / collector.Tensors.Sum(t => (double)t.Count);
        return $"{name} calibration, per sample: {total:F1} ms, of which statistics {timed.Ns / 1e6 / samples.Count:F1} ms " +
               $"over {timed.Values / samples.Count} float values, {timed.Elements / samples.Count / 1e6:F1} M elements ({firstBin:P0} in the first positive bin); M elements by producer: " +
               string.Join(", ", timed.ByOp.OrderByDescending(kv => kv.Value).Take(12).Select(kv => $"{kv.Key} {kv.Value / samples.Count / 1e6:F1}"));
    }

    private sealed class TimedCollector(CalibrationCollector inner) : ITileObserver
    {
        public long Ns, Values, Elements;
        public bool TakesTiles => inner.TakesTiles;
        private readonly HashSet<string> _pieces = [];

        public int TileLanes => inner.TileLanes;

        public void OnTile(string name, ReadOnlySpan<float> tile, int lane)
        {
            // Wall ticks: a CPU-clock system call per 1024-element piece would cost more than the piece's binning.
            long t0 = Stopwatch.GetTimestamp();
            inner.OnTile(name, tile, lane);
            long ns = (long)((Stopwatch.GetTimestamp() - t0) * (1e9 / Stopwatch.Frequency));
            lock (_pieces)
            {
                // Lanes run at once: their times add up to more than the wall time they took.
                Ns += ns;
                if (_pieces.Add(name)) Values++;
                Elements += tile.Length;
                ByOp["(in fused chains)"] = ByOp.GetValueOrDefault("(in fused chains)") + tile.Length;
            }
        }

        private static long Now() => s_threadCpu ? ThreadCpuNs() : (long)(Stopwatch.GetTimestamp() * (1e9 / Stopwatch.Frequency));
        public Dictionary<string, long> ByOp { get; } = [];
        public Tensor? OnValue(in ObservedValue value)
        {
            _pieces.Clear();
            if (value.Value.Type != ElementType.Float) return null;
            long t0 = Now();
            inner.OnValue(value);
            Ns += Now() - t0;
            Values++;
            Elements += value.Value.Length;
            string op = value.Producer?.OpType ?? "input";
            ByOp[op] = ByOp.GetValueOrDefault(op) + value.Value.Length;
            return null;
        }
    }

    /// <summary>
    /// The binning alone (<c>loop binning</c>): thread CPU ns per element of one collector folding a 64K-element tensor
    /// (L2-resident) again and again, next to TensorPrimitives' min and max over the same data (what one pass costs here).
    /// </summary>
    private static int Binning()
    {
        var rng = new Random(1);
        foreach (var (label, gen) in new (string, Func<float>)[]
                 {
                     ("gaussian", () => (float)(rng.NextDouble() * 2 - 1) * (float)(rng.NextDouble() * 2 - 1) * 4),
                     ("half zeros", () => rng.Next(2) == 0 ? 0f : (float)rng.NextDouble() * 6),
                 })
        {
            var data = new float[1 << 16];
            for (int i = 0; i < data.Length; i++) data[i] = gen();
            var t = Tensor.From(data, data.Length);
            var c = new CalibrationCollector(numBins: 2048, threads: 1);
            for (int r = 0; r < 20; r++) c.Add("x", t);
            long c0 = ThreadCpuNs();
            int reps = (int)(100L * (1 << 20) / data.Length); for (int r = 0; r < reps; r++) c.Add("x", t);
            Console.WriteLine($"{label}: {(ThreadCpuNs() - c0) / (double)reps / data.Length:F3} ns per element; Vector512 accelerated {System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated}");
            // The same data as 1024-element pieces of a value inside a fused chain (one lane), ended by a small value.
            var end = new ObservedValue("end", Tensor.From(new[] { 1f }, 1), null);
            c0 = ThreadCpuNs();
            for (int r = 0; r < reps; r++)
            {
                for (int at = 0; at < data.Length; at += 1024) c.OnTile("y", data.AsSpan(at, 1024), 0);
                c.OnValue(end);
            }
            Console.WriteLine($"  as 1024-element pieces: {(ThreadCpuNs() - c0) / (double)reps / data.Length:F3} ns per element");
            var scratch = new int[HistogramKernels.ScratchLength(2048)];
            c0 = ThreadCpuNs();
            for (int r = 0; r < reps; r++) HistogramKernels.Bin(data, 2048 / 8f, 2048, scratch);
            Console.WriteLine($"  the kernel alone: {(ThreadCpuNs() - c0) / (double)reps / data.Length:F3} ns per element");
            c0 = ThreadCpuNs();
            float sink = 0;
            for (int r = 0; r < reps; r++) sink += System.Numerics.Tensors.TensorPrimitives.Max(data) + System.Numerics.Tensors.TensorPrimitives.Min(data);
            Console.WriteLine($"  min+max alone: {(ThreadCpuNs() - c0) / (double)reps / data.Length:F3} ns per element {sink > 1e30}");
        }
        return 0;
    }

    /// <summary>
    /// What keeping every value costs (<c>loop keep det|rec</c>): the prepared float model's plain run against the run
    /// with <see cref="RunOptions.KeepValues"/> (what the sensitivity base runs do), thread CPU and wall ms, alternating, with the
    /// kept bytes and the garbage collections the kept runs caused.
    /// </summary>
    private static int KeepValuesRun(string name)
    {
        s_threadCpu = ThreadCpuNs() > 0;
        var model = CompiledBench.Describe(name);
        var session = new InferenceSession(GraphPreparation.Prepare(OnnxModelReader.Load(model.FloatPath)).Model, new SessionOptions { Threads = 1 });
        var samples = Samples(name);
        long kept = 0;
        int gcBefore = GC.CollectionCount(2);
        var wall = new List<double>[] { [], [] };
        var contestants = new List<Func<double>>
        {
            Cycling(samples, feeds => session.Run(feeds)),
            Cycling(samples, feeds =>
            {
                var cache = new ValueCache();
                long t0 = Stopwatch.GetTimestamp();
                session.Run(feeds, new RunOptions { KeepValues = cache });
                wall[1].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                kept = cache.Names.Where(n => cache[n].Type != ElementType.String).Sum(n => (long)cache[n].Bytes().Length);
            }),
        };
        var times = LatencyRounds.Measure(contestants, 4, warmup: 1);
        Console.WriteLine($"{name}: plain run {LatencyRounds.Median(times[0]):F1} ms CPU, keeping every value {LatencyRounds.Median(times[1]):F1} ms CPU " +
                          $"({wall[1].Order().ElementAt(wall[1].Count / 2):F1} ms wall), {kept / 1e6:F0} MB kept per run, {GC.CollectionCount(2) - gcBefore} gen2 collections; load average {LoadAverage()}");
        return 0;
    }

    /// <summary>One Q → DQ pair on a det-sized activation (<c>loop fakequant</c>), fused and not: thread CPU ms per run.</summary>
    private static int FakeQuantPair()
    {
        int[] shape = [1, 96, 160, 160];
        var g = new Graph { Name = "qdq" };
        g.Inputs.Add(new ValueInfo("x", ElementType.Float, shape.Select(d => Dim.Known(d)).ToArray()));
        g.Initializers["s"] = TensorData.FromFloats("s", [], [0.02f]);
        g.Initializers["z"] = Tensor.From(new sbyte[] { 3 }).ToData("z");
        g.Nodes.Add(new Node("q", "QuantizeLinear", "", ["x", "s", "z"], ["q"]));
        g.Nodes.Add(new Node("d", "DequantizeLinear", "", ["q", "s", "z"], ["y"]));
        // A reduction as the output, so that the timing is the pair's and not the allocation of a fresh graph output.
        g.Nodes.Add(new Node("m", "ReduceMax", "", ["y"], ["m"]));
        g.Outputs.Add(new ValueInfo("m", ElementType.Float, null));
        var model = new OnnxModel(g);
        model.Opsets[""] = 13;
        var rng = new Random(3);
        var x = Tensor.From(Enumerable.Range(0, Tensor.ElementCount(shape)).Select(_ => (float)(rng.NextDouble() * 6 - 3)).ToArray(), shape);
        var feeds = new Dictionary<string, Tensor> { ["x"] = x };
        var sessions = new[] { true, false }.Select(fuse => new InferenceSession(model, new SessionOptions { Threads = 1, FuseFakeQuant = fuse })).ToArray();
        var best = new double[2];
        Array.Fill(best, double.MaxValue);
        for (int round = 0; round < 10; round++)
            for (int k = 0; k < 2; k++)
            {
                sessions[k].Run(feeds);
                long c0 = ThreadCpuNs();
                for (int r = 0; r < 5; r++) sessions[k].Run(feeds);
                best[k] = Math.Min(best[k], (ThreadCpuNs() - c0) / 5e6);
            }
        Console.WriteLine($"fused {best[0]:F2} ms, unfused {best[1]:F2} ms (best of 10 x 5 runs, thread CPU)");
        return 0;
    }

    /// <summary>
    /// This thread's CPU time in ns from clock_gettime(CLOCK_THREAD_CPUTIME_ID) (exact; /proc's schedstat advances only at
    /// scheduler ticks, too coarse for a 1 ms cls run), or 0 where libc has no such clock.
    /// </summary>
    private static long ThreadCpuNs()
    {
        try { return ClockGetTime(3, out var t) == 0 ? t.Seconds * 1_000_000_000 + t.Nanoseconds : 0; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return 0; }
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct TimeSpec { public long Seconds; public long Nanoseconds; }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out TimeSpec time);

    private static string LoadAverage()
    {
        try { return string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "n/a"; }
    }
}
