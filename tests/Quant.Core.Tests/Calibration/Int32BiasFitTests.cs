using Quant.Core.DeploymentRuntime;
using Quant.Core.Analysis;
using Quant.Core.Stages;
using Quant.Core.Tests.Stages;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Calibration;

public class Int32BiasFitTests
{
    [Fact]
    public void Det_upper_bound_biases_fit_int32_and_onnx_runtime_optimizations_no_longer_change_the_result()
    {
        var dir = TestAssets.TempDir("biasfit");
        var cfg = ExportConfigs.Write(dir, ExportConfigs.Yaml(ExportConfigs.DetData, "upper_bound", "max", ExportConfigs.DetPreprocessing));
        var result = ExportStage.Run(new ExportRequest { ModelPath = TestAssets.DetModel, ConfigPath = cfg, OutputDirectory = dir, Name = "det" });

        // Read back from the qat file: for every Conv with a bias, bias / (input scale x weight scale) fits int32.
        var g = OnnxModelReader.Load(result.QatModelPath).Graph;
        var producers = g.Producers();
        float[] Floats(string name) => g.Initializers[name].As<float>().ToArray();
        int checkedConvs = 0;
        foreach (var conv in g.Nodes.Where(n => n.OpType == "Conv" && n.Inputs.Count > 2))
        {
            if (!producers.TryGetValue(conv.Inputs[0], out var xdq) || xdq.OpType != "DequantizeLinear") continue;
            var sx = Floats(xdq.Inputs[1])[0];
            var sw = Floats(producers[conv.Inputs[1]].Inputs[1]);
            var bias = Floats(conv.Inputs[2]);
            for (int m = 0; m < bias.Length; m++)
            {
                double q = Math.Abs(bias[m] / ((double)sx * sw[sw.Length == 1 ? 0 : m % sw.Length]));
                Assert.True(q <= int.MaxValue, $"{conv.Name} channel {m}: bias {bias[m]} is {q:E3} steps of input x weight scale");
            }
            checkedConvs++;
        }
        Assert.True(checkedConvs > 50, $"only {checkedConvs} quantized Convs with a bias");
        // Without the fit, det's first Conv needed 8e9 steps on 4 channels; the report says what was raised.
        Assert.Contains("p2o.Conv.0: conv2d_0.w_0, 4 channel(s)", File.ReadAllText(result.ModelCheckTextPath));

        // ORT as users run it (graph optimizations on: it quantizes the bias itself) equals ORT as written.
        var feeds = new Dictionary<string, Tensor> { ["x"] = OcrSamples.Det(OcrSamples.DetFiles[0]) };
        var all = OrtOracle.Run(result.QatModelPath, feeds).Outputs.Single().Value;
        var plain = OrtOracle.Run(result.QatModelPath, feeds, optimization: OrtOptimization.Disabled).Outputs.Single().Value;
        var ours = new InferenceSession(OnnxModelReader.Load(result.QatModelPath)).Run(feeds).Single().Value;
        Assert.InRange(Similarity.Of(all, plain).Cosine, 0.9999, 1.0);
        Assert.InRange(Similarity.Of(ours, all).Cosine, 0.9999, 1.0);
    }
}
