using Quant.Core.Analysis;
using Quant.Core.Analysis.Compare;
using Quant.Core.Passes;
using Quant.Core.Stages;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Analysis.Compare;

/// <summary>The real cls model exported once under <c>preset: performance</c>, for the compare tests.</summary>
public sealed class ClsExport
{
    public string Dir { get; } = TestAssets.TempDir("compare-cls");
    public string Normalized { get; }
    public string Raw { get; }
    public string Qat { get; }

    public ClsExport()
    {
        var data = $"  x:\n    data: \"{Path.Combine(TestAssets.Data("ppocr-cls"), "cls_*.npy").Replace('\\', '/')}\"\n";
        Normalized = Path.Combine(Dir, "cls.yaml");
        File.WriteAllText(Normalized, "preset: performance\ninputs:\n" + data + "    scale: 1/255\n    mean: 0.5\n    std: 0.5\n");
        // The same files without preprocessing: the model is fed raw 0..255 pixels.
        Raw = Path.Combine(Dir, "raw.yaml");
        File.WriteAllText(Raw, "inputs:\n" + data);
        Qat = ExportStage.Run(new ExportRequest { ModelPath = TestAssets.ClsModel, ConfigPath = Normalized, OutputDirectory = Dir, Name = "cls", SelectionSamples = 2 }).QatModelPath;
    }

    public CompareResult Compare(string config, string name, int samples = 2, string? quantized = null, string? compiled = null) => LayerCompare.Run(new CompareRequest
    {
        FloatModelPath = TestAssets.ClsModel, QatModelPath = Qat, QuantizedModelPath = quantized, CompiledModelPath = compiled,
        ConfigPath = config, Samples = samples, OutputDirectory = Path.Combine(Dir, name), Name = "cls",
    });
}

/// <summary>compare on the real cls model: matching, metrics against a direct computation, the input flag, determinism.</summary>
public class CompareRealModelTests(ClsExport cls) : IClassFixture<ClsExport>
{
    [Fact]
    public void Every_float_value_the_float_run_produces_is_matched_to_what_the_qat_model_reads()
    {
        var r = cls.Compare(cls.Normalized, "match");
        // Independently: the float values a run of the prepared float model produces (inputs and node outputs, constants
        // folded away), each of which the qat model, exported from that prepared model, must also hold.
        var prepared = GraphPreparation.Prepare(OnnxModelReader.Load(TestAssets.ClsModel)).Model;
        var produced = new List<string>();
        new InferenceSession(prepared).Run(new Dictionary<string, Tensor> { ["x"] = OcrSamples.Cls(OcrSamples.ClsFiles[0]) },
            new RunOptions { Observer = new Names(produced) });
        Assert.Equal(produced, r.Tensors.Select(t => t.Tensor));
        Assert.Empty(r.Unmatched);
        Assert.True(produced.Count > 50, $"{produced.Count} values");

        // Quantized tensors are read through the qat model's DequantizeLinear of a QuantizeLinear that reads the tensor.
        var qat = OnnxModelReader.Load(cls.Qat).Graph;
        var producers = qat.Producers();
        var quantized = r.Tensors.Where(t => t.QType is Core.Config.QType.Int8).ToList();
        Assert.True(quantized.Count > 30, $"{quantized.Count} int8 tensors");
        foreach (var t in quantized)
        {
            var dq = producers[t.Qat];
            Assert.Equal("DequantizeLinear", dq.OpType);
            var q = producers[dq.Inputs[0]];
            Assert.Equal("QuantizeLinear", q.OpType);
            Assert.Equal(t.Scale, qat.Initializers[q.Inputs[1]].As<float>()[0]);
            Assert.True(q.Inputs[0] == t.Tensor || (qat.Outputs.Any(o => o.Name == t.Tensor) && t.Qat == t.Tensor), $"{t.Tensor}: Q reads {q.Inputs[0]}");
        }
    }

    [Fact]
    public void Metrics_and_clipping_equal_a_direct_computation_on_the_models_values()
    {
        var r = cls.Compare(cls.Normalized, "direct", samples: 1);
        var input = new Dictionary<string, Tensor> { ["x"] = OcrSamples.Cls(OcrSamples.ClsFiles[0]) };
        var floatValues = new ValueCache();
        var qatValues = new ValueCache();
        new InferenceSession(GraphPreparation.Prepare(OnnxModelReader.Load(TestAssets.ClsModel)).Model).Run(input, new RunOptions { KeepValues = floatValues });
        new InferenceSession(OnnxModelReader.Load(cls.Qat)).Run(input, new RunOptions { KeepValues = qatValues });

        var conv = r.Tensors.Select((t, i) => (t, i)).First(x => x.t.OpType == "Conv" && x.t.QType is Core.Config.QType.Int8);
        var add = r.Tensors.Select((t, i) => (t, i)).Last(x => x.t.OpType is "Add" or "Concat" or "Mul" && x.t.QType is Core.Config.QType.Int8);
        foreach (var (t, i) in new[] { conv, add })
        {
            var reference = floatValues[t.Tensor];
            var actual = qatValues[t.Qat];
            var direct = Similarity.Of(actual, reference);
            Assert.Equal(direct.Cosine, r.Results[i].Similarity.Cosine);
            Assert.Equal(direct.Sqnr, r.Results[i].Similarity.Sqnr);
            var f = reference.ReadOnlySpan<float>().ToArray();
            Assert.Equal(f.Min(), r.Results[i].Reference.Min);
            Assert.Equal(f.Max(), r.Results[i].Reference.Max);
            Assert.Equal(f.Average(x => (double)x), r.Results[i].Reference.Mean, 9);
            var a = actual.ReadOnlySpan<float>().ToArray();
            Assert.Equal(a.Max(), r.Results[i].Qat.Actual.Max);
            // Clipped: float values beyond the int8 range at the Q node's scale (what QuantizeLinear saturates).
            float s = t.Scale!.Value;
            int clipped = f.Count(x => Math.Round(x / s, MidpointRounding.ToEven) + t.ZeroPoint is < -128 or > 127);
            Assert.Equal((double)clipped / f.Length, r.Results[i].Clipped);
            // The tensor quantized alone: x against (clamp(round(x / s) + zp) - zp) · s.
            double signal = 0, noise = 0;
            foreach (var x in f)
            {
                float dq = (Math.Clamp(MathF.Round(x / s, MidpointRounding.ToEven) + t.ZeroPoint, -128, 127) - t.ZeroPoint) * s;
                signal += (double)x * x;
                noise += ((double)x - dq) * ((double)x - dq);
            }
            Assert.Equal(10 * Math.Log10(signal / noise), r.Results[i].Quantization!.Sqnr, 12);
        }
    }

    [Fact]
    public void Raw_0_to_255_input_is_flagged_as_not_normalized_and_the_normalized_input_is_not()
    {
        var raw = cls.Compare(cls.Raw, "raw", samples: 1);
        var f = Assert.Single(raw.Findings, f => f.Flag == "input_not_normalized");
        Assert.Equal("x", f.Tensor);
        Assert.Contains("scale", f.Message);
        Assert.Contains("input_not_normalized", raw.Flags[0]);
        Assert.True(raw.Results[0].Reference.Max > 200);
        // At the scale calibrated for [-1, 1] nearly every raw pixel is clipped: the share equals a count over the file's bytes.
        var x = raw.Tensors[0];
        var pixels = Npy.Read(TestAssets.Data("ppocr-cls", OcrSamples.ClsFiles[0])).ReadOnlySpan<byte>().ToArray();
        int clipped = pixels.Count(p => MathF.Round(p / x.Scale!.Value, MidpointRounding.ToEven) + x.ZeroPoint is < -128 or > 127);
        Assert.Equal((double)clipped / pixels.Length, raw.Results[0].Clipped);
        Assert.True(raw.Results[0].Clipped > 0.5, $"{raw.Results[0].Clipped}");
        Assert.Contains("insufficient_resolution", raw.Flags[0]);

        var normalized = cls.Compare(cls.Normalized, "normalized", samples: 1);
        Assert.DoesNotContain(normalized.Findings, f => f.Flag == "input_not_normalized");
        Assert.True(normalized.Results[0].Reference.AbsMax <= 1);
    }

    [Fact]
    public void The_same_inputs_give_the_same_json_and_text_bytes()
    {
        var a = cls.Compare(cls.Normalized, "det-a");
        var b = cls.Compare(cls.Normalized, "det-b");
        Assert.Equal(File.ReadAllBytes(a.JsonPath), File.ReadAllBytes(b.JsonPath));
        Assert.Equal(File.ReadAllBytes(a.TextPath), File.ReadAllBytes(b.TextPath));
        var json = File.ReadAllText(a.JsonPath);
        Assert.Contains("\"format\": \"quant-compare/1\"", json);
        Assert.DoesNotContain(cls.Dir, json);
    }

    [Fact]
    public void The_quantized_and_compiled_models_are_matched_and_agree_with_each_other_bit_for_bit()
    {
        var quantized = Path.Combine(cls.Dir, "cls.quantized.onnx");
        var qbm = Path.Combine(cls.Dir, "cls.qbm");
        Core.Conversion.ConvertStage.Run(cls.Qat, quantized);
        Core.Compilation.CompileStage.Run(quantized, qbm);
        var r = cls.Compare(cls.Normalized, "later", samples: 1, quantized: quantized, compiled: qbm);
        var both = Enumerable.Range(0, r.Tensors.Count).Where(i => r.Results[i].Later.ContainsKey(CompareStage.Quantized)).ToList();
        Assert.True(both.Count > r.Tensors.Count / 2, $"{both.Count} of {r.Tensors.Count} matched in the quantized model");
        foreach (var i in both)
        {
            var q = r.Results[i].Later[CompareStage.Quantized];
            var c = r.Results[i].Later[CompareStage.Compiled];
            Assert.Equal(q.Similarity.Cosine, c.Similarity.Cosine);
            Assert.Equal(q.Actual.Max, c.Actual.Max);
        }
        // The integer model computes what the qat model does up to requantization rounding: close to it everywhere.
        var output = r.Tensors.ToList().FindIndex(t => t.Tensor == "softmax_0.tmp_0");
        Assert.True(r.Results[output].Later[CompareStage.Quantized].Similarity.Cosine > 0.99);
    }

    [Fact]
    public void Int16_and_error_compensated_tensors_are_matched_through_their_renamed_values()
    {
        // One Conv reads its input at int16 (t_q16 -> t_dq16); another splits its weight (ec: NODE_split_low, an Add
        // writing the original output). Each float tensor still has one row, read where its consumers read it.
        var prepared = GraphPreparation.Prepare(OnnxModelReader.Load(TestAssets.ClsModel)).Model.Graph;
        var consumers = prepared.Consumers();
        var convs = prepared.TopologicalOrder().Where(n => n.OpType == "Conv").ToList();
        var wide = convs.First(n => n.Inputs[0] != "x" && consumers[n.Inputs[0]].Count == 1);
        var split = convs.Last(n => n != wide);
        var dir = TestAssets.TempDir("compare-cls-mixed");
        var cfg = Path.Combine(dir, "mixed.yaml");
        File.WriteAllText(cfg, File.ReadAllText(cls.Normalized) + $"node_config:\n  {wide.Name}: {{qtype: int16}}\n  {split.Name}: {{input1: ec}}\n");
        var qat = ExportStage.Run(new ExportRequest { ModelPath = TestAssets.ClsModel, ConfigPath = cfg, OutputDirectory = dir, Name = "cls", SelectionSamples = 2 }).QatModelPath;
        var r = LayerCompare.Run(new CompareRequest { FloatModelPath = TestAssets.ClsModel, QatModelPath = qat, ConfigPath = cfg, Samples = 1, OutputDirectory = dir, Name = "cls" });

        var qg = OnnxModelReader.Load(qat).Graph;
        var producers = qg.Producers();
        var input16 = r.Tensors.Single(t => t.Tensor == wide.Inputs[0]);
        Assert.Equal(Core.Config.QType.Int16, input16.QType);
        Assert.Equal(wide.Inputs[0] + "_dq16", input16.Qat);
        Assert.Equal(ElementType.Int16, qg.Initializers[producers[producers[input16.Qat].Inputs[0]].Inputs[2]].Type);
        Assert.Contains(input16.Readers, rd => rd.Node == wide.Name && rd.Input == 0);

        Assert.Contains(qg.Nodes, n => n.Outputs.Contains(split.Outputs[0] + "_split_low"));
        var compensated = r.Tensors.Single(t => t.Tensor == split.Outputs[0]);
        Assert.Equal("Add", producers[split.Outputs[0]].OpType);
        Assert.DoesNotContain(r.Tensors, t => t.Tensor.Contains("_split_", StringComparison.Ordinal));
        int at = r.Tensors.ToList().IndexOf(compensated);
        Assert.True(r.Results[at].Similarity.Cosine > 0.9, $"{r.Results[at].Similarity.Cosine}");
        Assert.Empty(r.Unmatched);
    }

    private sealed class Names(List<string> names) : IValueObserver
    {
        public Tensor? OnValue(in ObservedValue value)
        {
            if (value.Value.Type == ElementType.Float) names.Add(value.Name);
            return null;
        }
    }
}
