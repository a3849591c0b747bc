using System.Text.Json;
using Quant.Core.Compilation;
using Quant.Engine;
using Quant.Onnx;
using Quant.Runtime;
using Quant.TestSupport;

namespace Quant.Core.Tests.Compile;

public class CompileStageTests(CompiledModels models) : IClassFixture<CompiledModels>
{
    [Theory]
    [InlineData("cls", "float")]
    [InlineData("cls", "qat")]
    [InlineData("rec", "float")]
    [InlineData("rec", "qat")]
    [InlineData("det", "float")]
    [InlineData("det", "qat")]
    public void A_compiled_model_computes_exactly_what_the_engine_computes_for_its_source(string model, string kind)
    {
        var (qbm, summary) = models.Compiled(model, kind);
        var input = CompiledModels.Input(model);
        var expected = new InferenceSession(OnnxModelReader.Load(models.Source(model, kind))).Run(new Dictionary<string, Tensor> { ["x"] = input });
        var compiled = QbmModel.Load(qbm);
        var actual = compiled.Run(new Dictionary<string, Tensor> { ["x"] = input });

        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, e) in expected)
        {
            Assert.Equal(e.Shape, actual[name].Shape);
            Assert.True(e.Bytes().SequenceEqual(actual[name].Bytes()), $"{model} {kind}: output '{name}' differs from the engine's");
        }
        Assert.Equal(summary.ArenaBytes, compiled.ArenaBytes);
        Assert.True(summary.ArenaBytes > 0 && summary.EstimatedMilliseconds > 0);
        Assert.Equal(new FileInfo(qbm).Length, summary.QbmBytes);
    }

    [Theory]
    [InlineData("cls", "float")]
    [InlineData("rec", "qat")]
    public void The_same_model_compiles_to_the_same_bytes(string model, string kind)
    {
        var (first, _) = models.Compiled(model, kind);
        var again = Path.Combine(TestAssets.TempDir("compile-again"), "again.qbm");
        CompileStage.Run(models.Source(model, kind), again);
        Assert.Equal(File.ReadAllBytes(first), File.ReadAllBytes(again));
        Assert.Equal(File.ReadAllText(CompileStage.ReportPath(first)).Replace(Path.GetFileName(first), "X"),
            File.ReadAllText(CompileStage.ReportPath(again)).Replace("again.qbm", "X"));
    }

    [Fact]
    public void Inputs_of_other_shapes_than_the_planned_ones_run_exactly_as_in_the_engine()
    {
        var input = OcrSamples.Det(OcrSamples.DetFiles[1], 320, 480);
        var feeds = new Dictionary<string, Tensor> { ["x"] = input };
        var expected = new InferenceSession(OnnxModelReader.Load(TestAssets.DetModel)).Run(feeds);
        var actual = QbmModel.Load(models.Compiled("det", "float").Qbm).Run(feeds);
        foreach (var (name, e) in expected)
        {
            Assert.Equal([1, 1, 320, 480], e.Shape);
            Assert.True(e.Bytes().SequenceEqual(actual[name].Bytes()), $"output '{name}' differs from the engine's");
        }
    }

    [Fact]
    public void The_memory_plan_reuses_memory_and_the_report_states_it()
    {
        var (qbm, summary) = models.Compiled("det", "float");
        var file = QbmModel.Load(qbm).File;
        long withoutReuse = file.MemoryPlan.Placements.Sum(p => p.Bytes);
        long largest = file.MemoryPlan.Placements.Max(p => p.Bytes);
        Assert.InRange(summary.ArenaBytes, largest, withoutReuse / 4);

        using var report = JsonDocument.Parse(File.ReadAllText(summary.ReportPath));
        var plan = report.RootElement.GetProperty("memory_plan");
        Assert.Equal(summary.ArenaBytes, plan.GetProperty("peak_arena_bytes").GetInt64());
        Assert.Equal(withoutReuse, plan.GetProperty("bytes_without_reuse").GetInt64());
        Assert.Equal([1, 3, 640, 640], report.RootElement.GetProperty("planned_input_shapes").GetProperty("x").EnumerateArray().Select(e => e.GetInt32()));
        var ops = report.RootElement.GetProperty("ops");
        Assert.Equal(file.Ops.Count, ops.GetArrayLength());
        Assert.Equal(summary.EstimatedMilliseconds, ops.EnumerateArray().Sum(o => o.GetProperty("us").GetDouble()) / 1000, 1);
    }

    [Fact]
    public void Conv_macs_follow_from_the_planned_shapes()
    {
        // det's first conv: 3x3 stride 2 over [1,3,640,640] → [1,C,320,320]; MACs = outputs · 3·3·3.
        var file = QbmModel.Load(models.Compiled("det", "float").Qbm).File;
        int first = file.Ops.ToList().FindIndex(o => o.OpType == "Conv");
        var outDims = file.Values[file.Ops[first].Outputs[0]].Dims;
        Assert.Equal(new long[] { 1, outDims[1], 320, 320 }, outDims);
        Assert.Equal(outDims[1] * 320 * 320 * 27, file.Cost.Ops[first].Macs);
        Assert.Equal(ElementType.Float, file.Cost.Ops[first].MacType);
    }
}
