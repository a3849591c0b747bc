using Quant.Engine;
using Quant.Runtime;

namespace Quant.Core.Tests.Compile;

/// <summary>Quant.Runtime's run options: the thread count and per-op timings, on the real compiled int8 cls model.</summary>
public class QbmRunOptionsTests(CompiledModels models) : IClassFixture<CompiledModels>
{
    [Fact]
    public void The_compiled_int8_model_computes_the_same_bytes_at_1_and_2_threads()
    {
        var (qbm, _) = models.Compiled("cls", "quantized");
        var feeds = new Dictionary<string, Tensor> { ["x"] = CompiledModels.Input("cls") };
        var one = QbmModel.Load(qbm, new QbmRunOptions { Threads = 1 });
        var two = QbmModel.Load(qbm, new QbmRunOptions { Threads = 2 });
        Assert.Equal(1, one.Options.Threads);
        Assert.Equal(2, two.Options.Threads);
        Assert.Contains(one.File.Ops, op => op.Domain == "quant.build");
        var a = one.Run(feeds);
        var b = two.Run(feeds);
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (name, t) in a)
        {
            Assert.Equal(t.Shape, b[name].Shape);
            Assert.True(t.Bytes().SequenceEqual(b[name].Bytes()), $"output '{name}' differs between 1 and 2 threads");
        }
    }

    [Fact]
    public void Timings_cover_every_op_of_the_program_and_accumulate_over_runs()
    {
        var (qbm, _) = models.Compiled("cls", "quantized");
        var feeds = new Dictionary<string, Tensor> { ["x"] = CompiledModels.Input("cls") };
        var model = QbmModel.Load(qbm, new QbmRunOptions { Threads = 1 });
        var timings = new NodeTimings();
        model.Run(feeds, timings);
        model.Run(feeds, timings);
        var timed = timings.ByNode();
        Assert.All(timed, t => Assert.Equal(2, t.Calls));
        // Each op is timed on its own or inside the one fused float elementwise pass the engine made of its chain.
        var names = timed.SelectMany(t => t.Node.Name.StartsWith("fused[", StringComparison.Ordinal)
            ? t.Node.Name[6..^1].Split(',') : [t.Node.Name]).ToHashSet(StringComparer.Ordinal);
        Assert.All(model.File.Ops, op => Assert.Contains(op.Name, names));
        Assert.True(timed.Sum(t => t.Milliseconds) > 0);
    }

    [Fact]
    public void A_thread_count_below_1_is_refused()
    {
        var (qbm, _) = models.Compiled("cls", "quantized");
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => QbmModel.Load(qbm, new QbmRunOptions { Threads = 0 }));
        Assert.Contains("Threads must be at least 1", e.Message);
    }
}
