using System.Diagnostics;
using System.Globalization;
using Quant.Core.Compilation;
using Quant.Core.Conversion;
using Quant.Core.DeploymentRuntime;
using Quant.Core.Stages;
using Quant.Engine;
using Quant.Onnx;
using Quant.Runtime;
using Quant.TestSupport;

/// <summary>
/// Issue 9's speed question: the compiled int8 model (performance preset) against ONNX Runtime running the same
/// NAME.qat.onnx with all optimizations (what a deployment would run instead), and against our engine on the float
/// model. Per model: export (preset performance, calibration max on the committed samples) → convert → compile, then
/// the three take turns in rounds (<see cref="LatencyRounds"/>) at 1 and 2 threads (each at the row's thread count) on
/// the same real input, and the compiled program's own per-op timings say where its time goes.
/// Usage: build/bench-compiled.sh [--repeat N] [--models det,rec] [--keep DIR]
/// </summary>
internal static class CompiledBench
{
    internal sealed record Model(string Name, string FloatPath, string CalibrationGlob, string Preprocessing, Tensor Input);

    public static int Run(string[] args)
    {
        int repeat = 10;
        var names = new[] { "det", "rec" };
        string? keep = null;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--repeat" && i + 1 < args.Length) repeat = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--models" && i + 1 < args.Length) names = args[++i].Split(',');
            else if (args[i] == "--keep" && i + 1 < args.Length) keep = Path.GetFullPath(args[++i]);
            else { Console.Error.WriteLine($"unknown argument {args[i]}; usage: compiled [--repeat N] [--models det,rec] [--keep DIR]"); return 2; }
        }
        var work = keep ?? TestAssets.TempDir("bench-compiled");
        Directory.CreateDirectory(work);
        try
        {
            Console.WriteLine($"compiled int8 (performance preset) vs ONNX Runtime {OrtRunner.Version} on the same qat model (optimizations all) vs the engine on the float model — " +
                              $"{Environment.ProcessorCount} cores, AVX-512F {System.Runtime.Intrinsics.X86.Avx512F.IsSupported}, AVX-VNNI {System.Runtime.Intrinsics.X86.AvxVnni.IsSupported}; " +
                              $"median of {repeat} runs each, the three alternating in {LatencyRounds.DefaultRounds} rounds");
            var rows = new List<string>();
            var profiles = new List<string>();
            foreach (var name in names)
            {
                var model = Describe(name);
                var (qat, quantized, qbm) = Build(model, work);
                foreach (int threads in new[] { 1, 2 })
                {
                    var compiled = QbmModel.Load(qbm, new QbmRunOptions { Threads = threads });
                    var feeds = new Dictionary<string, Tensor> { ["x"] = model.Input };
                    var floatEngine = new InferenceSession(OnnxModelReader.Load(model.FloatPath), new SessionOptions { Threads = threads });
                    using var ort = new OrtRunner(qat, OrtOptimization.All, threads);
                    using var ortRun = ort.BindForTiming(feeds);
                    var times = LatencyRounds.Measure([() => Time(() => compiled.Run(feeds)), ortRun.Once, () => RuntimeBenchmark.TimeEngine(floatEngine, feeds)], repeat, warmup: 3);
                    double ours = LatencyRounds.Median(times[0]), ortQat = LatencyRounds.Median(times[1]), engineFloat = LatencyRounds.Median(times[2]);
                    rows.Add($"{$"{name} [{string.Join("x", model.Input.Shape)}]",-22} {threads,7} {ours,11:F1} {ortQat,10:F1} {engineFloat,15:F1} {ours / ortQat,16:F2} {ours / engineFloat,21:F2}");
                    profiles.Add(Profile(name, compiled, feeds, Math.Max(1, repeat / LatencyRounds.DefaultRounds)));
                }
            }
            Console.WriteLine($"{"model",-22} {"threads",7} {"compiled ms",11} {"ORT qat ms",10} {"engine float ms",15} {"compiled / ORT qat",16} {"compiled / engine float",21}");
            foreach (var r in rows) Console.WriteLine(r);
            foreach (var p in profiles) Console.WriteLine(p);
            Console.WriteLine($"process peak working set: {Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0:F0} MiB");
            return 0;
        }
        finally
        {
            if (keep is null) try { Directory.Delete(work, true); } catch (IOException) { }
        }
    }

    internal static Model Describe(string name) => name switch
    {
        "det" => new Model("det", TestAssets.DetModel, Path.Combine(TestAssets.Data("ppocr-det"), "*.npy"), PresetTable.DetPreprocessing,
            OcrSamples.Det(OcrSamples.DetFiles[0])),
        "rec" => new Model("rec", TestAssets.RecModel, Path.Combine(TestAssets.Data("ppocr-rec"), "calib_*.npy"), PresetTable.RecPreprocessing,
            OcrSamples.Rec(OcrSamples.RecFiles[0])),
        "cls" => new Model("cls", TestAssets.ClsModel, Path.Combine(TestAssets.Data("ppocr-cls"), "cls_*.npy"), PresetTable.RecPreprocessing,
            OcrSamples.Cls(OcrSamples.ClsFiles[0])),
        _ => throw new ArgumentException($"unknown model {name} (det, rec or cls)"),
    };

    /// <summary>float → NAME.qat.onnx (<paramref name="preset"/>) → NAME.quantized.onnx → NAME.qbm, each stage timed once.</summary>
    internal static (string Qat, string Quantized, string Qbm) Build(Model m, string work, string preset = "performance")
    {
        var dir = Path.Combine(work, preset == "performance" ? m.Name : $"{m.Name}-{preset}");
        Directory.CreateDirectory(dir);
        var config = Path.Combine(dir, preset + ".yaml");
        File.WriteAllText(config, $"preset: {preset}\nmodel_config:\n  activation:\n    calibration_type: max\ninputs:\n  x:\n    data: \"{m.CalibrationGlob.Replace('\\', '/')}\"\n{m.Preprocessing}");
        long t0 = Stopwatch.GetTimestamp();
        var export = ExportStage.Run(new ExportRequest { ModelPath = m.FloatPath, ConfigPath = config, OutputDirectory = dir, Name = m.Name });
        double exportS = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        var quantized = Path.Combine(dir, m.Name + ".quantized.onnx");
        t0 = Stopwatch.GetTimestamp();
        var converted = ConvertStage.Run(export.QatModelPath, quantized);
        double convertS = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        var qbm = Path.Combine(dir, m.Name + ".qbm");
        t0 = Stopwatch.GetTimestamp();
        // Plan memory and cost for the benchmark's input (rec's width is symbolic in the model).
        var compiled = CompileStage.Run(quantized, qbm, new CompileOptions { InputShapes = new Dictionary<string, int[]> { ["x"] = m.Input.Shape.ToArray() } });
        double compileS = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        Console.WriteLine($"{m.Name} ({preset}): export {exportS:F1} s, convert {convertS:F1} s ({converted.IntegerGroups} integer groups, {converted.FloatIslands} float islands), " +
                          $"compile {compileS:F1} s (arena {compiled.ArenaBytes / 1048576.0:F1} MiB, cost model {compiled.EstimatedMilliseconds:F1} ms), .qbm {compiled.QbmBytes / 1048576.0:F1} MiB, {compiled.OpCount} ops");
        return (export.QatModelPath, quantized, qbm);
    }

    /// <summary>Where the time goes: the compiled program's own per-op timings at its thread count over <paramref name="runs"/> runs.</summary>
    private static string Profile(string name, QbmModel compiled, IReadOnlyDictionary<string, Tensor> feeds, int runs)
    {
        var timings = new NodeTimings();
        long t0 = Stopwatch.GetTimestamp();
        for (int r = 0; r < runs; r++) compiled.Run(feeds, timings);
        double total = Stopwatch.GetElapsedTime(t0).TotalMilliseconds / runs;
        return $"{name}, {compiled.Options.Threads} thread(s), compiled model {total:F1} ms per run (timed per op); by op type: " +
               string.Join(", ", timings.ByOpType().Take(10).Select(t => $"{t.OpType} {t.Milliseconds / runs:F1} ({t.Nodes})"));
    }

    private static double Time(Action run)
    {
        long t0 = Stopwatch.GetTimestamp();
        run();
        return Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
    }
}
