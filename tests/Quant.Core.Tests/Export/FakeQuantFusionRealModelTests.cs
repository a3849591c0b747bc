using Quant.Core.Tests.Compile;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Export;

/// <summary>
/// The exported det and rec qat models (performance preset, max calibration on the committed samples) run with their
/// QuantizeLinear → DequantizeLinear pairs fused into one pass each and with the separate kernels: the outputs must be
/// the same bits, and so must a kept-values run (which executes the separate nodes).
/// </summary>
public class FakeQuantFusionRealModelTests(CompiledModels models) : IClassFixture<CompiledModels>
{
    [Theory]
    [InlineData("rec")]
    [InlineData("det")]
    public void Fused_pairs_give_the_bits_of_the_separate_kernels(string model)
    {
        var qat = OnnxModelReader.Load(models.Qat(model));
        var fused = new InferenceSession(qat);
        var separate = new InferenceSession(qat, new SessionOptions { FuseFakeQuant = false });
        var inputs = model == "det"
            ? new[] { OcrSamples.Det(OcrSamples.DetFiles[0]), OcrSamples.Det(OcrSamples.DetFiles[1], 320, 640) }
            : OcrSamples.RecFiles.Select(OcrSamples.Rec).ToArray();
        // What ran: the timings of an unobserved run name the executed nodes, fused pairs included.
        var timings = new NodeTimings();
        fused.Run(new Dictionary<string, Tensor> { ["x"] = inputs[0] }, new RunOptions { Timings = timings });
        int pairs = timings.ByOpType().Where(t => t.OpType == "FakeQuantize").Sum(t => t.Nodes);
        int quantizers = qat.Graph.Nodes.Count(n => n.OpType == "QuantizeLinear");
        Assert.True(pairs > 100 && pairs * 10 >= quantizers * 9, $"{model}: {pairs} fused pairs of {quantizers} quantizers");
        foreach (var x in inputs)
        {
            var feeds = new Dictionary<string, Tensor> { ["x"] = x };
            var a = fused.Run(feeds);
            var b = separate.Run(feeds);
            var kept = fused.Run(feeds, new RunOptions { KeepValues = new ValueCache() });
            foreach (var (name, t) in b)
            {
                Assert.True(t.Bytes().SequenceEqual(a[name].Bytes()), $"{model} [{string.Join("x", x.Shape)}] '{name}': fused differs from separate Q and DQ");
                Assert.True(t.Bytes().SequenceEqual(kept[name].Bytes()), $"{model} [{string.Join("x", x.Shape)}] '{name}': the kept-values run differs");
            }
        }
    }
}
