using System.Text.Json;
using Quant.Core.Analysis.Compare;
using Quant.Core.Stages;
using Quant.TestSupport;

namespace Quant.Core.Tests.Analysis.Compare;

/// <summary>
/// compare on the small fixture models of tests/data/compare (written by make_fixtures.py): the first NaN producer,
/// a float16 overflow, a Concat of inputs 200× apart. Their qat models are made by our own export in the test.
/// </summary>
public class CompareFixtureTests
{
    private static string Fixture(params string[] parts) => TestAssets.Data(["compare", .. parts]);
    private static string Glob(string folder) => Path.Combine(Fixture(folder), "*.npy").Replace('\\', '/');

    /// <summary>Exports <paramref name="model"/> with <paramref name="yaml"/> and compares float and qat on <paramref name="data"/> (the config's data when null).</summary>
    /// <param name="later">Also convert and compile the qat model and compare those too.</param>
    private static (CompareResult Result, JsonElement Json) ExportAndCompare(string model, string yaml, string? data = null, bool later = false)
    {
        var dir = TestAssets.TempDir("compare-fixture");
        var cfg = Path.Combine(dir, "q.yaml");
        File.WriteAllText(cfg, yaml);
        var export = ExportStage.Run(new ExportRequest { ModelPath = model, ConfigPath = cfg, OutputDirectory = dir, Name = "m", Threads = 1 });
        string? quantized = null, compiled = null;
        if (later)
        {
            Core.Conversion.ConvertStage.Run(export.QatModelPath, quantized = Path.Combine(dir, "m.quantized.onnx"));
            Core.Compilation.CompileStage.Run(quantized, compiled = Path.Combine(dir, "m.qbm"));
        }
        var result = LayerCompare.Run(new CompareRequest
        {
            FloatModelPath = model, QatModelPath = export.QatModelPath, QuantizedModelPath = quantized, CompiledModelPath = compiled,
            ConfigPath = cfg, Data = data is null ? null : [data], OutputDirectory = dir, Name = "m", Threads = 1,
        });
        return (result, JsonDocument.Parse(File.ReadAllText(result.JsonPath)).RootElement.Clone());
    }

    [Fact]
    public void The_Log_that_sees_a_negative_value_is_the_first_nonfinite_producer_in_float_and_qat()
    {
        // Calibrated on x >= 0.6 (all finite); the probe sample has x = 0.1, so Sub(0.5) gives -0.4 and Log makes NaN.
        var (r, json) = ExportAndCompare(Fixture("log_negative.onnx"), $"inputs:\n  x:\n    data: \"{Glob("calib")}\"\n", Glob("probe"));

        var first = json.GetProperty("first_nonfinite");
        Assert.Equal("float", first.GetProperty("stage").GetString());
        Assert.Equal("Log_1", first.GetProperty("node").GetString());
        Assert.Equal("logged", first.GetProperty("tensor").GetString());
        Assert.Equal("nan", first.GetProperty("kind").GetString());
        // The qat model makes it at the same node (its Mul after the Log only passes it on).
        var qat = r.NonFinite.Single(o => o.Stage == CompareStage.Qat);
        Assert.Equal(("Log_1", "Log"), (qat.Node, qat.OpType));
        var logged = json.GetProperty("tensors").EnumerateArray().Single(t => t.GetProperty("tensor").GetString() == "logged");
        Assert.Contains("nonfinite", logged.GetProperty("flags").EnumerateArray().Select(f => f.GetString()));
        var y = json.GetProperty("tensors").EnumerateArray().Single(t => t.GetProperty("tensor").GetString() == "y");
        Assert.DoesNotContain("nonfinite", y.GetProperty("flags").EnumerateArray().Select(f => f.GetString()));
        Assert.Contains(r.Findings, f => f.Flag == "nonfinite" && f.Node == "Log_1");
    }

    [Fact]
    public void A_tensor_beyond_65504_in_a_float16_region_is_flagged_and_the_same_model_in_int8_is_not()
    {
        const string Data = "inputs:\n  x:\n    data: \"{0}\"\n";
        var yaml = string.Format(Data, Glob("unit"));
        var (r, json) = ExportAndCompare(Fixture("fp16_overflow.onnx"), yaml + "node_config:\n  Mul_big: {qtype: float16}\n", later: true);

        var big = json.GetProperty("tensors").EnumerateArray().Single(t => t.GetProperty("tensor").GetString() == "big");
        Assert.Equal("float16", big.GetProperty("qtype").GetString());
        Assert.True(big.GetProperty("reference").GetProperty("max").GetDouble() > 65504);
        Assert.Contains("float16_overflow", big.GetProperty("flags").EnumerateArray().Select(f => f.GetString()));
        var finding = r.Findings.Single(f => f.Flag == "float16_overflow");
        Assert.Equal("big", finding.Tensor);
        Assert.Contains("Mul_big", finding.Message);
        // The qat model's Cast to float16 is where the infinity appears; the float model stays finite.
        var first = json.GetProperty("first_nonfinite");
        Assert.Equal("qat", first.GetProperty("stage").GetString());
        Assert.Equal("Cast", first.GetProperty("op_type").GetString());
        Assert.Equal("inf", first.GetProperty("kind").GetString());
        Assert.DoesNotContain(r.NonFinite, o => o.Stage == CompareStage.Float);
        // The integer model keeps that float16 round trip (a float island), and so does the compiled program: same place.
        foreach (var stage in new[] { CompareStage.Qat, CompareStage.Quantized, CompareStage.Compiled })
        {
            var o = r.NonFinite.Single(o => o.Stage == stage);
            Assert.Equal(("Cast", "inf"), (o.OpType, o.Kind));
            Assert.Equal(first.GetProperty("node").GetString(), o.Node);
        }
        // Only 'big' goes beyond 65504: 'scaled' is in the region too (Mul_big reads it as float16) but stays below.
        Assert.Single(r.Findings, f => f.Flag == "float16_overflow");

        var (plain, _) = ExportAndCompare(Fixture("fp16_overflow.onnx"), yaml);
        Assert.DoesNotContain(plain.Findings, f => f.Flag is "float16_overflow" or "nonfinite");
    }

    [Fact]
    public void A_Concat_of_inputs_200_times_apart_is_a_range_mismatch()
    {
        var (r, _) = ExportAndCompare(Fixture("concat_ranges.onnx"), $"inputs:\n  x:\n    data: \"{Glob("unit")}\"\n");
        var f = Assert.Single(r.Findings, f => f.Flag == "range_mismatch");
        Assert.Equal("Concat_3", f.Node);
        Assert.Contains("'large_relu'", f.Message);
        Assert.Contains("'small'", f.Message);
        Assert.Contains("node_config: {Concat_3: {qtype: int16}}", f.Message);
        // The ratio is the float inputs' max |x|, measured directly: 200 · max(x) over max(x).
        int large = r.Tensors.ToList().FindIndex(t => t.Tensor == "large_relu"), small = r.Tensors.ToList().FindIndex(t => t.Tensor == "small");
        Assert.Equal(200, r.Results[large].Reference.AbsMax / r.Results[small].Reference.AbsMax, 3);
    }
}
