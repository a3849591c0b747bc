using System.Diagnostics;
using System.Globalization;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

// Engine vs ONNX Runtime 1.30 in one run, on the real PaddleOCR v4 models with real samples.
// Prints median latency of each, the engine/ORT ratio (same run, same input, same thread count)
// and the engine's peak tensor memory. Usage: build/bench.sh [--repeat N] [--models det,rec]
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
int repeat = 10;
var models = new[] { "det", "rec" };
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--repeat") repeat = int.Parse(args[++i], CultureInfo.InvariantCulture);
    else if (args[i] == "--models") models = args[++i].Split(',');
    else { Console.Error.WriteLine($"unknown argument {args[i]}"); return 2; }
}

Console.WriteLine($"engine vs ONNX Runtime 1.30 — {Environment.ProcessorCount} cores, AVX-512F {System.Runtime.Intrinsics.X86.Avx512F.IsSupported}, median of {repeat} runs each, engine and ORT alternating in 4 rounds");
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
        for (int w = 0; w < 3; w++) session.Run(feeds);
        // Engine and ORT take turns in rounds, so a drift of the machine's speed (other tenants, clocks)
        // hits both sides alike; the medians are over all rounds.
        const int Rounds = 4;
        int perRound = Math.Max(1, repeat / Rounds);
        var times = new List<double>();
        var ortTimes = new List<double>();
        for (int round = 0; round < Rounds; round++)
        {
            for (int r = 0; r < perRound; r++)
            {
                var sw = Stopwatch.StartNew();
                session.Run(feeds);
                times.Add(sw.Elapsed.TotalMilliseconds);
            }
            ortTimes.AddRange(OrtOracle.Run(path, feeds, threads, perRound, warmup: 2).LatenciesMs);
        }
        times.Sort();
        ortTimes.Sort();
        double ours = times[(times.Count - 1) / 2];
        double theirs = ortTimes[(ortTimes.Count - 1) / 2];
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
