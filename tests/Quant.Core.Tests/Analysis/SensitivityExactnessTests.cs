using System.Text;
using Quant.Core.Analysis;
using Quant.Core.Analysis.Sensitivity;
using Quant.Core.Config;
using Quant.Core.Precision;
using Quant.Core.Stages;
using Quant.Core.Tests.Stages;
using Quant.Engine;
using Quant.TestSupport;

namespace Quant.Core.Tests.Analysis;

/// <summary>
/// The downstream shortcut is exact: a candidate's score equals the score of a full export of the config that says
/// the same with node_config (only that node quantized, or that node restored to float32), run end to end on the same
/// samples. Real rec model, real committed samples, a few candidates of each kind.
/// </summary>
public class SensitivityExactnessTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly CheckMetric[] AllMetrics = CheckNames.Metrics.Select(m => m.Value).ToArray();

    [Fact]
    public void Alone_scores_equal_full_exports_where_only_the_candidate_is_quantized()
    {
        using var rec = SensitivityFixture.Rec("performance");
        var picks = rec.Picks();
        var result = NodeSensitivity.Run(rec.Calibrated, rec.Quantized,
            new SensitivityOptions { Mode = SensitivityMode.Alone, Samples = 2, Nodes = picks, Metrics = AllMetrics });
        Assert.Equal(picks.Count, result.Candidates.Count);
        foreach (var c in result.Candidates)
        {
            var yaml = rec.BaseYaml + "  all_node_type: float32\n" + NodeConfig(rec.Quantized.Plan, c.Candidate.Nodes, keep: true);
            AssertSameScores(rec, c, yaml, AllMetrics);
        }
    }

    [Fact]
    public void Restore_scores_equal_full_exports_where_only_the_candidate_is_float()
    {
        using var rec = SensitivityFixture.Rec("performance");
        var picks = rec.Picks();
        var result = NodeSensitivity.Run(rec.Calibrated, rec.Quantized,
            new SensitivityOptions { Mode = SensitivityMode.Restore, Samples = 2, Nodes = picks, Metrics = AllMetrics });
        Assert.Equal(picks.Count, result.Candidates.Count);
        foreach (var c in result.Candidates)
        {
            var yaml = rec.BaseYaml + NodeConfig(rec.Quantized.Plan, c.Candidate.Nodes, keep: false);
            AssertSameScores(rec, c, yaml, AllMetrics);
        }
    }

    private void AssertSameScores(SensitivityFixture rec, CandidateScore c, string yaml, CheckMetric[] metrics)
    {
        var config = rec.Config(yaml);
        var q = ExportStage.Quantize(rec.Calibrated, config, null, default);
        var full = rec.Score(q.QatModel, samples: 2);
        foreach (var o in rec.Outputs)
            foreach (var m in metrics)
            {
                double expected = full.Of(o, m), actual = c.Of(o, m);
                output.WriteLine($"{c.Name} ({c.Candidate.OpType}, {c.Candidate.QType}) {o} {CheckNames.Of(m)}: full export {expected:R}, sensitivity {actual:R}");
                Assert.True(expected.Equals(actual), $"{c.Name} {CheckNames.Of(m)}: full export {expected:R} vs sensitivity {actual:R}");
            }
    }

    /// <summary>node_config for the candidate's nodes: their planned qtypes (keep) or float32.</summary>
    internal static string NodeConfig(PrecisionPlan plan, IEnumerable<string> nodes, bool keep)
    {
        var sb = new StringBuilder("node_config:\n");
        foreach (var name in nodes)
        {
            var np = plan.ByName(name)!;
            sb.Append("  \"").Append(name).Append("\":\n");
            sb.Append("    qtype: ").Append(keep ? PrecisionPlan.QTypeText(np.Compute) : "float32").Append('\n');
            if (!keep) continue;
            foreach (var i in np.Inputs)
                if (i.QType is { } q && q != np.Compute) sb.Append("    input").Append(i.Index).Append(": ").Append(PrecisionPlan.QTypeText(q)).Append('\n');
        }
        return sb.ToString();
    }
}

/// <summary>A calibrated rec (or cls) model with a config, in a temp folder; the statistics are collected once per fixture.</summary>
internal sealed class SensitivityFixture : IDisposable
{
    public required string Dir { get; init; }
    public required string ModelPath { get; init; }
    public required string BaseYaml { get; init; }
    public required CalibratedModel Calibrated { get; init; }
    public required QuantizedModel Quantized { get; init; }
    public IReadOnlyList<string> Outputs => Calibrated.Model.Graph.Outputs.Select(o => o.Name).ToList();

    public static SensitivityFixture Rec(string preset, string extra = "") =>
        Create(TestAssets.RecModel, ExportConfigs.RecData, ExportConfigs.RecPreprocessing, preset, extra);

    public static SensitivityFixture Cls(string preset, string extra = "") =>
        Create(TestAssets.ClsModel, Path.Combine(TestAssets.Data("ppocr-cls"), "cls_*.npy").Replace('\\', '/'), ExportConfigs.RecPreprocessing, preset, extra);

    private static SensitivityFixture Create(string model, string glob, string preprocessing, string preset, string extra)
    {
        var dir = TestAssets.TempDir("sensitivity");
        // model_config last, so that a test can append keys to it.
        var yaml = $"preset: {preset}\ninputs:\n  x:\n    data: \"{glob}\"\n{preprocessing}{extra}model_config:\n  activation:\n    calibration_type: max\n";
        var path = ExportConfigs.Write(dir, yaml);
        var request = Request(model, path, dir);
        var (cal, q, _) = NodeSensitivity.Prepare(request, null, default);
        return new SensitivityFixture { Dir = dir, ModelPath = model, BaseYaml = yaml, Calibrated = cal, Quantized = q };
    }

    public static ExportRequest Request(string model, string config, string dir) => new()
    {
        ModelPath = model, ConfigPath = config, OutputDirectory = dir, Name = "m", SelectionSamples = 2,
    };

    public QuantConfig Config(string yaml)
    {
        var path = Path.Combine(Dir, $"variant-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, yaml);
        return QuantConfigLoader.Load(path);
    }

    /// <summary>The first samples' scores of a model run end to end against the float model.</summary>
    public OutputScores Score(Quant.Onnx.OnnxModel qat, int samples)
    {
        var session = new InferenceSession(qat);
        var scores = new OutputScores(Outputs);
        foreach (var s in Calibrated.Data.Samples().Take(samples))
            scores.Add(Calibrated.FloatSession.Run(s), session.Run(s));
        return scores;
    }

    /// <summary>A few node candidates of different kinds: a Conv with a fused activation, a MatMul, an elementwise op, the last one.</summary>
    public List<string> Picks()
    {
        var plan = Quantized.Plan;
        var units = plan.Nodes.Where(n => !n.ShapeOnly && n.FusedInto is null && n.Compute != QType.Float32).ToList();
        var fusedProducers = plan.Nodes.Where(n => n.FusedInto is not null).Select(n => n.FusedInto!.Name).ToHashSet();
        var picks = new List<string>();
        void Add(NodePrecision? n) { if (n is not null && !picks.Contains(n.Name)) picks.Add(n.Name); }
        Add(units.FirstOrDefault(n => n.OpType == "Conv" && fusedProducers.Contains(n.Name)));
        Add(units.FirstOrDefault(n => n.OpType == "MatMul"));
        Add(units.FirstOrDefault(n => n.OpType is "Add" or "Mul" or "Softmax" or "Concat"));
        Add(units.LastOrDefault());
        return picks;
    }

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}
