using Quant.Core.Analysis.Sensitivity;
using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Core.Precision;
using Quant.Core.Stages;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Analysis;

/// <summary>
/// Sensitivity on the real cls model and its committed samples: output selection, the three candidate types against
/// full exports of what they mean, determinism (also across thread counts), the threshold sweep against a full export
/// with the same promotions, and the positioned errors of bad options.
/// </summary>
public class SensitivityOptionsTests
{
    private static readonly CheckMetric[] Metrics = [CheckMetric.Cosine, CheckMetric.Mse, CheckMetric.Sqnr];

    /// <summary>cls with a second output (the tensor its final node reads), so that -o has something to leave out.</summary>
    private static string TwoOutputCls(string dir)
    {
        var model = OnnxModelReader.Load(TestAssets.ClsModel);
        var last = model.Graph.Nodes.First(n => n.Outputs.Contains(model.Graph.Outputs[0].Name));
        model.Graph.Outputs.Add(new ValueInfo(last.Inputs[0], ElementType.Float, null));
        var path = Path.Combine(dir, "cls2.onnx");
        OnnxModelWriter.Save(model, path);
        return path;
    }

    [Fact]
    public void Outputs_option_scores_only_the_named_outputs_with_the_same_values()
    {
        using var cls = SensitivityFixture.Cls("performance");
        var path = TwoOutputCls(cls.Dir);
        var (cal, q, _) = NodeSensitivity.Prepare(SensitivityFixture.Request(path, Path.Combine(cls.Dir, "q.yaml"), cls.Dir), null, default);
        var outputs = cal.Model.Graph.Outputs.Select(o => o.Name).ToList();
        Assert.Equal(2, outputs.Count);
        var nodes = SensitivityFixtureNodes(q.Plan, 3);
        var both = NodeSensitivity.Run(cal, q, new SensitivityOptions { Samples = 2, Nodes = nodes, Metrics = Metrics });
        var one = NodeSensitivity.Run(cal, q, new SensitivityOptions { Samples = 2, Nodes = nodes, Metrics = Metrics, Outputs = [outputs[1]] });
        Assert.Equal(outputs, both.Outputs);
        Assert.Equal([outputs[1]], one.Outputs);
        foreach (var c in one.Candidates)
        {
            var b = both.Candidates.Single(x => x.Name == c.Name);
            Assert.Equal(b.Of(outputs[1], CheckMetric.Cosine), c.Of(outputs[1], CheckMetric.Cosine));
            Assert.Equal(c.Of(outputs[1], CheckMetric.Mse), c.Worst(CheckMetric.Mse));
            Assert.Throws<ArgumentException>(() => c.Of(outputs[0], CheckMetric.Cosine));
        }
        Assert.DoesNotContain(outputs[0], one.RenderJson());

        var e = Assert.Throws<QuantException>(() => NodeSensitivity.Run(cal, q, new SensitivityOptions { Samples = 2, Outputs = ["softmax_9"] }));
        Assert.Equal(ErrorCode.SensitivityUnknownOutput, e.Code);
        Assert.Contains("'softmax_9'", e.Message);
        Assert.Contains(outputs[0], e.Message);
        Assert.Contains(outputs[1], e.Message);
    }

    [Fact]
    public void Weight_and_activation_candidates_score_what_their_node_config_exports_score()
    {
        using var cls = SensitivityFixture.Cls("performance");
        var plan = cls.Quantized.Plan;
        var conv = plan.Nodes.First(n => n.OpType == "Conv" && n.Compute == QType.Int8 && n.FusedInto is null);
        var node = NodeSensitivity.Run(cls.Calibrated, cls.Quantized, new SensitivityOptions { Samples = 2, Nodes = [conv.Name], Metrics = Metrics });
        var weight = NodeSensitivity.Run(cls.Calibrated, cls.Quantized,
            new SensitivityOptions { Type = CandidateType.Weight, Samples = 2, Nodes = [conv.Name], Metrics = Metrics });
        // The conv's input tensor: an activation candidate named after the tensor, with the conv among its readers.
        string tensor = conv.Inputs[0].Tensor;
        var activation = NodeSensitivity.Run(cls.Calibrated, cls.Quantized,
            new SensitivityOptions { Type = CandidateType.Activation, Samples = 2, Nodes = [tensor], Metrics = Metrics });

        var n = Assert.Single(node.Candidates);
        var w = Assert.Single(weight.Candidates);
        var a = Assert.Single(activation.Candidates);
        Assert.Equal(tensor, a.Name);
        Assert.Contains(conv.Name, a.Candidate.Nodes);
        // Quantizing only the weights (or only the input) moves the output less than quantizing the whole node, and differently.
        Assert.NotEqual(n.Worst(CheckMetric.Mse), w.Worst(CheckMetric.Mse));
        Assert.NotEqual(n.Worst(CheckMetric.Mse), a.Worst(CheckMetric.Mse));
        Assert.True(w.Worst(CheckMetric.Mse) > 0 && a.Worst(CheckMetric.Mse) > 0);

        // weight: the node float32 with its weight input int8.
        string output = cls.Outputs[0];
        var weightYaml = cls.BaseYaml + "  all_node_type: float32\nnode_config:\n  \"" + conv.Name + "\":\n    qtype: float32\n    input1: int8\n";
        AssertEqualToExport(cls, weightYaml, w, output);
        // activation: every reader of the tensor float32 but for that input, in its planned qtype.
        var readers = plan.Nodes.Where(x => x.Inputs.Any(i => i.Tensor == tensor && i.Role == InputRole.Activation && i.QType is QType.Int8 && !i.Fused)).ToList();
        var activationYaml = cls.BaseYaml + "  all_node_type: float32\nnode_config:\n" + string.Concat(readers.Select(r =>
            $"  \"{r.Name}\":\n    qtype: float32\n" + string.Concat(r.Inputs.Where(i => i.Tensor == tensor).Select(i => $"    input{i.Index}: int8\n"))));
        AssertEqualToExport(cls, activationYaml, a, output);
    }

    private static void AssertEqualToExport(SensitivityFixture f, string yaml, CandidateScore c, string output)
    {
        var q = ExportStage.Quantize(f.Calibrated, f.Config(yaml), null, default);
        var full = f.Score(q.QatModel, samples: 2);
        foreach (var m in Metrics) Assert.Equal(full.Of(output, m), c.Of(output, m));
    }

    [Fact]
    public void Same_inputs_give_the_same_json_and_csv_bytes_with_one_or_two_threads()
    {
        using var cls = SensitivityFixture.Cls("performance");
        var nodes = SensitivityFixtureNodes(cls.Quantized.Plan, 4);
        var options = new SensitivityOptions { Mode = SensitivityMode.Restore, Samples = 2, Nodes = nodes, Metrics = Metrics };
        var first = NodeSensitivity.Run(cls.Calibrated, cls.Quantized, options);
        var second = NodeSensitivity.Run(cls.Calibrated, cls.Quantized, options);
        Assert.Equal(first.RenderJson(), second.RenderJson());
        Assert.Equal(first.RenderCsv(), second.RenderCsv());

        var json = new Dictionary<int, string>();
        foreach (int threads in new[] { 1, 2 })
        {
            var request = SensitivityFixture.Request(cls.ModelPath, Path.Combine(cls.Dir, "q.yaml"), cls.Dir);
            var (cal, q, _) = NodeSensitivity.Prepare(new ExportRequest
            {
                ModelPath = request.ModelPath, ConfigPath = request.ConfigPath, OutputDirectory = request.OutputDirectory, Name = request.Name,
                SelectionSamples = request.SelectionSamples, Threads = threads,
            }, null, default);
            json[threads] = NodeSensitivity.Run(cal, q, options).RenderJson();
        }
        Assert.Equal(json[1], json[2]);
        Assert.Equal(first.RenderJson(), json[1]);
        // One sample at a time (the order used when the kept values would not fit in memory): the same scores.
        var oneByOne = NodeSensitivity.Run(cls.Calibrated, cls.Quantized, new SensitivityOptions
        {
            Mode = SensitivityMode.Restore, Samples = 2, Nodes = nodes, Metrics = Metrics, MaxKeptBytes = 0,
        });
        Assert.Equal(first.RenderJson(), oneByOne.RenderJson());
        Assert.Contains("\"format\": \"quant-sensitivity/1\"", json[1]);
        Assert.DoesNotContain(cls.Dir, json[1]);
    }

    [Fact]
    public void A_sweep_row_equals_the_export_with_its_node_config_promotions()
    {
        using var cls = SensitivityFixture.Cls("performance");
        var nodes = SensitivityFixtureNodes(cls.Quantized.Plan, 6);
        var sensitivity = NodeSensitivity.Run(cls.Calibrated, cls.Quantized, new SensitivityOptions { Samples = 2, Nodes = nodes, Metrics = Metrics });
        // The third-worst candidate's score: the threshold promotes the three worst (and any tie).
        double threshold = sensitivity.Candidates[2].Worst(CheckMetric.Cosine);
        var sweep = ThresholdSweep.Run(cls.Calibrated, cls.Quantized, sensitivity, [threshold], QType.Int16, null);
        Assert.Equal(2, sweep.Rows.Count);
        Assert.Null(sweep.Rows[0].Threshold);
        Assert.Empty(sweep.Rows[0].Candidates);
        var row = sweep.Rows[1];
        var expected = sensitivity.Candidates.Where(c => c.Worst(CheckMetric.Cosine) <= threshold).Select(c => c.Name).ToList();
        Assert.True(expected.Count >= 3);
        Assert.Equal(expected, row.Candidates);
        Assert.Equal(expected.Count / 6.0, row.Share);

        var yaml = cls.BaseYaml + "node_config:\n" + string.Concat(row.Nodes.Select(n => $"  \"{n}\":\n    qtype: int16\n"));
        var q = ExportStage.Quantize(cls.Calibrated, cls.Config(yaml), null, default);
        Assert.Contains(q.Plan.Nodes, n => n.Compute == QType.Int16);
        var full = cls.Score(q.QatModel, samples: 2);
        var baseline = cls.Score(cls.Quantized.QatModel, samples: 2);
        foreach (var m in Metrics)
        {
            Assert.Equal(full.Of(cls.Outputs[0], m), row.Scores.Of(cls.Outputs[0], m));
            Assert.Equal(baseline.Of(cls.Outputs[0], m), sweep.Rows[0].Scores.Of(cls.Outputs[0], m));
        }
        var json = SweepReport.RenderJson(sweep);
        Assert.Contains("\"format\": \"quant-sweep/1\"", json);
        Assert.Contains("\"to\": \"int16\"", json);
    }

    [Fact]
    public void Bad_options_fail_with_one_positioned_error_each()
    {
        using var cls = SensitivityFixture.Cls("performance");
        var (cal, q) = (cls.Calibrated, cls.Quantized);
        var conv = q.Plan.Nodes.First(n => n.OpType == "Conv" && n.FusedInto is null).Name;

        var unknown = Assert.Throws<QuantException>(() => NodeSensitivity.Run(cal, q, new SensitivityOptions { Samples = 1, Nodes = [conv + "x"] }));
        Assert.Equal(ErrorCode.SensitivityUnknownNode, unknown.Code);
        Assert.Contains($"did you mean '{conv}'", unknown.Message);
        Assert.StartsWith(Path.GetFileName(cls.ModelPath), unknown.ToDiagnostic());

        var shapeOnly = q.Plan.Nodes.FirstOrDefault(n => n.ShapeOnly || n.Compute == QType.Float32);
        if (shapeOnly is not null)
        {
            var notCandidate = Assert.Throws<QuantException>(() => NodeSensitivity.Run(cal, q, new SensitivityOptions { Samples = 1, Nodes = [shapeOnly.Name] }));
            Assert.Equal(ErrorCode.SensitivityNotACandidate, notCandidate.Code);
        }

        var metric = Assert.Throws<QuantException>(() => NodeSensitivity.MetricOf("cosin"));
        Assert.Equal(ErrorCode.SensitivityUnknownMetric, metric.Code);
        Assert.Contains("cosine, l1, l2, chebyshev, mse, mre, sqnr", metric.Message);

        foreach (int n in new[] { 0, 5 })
        {
            var samples = Assert.Throws<QuantException>(() => NodeSensitivity.Run(cal, q, new SensitivityOptions { Samples = n, Nodes = [conv] }));
            Assert.Equal(ErrorCode.SensitivitySampleCount, samples.Code);
            Assert.Contains("has 4", samples.Message);
            Assert.Contains("q.yaml", samples.ToDiagnostic());
        }

        var sensitivity = NodeSensitivity.Run(cal, q, new SensitivityOptions { Samples = 1, Nodes = [conv] });
        var to = Assert.Throws<QuantException>(() => ThresholdSweep.Run(cal, q, sensitivity, [0.9], QType.Int8, null));
        Assert.Equal(ErrorCode.SweepInvalidTarget, to.Code);
        var threshold = Assert.Throws<QuantException>(() => ThresholdSweep.Run(cal, q, sensitivity, [double.NaN], QType.Int16, null));
        Assert.Equal(ErrorCode.SweepInvalidThreshold, threshold.Code);
    }

    /// <summary>The first <paramref name="count"/> node candidates in graph order.</summary>
    private static List<string> SensitivityFixtureNodes(PrecisionPlan plan, int count) =>
        plan.Nodes.Where(n => !n.ShapeOnly && n.FusedInto is null && n.Compute != QType.Float32).Take(count).Select(n => n.Name).ToList();
}
