using Quant.Engine;
using Quant.Onnx;
using Quant.Runtime;

namespace Quant.Core.Tests.Compile;

/// <summary>
/// A compiled model runs its values at the memory plan's offsets in one arena: the outputs stay bit-exact, the
/// peak is the plan's arena plus what stays in the buffer pool, and the outputs the caller gets are their own copies.
/// </summary>
public class ArenaRunTests(CompiledModels models) : IClassFixture<CompiledModels>
{
    [Theory]
    [InlineData("rec")]
    [InlineData("det")]
    public void A_compiled_quantized_model_runs_in_its_planned_arena_with_the_plans_peak(string model)
    {
        var (qbm, _) = models.Compiled(model, "quantized");
        var feeds = new Dictionary<string, Tensor> { ["x"] = CompiledModels.Input(model) };
        var source = new InferenceSession(OnnxModelReader.Load(models.Quantized(model)));
        var expected = source.Run(feeds);

        var compiled = QbmModel.Load(qbm);
        // Every value but those a float kernel (Resize, float Add/Mul/...) produces or reads is in the arena: rec keeps
        // 27 such values of 235 once its elementwise chains are folded into tables.
        int planned = compiled.File.MemoryPlan.Placements.Count;
        Assert.InRange(compiled.ArenaValueCount, planned * 4 / 5, planned);
        var first = compiled.Run(feeds);
        var second = compiled.Run(feeds);
        foreach (var (name, e) in expected)
        {
            Assert.False(first[name].IsArenaView);
            Assert.True(e.Bytes().SequenceEqual(first[name].Bytes()), $"{model}: output '{name}' differs from the quantized model's");
            Assert.True(e.Bytes().SequenceEqual(second[name].Bytes()), $"{model}: the second run's output '{name}' differs");
        }
        // The peak is the arena plus the buffer pool's share: the few values float kernels (Resize, float Add/Mul...)
        // produce or read, and kernel scratch.
        Assert.InRange(compiled.LastRunPeakBytes, compiled.ArenaBytes, compiled.ArenaBytes * 3 / 2);
    }

    [Fact]
    public void Concurrent_runs_each_get_an_arena_and_the_same_outputs()
    {
        var (qbm, _) = models.Compiled("cls", "quantized");
        var compiled = QbmModel.Load(qbm, new QbmRunOptions { Threads = 1 });
        Assert.True(compiled.ArenaValueCount > 0);
        var feeds = new Dictionary<string, Tensor> { ["x"] = CompiledModels.Input("cls") };
        var expected = compiled.Run(feeds);
        var results = new IReadOnlyDictionary<string, Tensor>[8];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => results[i] = compiled.Run(feeds));
        foreach (var r in results)
            foreach (var (name, e) in expected)
                Assert.True(e.Bytes().SequenceEqual(r[name].Bytes()), $"a concurrent run's output '{name}' differs");
    }

    [Fact]
    public void Steady_runs_allocate_little_beyond_the_outputs_they_return()
    {
        var (qbm, _) = models.Compiled("cls", "quantized");
        var compiled = QbmModel.Load(qbm, new QbmRunOptions { Threads = 1 });
        var feeds = new Dictionary<string, Tensor> { ["x"] = CompiledModels.Input("cls") };
        for (int i = 0; i < 3; i++) compiled.Run(feeds);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var outputs = compiled.Run(feeds);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        long outputBytes = outputs.Values.Sum(t => (long)t.Bytes().Length);
        // The values themselves live in the arena; what remains is per-op bookkeeping and kernel temporaries.
        Assert.True(allocated < outputBytes + compiled.ArenaBytes / 4, $"{allocated} bytes allocated for {outputBytes} output bytes (arena {compiled.ArenaBytes})");
    }
}
