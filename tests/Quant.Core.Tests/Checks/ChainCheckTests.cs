using Quant.Core.Analysis;
using Quant.Core.Checks;
using Quant.Core.Compilation;
using Quant.Core.Config;
using Quant.Core.Conversion;
using Quant.Core.Diagnostics;
using Quant.Core.Stages;
using Quant.Engine;
using Quant.Onnx;
using Quant.Runtime;
using Quant.TestSupport;

namespace Quant.Core.Tests.Checks;

/// <summary>The real cls chain: the int8 export, converted and compiled.</summary>
public sealed class ClsChain
{
    public ClsExport Export { get; } = new();
    public string Quantized { get; }
    public string Compiled { get; }

    public ClsChain()
    {
        var dir = Path.Combine(Export.Dir, "chain");
        Directory.CreateDirectory(dir);
        Quantized = Path.Combine(dir, "cls.quantized.onnx");
        Compiled = Path.Combine(dir, "cls.qbm");
        ConvertStage.Run(Export.Qat, Quantized);
        CompileStage.Run(Quantized, Compiled);

    }

    public CheckRequest Request(string config, string? quantized = null, string? compiled = null, IReadOnlyList<CheckStagePair>? stages = null) => new()
    {
        ModelPath = Export.Model, QatModelPath = Export.Qat, QuantizedModelPath = quantized ?? Quantized, CompiledModelPath = compiled ?? Compiled,
        ConfigPath = config, Name = "cls", Stages = stages, OutputDirectory = TestAssets.TempDir("chain-check"), StepSummaryPath = null,
    };
}

public class ChainCheckTests(ClsChain chain, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<ClsChain>
{
    private const string Loose = "checks:\n  loose:\n    cosine: {min: 0.5}\n";

    [Fact]
    public void By_default_the_check_measures_the_whole_chain_with_the_spec_default_bounds()
    {
        var result = CheckStage.Run(chain.Request(chain.Export.Config(Loose)));
        var m = result.Measurements;
        Assert.Equal([CheckStagePair.QatVsFloat, CheckStagePair.QuantizedVsQat, CheckStagePair.CompiledVsQuantized, CheckStagePair.RuntimeVsQat],
            m.Similarity.Keys.Order());

        // Sample 0 computed here without the stage: the quantized model and the qat model in the engine, the program in Quant.Runtime.
        var feeds = new Dictionary<string, Tensor> { ["x"] = OcrSamples.Cls(OcrSamples.ClsFiles[0]) };
        var qat = new InferenceSession(OnnxModelReader.Load(chain.Export.Qat)).Run(feeds);
        var quantized = new InferenceSession(OnnxModelReader.Load(chain.Quantized)).Run(feeds);
        var compiled = QbmModel.Load(chain.Compiled).Run(feeds);
        var o = ClsExport.Output;
        Assert.Equal(Similarity.Of(quantized[o], qat[o]).Cosine, m.Similarity[CheckStagePair.QuantizedVsQat].Samples(o)[0].Cosine, 12);
        Assert.True(compiled[o].Bytes().SequenceEqual(quantized[o].Bytes()), "Quant.Runtime and the engine agree bit for bit on sample 0");

        // quantized_vs_qat without a rule of its own: the bound from the qat model's last-bit floor, as for runtime_vs_qat.
        var floor = m.Stability.Single(s => s.Output == o);
        var (bound, stable) = RuntimeBound.For(floor);
        var q = Assert.Single(result.Outcomes, c => c.Kind == CheckKind.Default && c.Stage == CheckStagePair.QuantizedVsQat);
        Assert.Equal((bound, floor.MinCosine, stable ? DefaultBoundKind.Stable : DefaultBoundKind.Fragile), (q.Limit, q.NoiseFloor, q.DefaultBound));
        Assert.Equal(m.Similarity[CheckStagePair.QuantizedVsQat].Of(o, s => s.Cosine).Min, q.Value);
        Assert.True(q.Passed, q.Message);
        Assert.Contains(stable ? "the model is stable under last-bit noise" : "the model is fragile under last-bit noise", q.Message);

        // compiled_vs_quantized: bit-exact on every output and sample, whatever the rules say.
        var c = Assert.Single(result.Outcomes, x => x.Stage == CheckStagePair.CompiledVsQuantized);
        Assert.Equal((CheckKind.Default, DefaultBoundKind.BitExact, 0.0, true), (c.Kind, c.DefaultBound, c.Value, c.Passed));
        Assert.Equal(0, m.Exactness!.Of(o).DifferingElements);
        Assert.Equal(m.SampleCount, m.Exactness.Of(o).Samples);
        output.WriteLine(q.Message);
        output.WriteLine(c.Message);

        var json = File.ReadAllText(result.JsonPath);
        Assert.Contains("\"quantized_model\": \"cls.quantized.onnx\"", json);
        Assert.Contains("\"compiled_model\": \"cls.qbm\"", json);
        Assert.Contains("\"default_bound\": \"bit_exact\"", json);
        Assert.Contains($"\"default_bound\": \"{(stable ? "stable" : "fragile")}\"", json);
        Assert.Contains("| default (bit-exact) | compiled_vs_quantized |", File.ReadAllText(result.MarkdownPath));
        Assert.Contains("classname=\"cls.quantized_vs_qat\"", File.ReadAllText(result.JUnitPath));

        // A baseline covers the new pairs like the old ones.
        var baseline = CheckStage.BaselineOf(m);
        Assert.Contains("quantized_vs_qat", baseline.Stages.Keys);
        Assert.Contains("compiled_vs_quantized", baseline.Stages.Keys);
    }

    [Fact]
    public void A_quantized_vs_qat_rule_replaces_the_default_bound_and_fails_at_its_yaml_position()
    {
        // line 13: "    cosine: {min: 1.01}", the bound at column 19.
        var cfg = chain.Export.Config("checks:\n  integer:\n    stage: quantized_vs_qat\n    cosine: {min: 1.01}\n    l1: {max: 1}\n");
        var result = CheckStage.Run(chain.Request(cfg, stages: [CheckStagePair.QuantizedVsQat]));
        Assert.DoesNotContain(result.Outcomes, o => o.Kind == CheckKind.Default);
        var f = Assert.Single(result.Failures);
        Assert.Equal((ErrorCode.CheckFailed, ClsExport.ChecksLine + 3, 19), (f.Code, f.Position.Line, f.Position.Column));
        Assert.StartsWith($"cls: quantized_vs_qat output '{ClsExport.Output}' cosine min ", f.Message);
        Assert.Single(result.Outcomes, o => o.Passed && o.Metric == "l1");
    }
}

/// <summary>
/// compiled_vs_quantized's detection, on programs compiled from qat models (compile takes any graph the engine runs):
/// cls's softmax is saturated on the real samples (exactly 0 and 1 whatever the precision), so each model also
/// outputs the softmax's input, the logits, which are not. The program compiled from the int8 model must match it
/// bit for bit; the one compiled from the int16 export of the same model must not, and is reported as the bug it
/// would be.
/// </summary>
public class CompiledMismatchTests(ClsExport cls, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<ClsExport>
{
    private static string WithLogits(string qat, string path)
    {
        var model = OnnxModelReader.Load(qat);
        var softmax = model.Graph.Nodes.Single(n => n.OpType == "Softmax");
        // One name in both models (their tensor names differ), through an Identity.
        model.Graph.Nodes.Add(new Node("logits_out", "Identity", "", [softmax.Inputs[0]], ["logits"]));
        model.Graph.Outputs.Add(new ValueInfo("logits", ElementType.Float, null));
        OnnxModelWriter.Save(model, path);
        return path;
    }

    [Fact]
    public void A_program_that_does_not_match_its_reference_is_QB5008_saying_it_is_a_bug()
    {
        var dir = TestAssets.TempDir("compiled-mismatch");
        var int8 = WithLogits(cls.Qat, Path.Combine(dir, "int8.onnx"));
        var cfg16 = Path.Combine(dir, "int16.yaml");
        File.WriteAllText(cfg16, cls.Base.Replace("model_config:\n", "model_config:\n  all_node_type: int16\n"));
        var qat16 = ExportStage.Run(new ExportRequest { ModelPath = cls.Model, ConfigPath = cfg16, OutputDirectory = dir, Name = "cls16" }).QatModelPath;
        var int16 = WithLogits(qat16, Path.Combine(dir, "int16.onnx"));
        var (qbm8, qbm16) = (Path.Combine(dir, "int8.qbm"), Path.Combine(dir, "int16.qbm"));
        CompileStage.Run(int8, qbm8);
        CompileStage.Run(int16, qbm16);
        var cfg = cls.Config("checks:\n  loose:\n    cosine: {min: 0.5}\n");
        CheckResult Check(string qbm) => CheckStage.Run(new CheckRequest
        {
            ModelPath = cls.Model, QatModelPath = cls.Qat, QuantizedModelPath = int8, CompiledModelPath = qbm, ConfigPath = cfg, Name = "cls",
            Stages = [CheckStagePair.CompiledVsQuantized], OutputDirectory = TestAssets.TempDir("compiled-mismatch-out"), StepSummaryPath = null,
        });

        var same = Check(qbm8);
        Assert.True(same.Passed);
        Assert.Equal(2, same.Outcomes.Count(o => o.DefaultBound == DefaultBoundKind.BitExact && o.Value == 0)); // softmax and logits

        var other = Check(qbm16);
        var f = Assert.Single(other.Failures);
        Assert.Equal((ErrorCode.CheckCompiledNotBitExact, cfg, ClsExport.ChecksLine), (f.Code, f.Position.File, f.Position.Line));
        Assert.Equal("logits", f.Output); // the saturated softmax agrees
        var e = other.Measurements.Exactness!.Of(f.Output);
        Assert.Equal(f.Value, e.MaxAbsDiff);
        Assert.True(e.DifferingElements > 0 && e.MaxAbsDiff > 0);
        // Sample 0 computed here: the first differing element is where the runtime and the engine first disagree.
        var feeds = new Dictionary<string, Tensor> { ["x"] = OcrSamples.Cls(OcrSamples.ClsFiles[0]) };
        var a = QbmModel.Load(qbm16).Run(feeds)[f.Output].ReadOnlySpan<float>();
        var b = new InferenceSession(OnnxModelReader.Load(int8)).Run(feeds)[f.Output].ReadOnlySpan<float>();
        int first = 0;
        while (BitConverter.SingleToInt32Bits(a[first]) == BitConverter.SingleToInt32Bits(b[first])) first++;
        Assert.Equal((0, (long)first), (e.First!.Value.Sample, e.First.Value.Element));
        Assert.Contains("is not bit-exact", f.Message);
        Assert.Contains("this is a bug in compile or in Quant.Runtime", f.Message);
        Assert.Contains("\"default_bound\": \"bit_exact\"", File.ReadAllText(other.JsonPath));
        output.WriteLine(f.Diagnostic(asWarning: false));
    }
}

/// <summary>A pair whose model is not given is refused before anything runs (these need no convert or compile).</summary>
public class ChainCheckRequestTests(ClsExport cls) : IClassFixture<ClsExport>
{
    [Fact]
    public void A_pair_without_its_models_is_QB5006_at_the_rule_or_naming_the_option()
    {
        var cfg = cls.Config("checks:\n  r:\n    stage: compiled_vs_quantized\n    cosine: {min: 0.9}\n");
        var e = Assert.Throws<QuantException>(() => CheckStage.Run(new CheckRequest
        {
            ModelPath = cls.Model, QatModelPath = cls.Qat, QuantizedModelPath = cls.Qat, ConfigPath = cfg, Name = "cls",
            OutputDirectory = TestAssets.TempDir("chain-missing"), StepSummaryPath = null,
        }));
        Assert.Equal((ErrorCode.CheckStageUnavailable, ClsExport.ChecksLine + 2, 12), (e.Code, e.Where.Line, e.Where.Column));
        Assert.Contains("NAME.qbm (--compiled)", e.Message);

        var request = cls.Request(cls.Config("checks:\n  r:\n    cosine: {min: 0.9}\n"));
        e = Assert.Throws<QuantException>(() => CheckStage.Run(new CheckRequest
        {
            ModelPath = request.ModelPath, QatModelPath = request.QatModelPath, ConfigPath = request.ConfigPath, Name = "cls",
            OutputDirectory = request.OutputDirectory, StepSummaryPath = null, Stages = [CheckStagePair.QuantizedVsQat],
        }));
        Assert.Equal(ErrorCode.CheckStageUnavailable, e.Code);
        Assert.StartsWith("--stage quantized_vs_qat compares the convert stage's NAME.quantized.onnx (--quantized), which was not given", e.Message);
    }
}
