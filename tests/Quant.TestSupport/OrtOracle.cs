using System.Text.Json;
using Quant.Engine;

namespace Quant.TestSupport;

/// <summary>ONNX Runtime 1.30 (onnxruntime-node) run out of process through tests/oracle/ort-run.js.</summary>
public static class OrtOracle
{
    public sealed record Result(IReadOnlyDictionary<string, Tensor> Outputs, double MedianMs, double MinMs, IReadOnlyList<double> LatenciesMs);

    public static Result Run(string model, IReadOnlyDictionary<string, Tensor> inputs, int threads = 1, int repeat = 1, int warmup = 0, string optimization = "all")
    {
        var dir = TestAssets.TempDir("ort");
        try
        {
            var args = new List<string> { Path.Combine(TestAssets.RepoRoot, "tests", "oracle", "ort-run.js"), "--model", model, "--out", Path.Combine(dir, "out"),
                "--threads", threads.ToString(), "--repeat", repeat.ToString(), "--warmup", warmup.ToString(), "--optimization", optimization };
            foreach (var (name, t) in inputs)
            {
                var file = Path.Combine(dir, $"in{args.Count}.npy");
                Npy.Write(file, t);
                args.Add($"{name}={file}");
            }
            var (code, stdout, stderr) = TestAssets.Run("node", args, TimeSpan.FromMinutes(10),
                new Dictionary<string, string> { ["QUANT_ORT_NODE_MODULES"] = TestAssets.OrtNodeModules });
            if (code != 0) throw new InvalidOperationException($"ONNX Runtime failed on {model}: {stderr}");
            using var doc = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
            var outputs = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.GetProperty("outputs").EnumerateObject())
                outputs[p.Name] = Npy.Read(p.Value.GetString()!);
            var latencies = doc.RootElement.GetProperty("latency_ms").EnumerateArray().Select(e => e.GetDouble()).ToList();
            return new Result(outputs, doc.RootElement.GetProperty("median_ms").GetDouble(), doc.RootElement.GetProperty("min_ms").GetDouble(), latencies);
        }
        finally
        {
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }
}
