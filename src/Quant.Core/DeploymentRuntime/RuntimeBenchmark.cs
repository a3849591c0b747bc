using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Quant.Engine;
using Quant.Core.Stages;

namespace Quant.Core.DeploymentRuntime;

/// <summary>Median latencies of one model in both runtimes, with every timed run.</summary>
public sealed record ModelLatency(string Label, string ModelPath, IReadOnlyList<double> EngineMs, IReadOnlyList<double> OrtMs)
{
    public double EngineMedian => LatencyRounds.Median(EngineMs);
    public double OrtMedian => LatencyRounds.Median(OrtMs);
    /// <summary>How much slower the engine is than ONNX Runtime on this model (above 1: slower).</summary>
    public double EngineOverOrt => EngineMedian / OrtMedian;
}

/// <summary>What <see cref="RuntimeBenchmark.Run"/> measured; <see cref="Qat"/> is null when no qat model was given.</summary>
public sealed record BenchResult(ModelLatency Float, ModelLatency? Qat, int Threads, int Repeat, int Rounds, string OrtVersion,
    IReadOnlyDictionary<string, int[]> InputShapes)
{
    /// <summary>Float over qat median in ONNX Runtime: how many times faster int8 makes the model in the deployment runtime.</summary>
    public double? QatSpeedupInOrt => Qat is null ? null : Float.OrtMedian / Qat.OrtMedian;
    /// <summary>The same in the engine (whose Q/DQ nodes run as written, so below 1 is expected).</summary>
    public double? QatSpeedupInEngine => Qat is null ? null : Float.EngineMedian / Qat.EngineMedian;

    /// <summary>The result as JSON (no timestamps or host names: two runs differ only in their times).</summary>
    public string ToJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("onnxruntime_version", OrtVersion);
            w.WriteString("onnxruntime_optimization", "all");
            w.WriteNumber("threads", Threads);
            w.WriteNumber("repeat", Repeat);
            w.WriteNumber("rounds", Rounds);
            w.WriteStartObject("inputs");
            foreach (var (name, shape) in InputShapes)
            {
                w.WriteStartArray(name);
                foreach (var d in shape) w.WriteNumberValue(d);
                w.WriteEndArray();
            }
            w.WriteEndObject();
            w.WriteStartArray("models");
            foreach (var m in Qat is null ? [Float] : new[] { Float, Qat })
            {
                w.WriteStartObject();
                w.WriteString("model", m.Label);
                w.WriteString("path", m.ModelPath);
                w.WriteNumber("engine_median_ms", Math.Round(m.EngineMedian, 3));
                w.WriteNumber("onnxruntime_median_ms", Math.Round(m.OrtMedian, 3));
                w.WriteNumber("engine_over_onnxruntime", Math.Round(m.EngineOverOrt, 4));
                Runs(w, "engine_runs_ms", m.EngineMs);
                Runs(w, "onnxruntime_runs_ms", m.OrtMs);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            if (Qat is not null)
            {
                w.WriteNumber("qat_speedup_onnxruntime", Math.Round(QatSpeedupInOrt!.Value, 4));
                w.WriteNumber("qat_speedup_engine", Math.Round(QatSpeedupInEngine!.Value, 4));
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }

    private static void Runs(Utf8JsonWriter w, string name, IReadOnlyList<double> runs)
    {
        w.WriteStartArray(name);
        foreach (var t in runs) w.WriteNumberValue(Math.Round(t, 3));
        w.WriteEndArray();
    }
}

/// <summary>
/// Latency of a float model and (optionally) its qat model in ONNX Runtime with all optimizations (what a deployment
/// runs: Q/DQ groups become integer kernels) and in the engine, on the same inputs and thread count, the four taking
/// turns in rounds (<see cref="LatencyRounds"/>) so the ratios hold on a machine whose speed drifts.
/// </summary>
public static class RuntimeBenchmark
{
    public static BenchResult Run(string floatPath, string? qatPath, IReadOnlyDictionary<string, Tensor> inputs, int threads, int repeat, int warmup = 2)
    {
        var models = qatPath is null ? new[] { ("float", floatPath) } : [("float", floatPath), ("qat", qatPath)];
        var disposables = new List<IDisposable>();
        try
        {
            var contestants = new List<Func<double>>();
            foreach (var (_, path) in models)
            {
                var session = StageModels.Session(StageModels.Load(path), new SessionOptions { Threads = threads }, path);
                var ort = new OrtRunner(path, OrtOptimization.All, threads);
                disposables.Add(ort);
                var bound = ort.BindForTiming(inputs);
                disposables.Add(bound);
                contestants.Add(() => TimeEngine(session, inputs));
                contestants.Add(bound.Once);
            }
            var times = LatencyRounds.Measure(contestants, repeat, warmup);
            var results = models.Select((m, i) => new ModelLatency(m.Item1, m.Item2, times[2 * i], times[2 * i + 1])).ToArray();
            return new BenchResult(results[0], results.Length > 1 ? results[1] : null, threads, repeat, Math.Min(LatencyRounds.DefaultRounds, repeat),
                OrtRunner.Version, inputs.ToDictionary(kv => kv.Key, kv => kv.Value.Shape.ToArray(), StringComparer.Ordinal));
        }
        finally
        {
            for (int i = disposables.Count - 1; i >= 0; i--) disposables[i].Dispose();
        }
    }

    /// <summary>One engine run; its wall time in milliseconds (the engine side of every same-run comparison).</summary>
    public static double TimeEngine(InferenceSession session, IReadOnlyDictionary<string, Tensor> inputs)
    {
        long t0 = Stopwatch.GetTimestamp();
        session.Run(inputs);
        return Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
    }
}
