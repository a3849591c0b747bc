using Quant.Core.Stages;
using Quant.Core.Tests.Stages;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Core.Tests.Convert.Rules;

/// <summary>
/// The real PaddleOCR rec and det models exported with the <c>performance</c> preset from the committed samples, node by
/// node against the rules (spec §14): every lowered node equals the qat run's integers or differs by 1 LSB next to a tie.
/// </summary>
public class RecDetLockstepTests(ITestOutputHelper output)
{
    private static OnnxModel Export(string model, string name, string data, string preprocessing)
    {
        var dir = TestAssets.TempDir("lockstep-" + name);
        var cfg = ExportConfigs.Write(dir, ExportConfigs.Yaml(data, "performance", "max", preprocessing));
        var qat = ExportStage.Run(new ExportRequest { ModelPath = model, ConfigPath = cfg, OutputDirectory = Path.Combine(dir, "out"), Name = name }).QatModelPath;
        return OnnxModelReader.Load(qat);
    }

    private void Check(List<LockstepTally> tallies, string[] expected)
    {
        foreach (var t in tallies) output.WriteLine(t.ToString());
        foreach (var op in expected) Assert.Contains(tallies, t => t.OpType == op && t.Nodes > 0);
        foreach (var t in tallies)
        {
            Assert.True(t.MaxDiff <= 1, t.ToString());
            Assert.True(t.Share <= 1e-3, t.ToString());
            if (t.OpType is "Sigmoid" or "HardSigmoid" or "HardSwish" or "Sqrt" or "Reshape" or "Transpose" or "Squeeze") Assert.True(t.Differing == 0, t.ToString());
        }
    }

    [Fact]
    public void Every_lowered_node_of_rec_matches_the_qat_run_on_a_real_line()
    {
        var qat = Export(TestAssets.RecModel, "rec", ExportConfigs.RecData, ExportConfigs.RecPreprocessing);
        var tallies = RealModelLockstep.Run(qat, new Dictionary<string, Tensor> { [qat.Graph.RuntimeInputs.Single().Name] = OcrSamples.Rec(OcrSamples.RecFiles[1]) });
        // rec's SE blocks, attention Softmax, AveragePool (its HardSwish ops run fused in the QConv before them since graph
        // preparation folds the conv's scale and shift). Its LayerNorms are one LayerNormalization each, float in this preset.
        Check(tallies, ["Add", "Mul", "Softmax", "Sigmoid", "HardSigmoid", "GlobalAveragePool", "AveragePool", "Transpose", "Reshape"]);
    }

    [Fact]
    public void Every_lowered_node_of_det_matches_the_qat_run_on_a_real_image()
    {
        var qat = Export(TestAssets.DetModel, "det", ExportConfigs.DetData, ExportConfigs.DetPreprocessing);
        var tallies = RealModelLockstep.Run(qat, new Dictionary<string, Tensor> { [qat.Graph.RuntimeInputs.Single().Name] = OcrSamples.Det(OcrSamples.DetFiles[0]) });
        // det's SE blocks, FPN Resize (nearest) and Concat, Sigmoid head (its HardSwish ops run fused in the QConv).
        Check(tallies, ["Add", "Mul", "HardSigmoid", "GlobalAveragePool", "Resize", "Concat", "Sigmoid"]);
    }
}
