using System.Diagnostics;
using System.Globalization;
using Quant.Core.DeploymentRuntime;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

// Engine vs ONNX Runtime (in process, OrtRunner) in one run, on the real PaddleOCR v4 models with real samples.
// Prints median latency of each, the engine/ORT ratio (same run, same input, same thread count)
// and the engine's peak tensor memory. Usage: build/bench.sh [--repeat N] [--models det,rec]
// (or "presets REC_DIR DET_DIR": the preset table of docs/export.md, see PresetTable.cs;
// "compiled [--repeat N] [--models det,rec] [--keep DIR]": the compiled int8 model vs ORT and the float engine, CompiledBench.cs;
// "chain DATASETS_DIR": float -> qat -> quantized -> compiled consistency per model and preset, ChainTable.cs;
// "quality DATASETS_DIR": rec/cls accuracy and det IoU of the qat models per preset, QualityTable.cs;
// "costmodel" / "estimate": the compile cost model, see CostModelCalibration.cs;
// "drift rec|det CONFIG": per-GEMM cosine float vs qat for one export, NodeDrift.cs;
// "weights REC_CALIB REC_HELDOUT DET_CALIB DET_HELDOUT": ec and bias correction, WeightRefinementTable.cs / build/measure-weights.sh;
// "sensitivity rec|det CALIB_DIR": node sensitivity, downstream-only vs full re-runs, SensitivityBench.cs / build/bench-sensitivity.sh)
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
if (args is ["presets", .. var dirs]) return PresetTable.Run(dirs);
if (args is ["drift", .. var driftArgs]) return NodeDrift.Run(driftArgs);
if (args is ["weights", .. var weightArgs]) return WeightRefinementTable.Run(weightArgs);
if (args is ["compiled", .. var options]) return CompiledBench.Run(options);
if (args is ["nodes", .. var nodeArgs]) return NodeProfile.Run(nodeArgs);
if (args is ["chain", .. var chainArgs]) return ChainTable.Run(chainArgs);
if (args is ["quality", .. var qualityArgs]) return QualityTable.Run(qualityArgs);
if (args is ["sensitivity", .. var sensitivityArgs]) return SensitivityBench.Run(sensitivityArgs);
if (args is ["costmodel", .. var fitArgs]) return CostModelCalibration.Fit(fitArgs);
if (args is ["estimate", .. var compiled]) return CostModelCalibration.Estimate(compiled);
int repeat = 10;
var models = new[] { "det", "rec" };
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--repeat") repeat = int.Parse(args[++i], CultureInfo.InvariantCulture);
    else if (args[i] == "--models") models = args[++i].Split(',');
    else { Console.Error.WriteLine($"unknown argument {args[i]}"); return 2; }
}

Console.WriteLine($"engine vs ONNX Runtime {OrtRunner.Version} (optimizations all) — {Environment.ProcessorCount} cores, AVX-512F {System.Runtime.Intrinsics.X86.Avx512F.IsSupported}, median of {repeat} runs each, engine and ORT alternating in {LatencyRounds.DefaultRounds} rounds");
Console.WriteLine($"{"model",-22} {"threads",7} {"engine ms",10} {"ORT ms",10} {"ratio",7} {"engine peak MiB",16}");
var profiles = new List<string>();
foreach (var name in models)
{
    var (path, input) = name switch
    {
        "det" => (TestAssets.DetModel, OcrSamples.Det(OcrSamples.DetFiles[0])),
        "rec" => (TestAssets.RecModel, OcrSamples.Rec(OcrSamples.RecFiles[0])),
        "cls" => (TestAssets.ClsModel, OcrSamples.Cls(OcrSamples.ClsFiles[0])),
        _ => throw new ArgumentException($"unknown model {name}"),
    };
    var feeds = new Dictionary<string, Tensor> { ["x"] = input };
    foreach (int threads in new[] { 1, 2 })
    {
        var session = new InferenceSession(OnnxModelReader.Load(path), new SessionOptions { Threads = threads });
        using var ort = new OrtRunner(path, OrtOptimization.All, threads);
        using var ortRun = ort.BindForTiming(feeds);
        var measured = LatencyRounds.Measure([() => RuntimeBenchmark.TimeEngine(session, feeds), ortRun.Once], repeat, warmup: 3);
        double ours = LatencyRounds.Median(measured[0]);
        double theirs = LatencyRounds.Median(measured[1]);
        int perRound = Math.Max(1, repeat / LatencyRounds.DefaultRounds);
        var timings = new NodeTimings();
        for (int r = 0; r < perRound; r++) session.Run(feeds, new RunOptions { Timings = timings });
        profiles.Add($"{name}, {threads} thread(s), ms per run by op type: " +
            string.Join(", ", timings.ByOpType().Take(8).Select(t => $"{t.OpType} {t.Milliseconds / perRound:F1} ({t.Nodes})")));
        string label = $"{name} [{string.Join("x", input.Shape)}]";
        Console.WriteLine($"{label,-22} {threads,7} {ours,10:F1} {theirs,10:F1} {ours / theirs,7:F2} {session.LastRunPeakBytes / 1048576.0,16:F1}");
    }
}
foreach (var p in profiles) Console.WriteLine(p);
Console.WriteLine($"process peak working set: {Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0:F0} MiB");
return 0;

