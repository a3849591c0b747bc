using Quant.Core.DeploymentRuntime;
using Quant.Engine;

namespace Quant.TestSupport;

/// <summary>
/// ONNX Runtime as the tests' reference: the toolchain's own <see cref="OrtRunner"/> (ONNX Runtime 1.32 in process),
/// one fresh session per call so each test states the thread count and optimization level it judges against.
/// </summary>
public static class OrtOracle
{
    /// <summary>The outputs of one run, and the latencies of <c>repeat</c> timed runs (none unless asked for).</summary>
    public sealed record Result(IReadOnlyDictionary<string, Tensor> Outputs, IReadOnlyList<double> LatenciesMs)
    {
        public double MedianMs => LatenciesMs.Count == 0 ? double.NaN : LatenciesMs.Order().ElementAt((LatenciesMs.Count - 1) / 2);
        public double MinMs => LatenciesMs.Count == 0 ? double.NaN : LatenciesMs.Min();
    }

    /// <param name="optimization"><see cref="OrtOptimization.Disabled"/> is ORT's plain kernels (the reference mode).</param>
    /// <param name="repeat">Timed runs after the one that gives the outputs, each preceded by <paramref name="warmup"/> untimed ones.</param>
    public static Result Run(string model, IReadOnlyDictionary<string, Tensor> inputs, int threads = 1, int repeat = 0, int warmup = 0, OrtOptimization optimization = OrtOptimization.All)
    {
        using var ort = new OrtRunner(model, optimization, threads);
        var outputs = ort.Run(inputs);
        var latencies = new List<double>(repeat);
        if (repeat > 0)
        {
            using var timed = ort.BindForTiming(inputs);
            for (int i = 0; i < warmup; i++) timed.Once();
            for (int i = 0; i < repeat; i++) latencies.Add(timed.Once());
        }
        return new Result(outputs, latencies);
    }
}
