using Quant.Core.Tests.Checks;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Core.Tests.Convert.Rules;

/// <summary>The real PaddleOCR cls qat model (exported from the committed samples), node by node against the rules.</summary>
public class ClsLockstepTests(ClsExport cls, ITestOutputHelper output) : IClassFixture<ClsExport>
{
    [Fact]
    public void Every_lowered_node_of_cls_matches_the_qat_run_on_a_real_line()
    {
        var x = OcrSamples.Cls(OcrSamples.ClsFiles[0]);
        var qat = OnnxModelReader.Load(cls.Qat);
        var tallies = RealModelLockstep.Run(qat, new Dictionary<string, Tensor> { [qat.Graph.RuntimeInputs.Single().Name] = x });
        foreach (var t in tallies) output.WriteLine(t.ToString());
        // cls's integer nodes besides the GEMMs: residual Adds, the SE blocks (GlobalAveragePool, HardSigmoid, Mul), MaxPool,
        // Reshape, Softmax. Its HardSwish chains read a float Conv output (no Q/DQ there), so they stay float islands.
        foreach (var op in new[] { "Add", "Mul", "HardSigmoid", "GlobalAveragePool", "MaxPool", "Reshape", "Softmax" })
            Assert.Contains(tallies, t => t.OpType == op && t.Nodes > 0);
        foreach (var t in tallies)
        {
            Assert.True(t.MaxDiff <= 1, t.ToString());
            Assert.True(t.Share <= 1e-3, t.ToString());
            if (t.OpType is "HardSigmoid" or "Sigmoid" or "Reshape" or "Transpose" or "Flatten" or "Squeeze") Assert.True(t.Differing == 0, t.ToString());
        }
    }
}
