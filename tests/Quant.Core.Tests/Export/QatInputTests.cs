using Quant.Core.Conversion;
using Quant.Core.DeploymentRuntime;
using Quant.Core.Diagnostics;
using Quant.Core.Export;
using Quant.Core.Stages;
using Quant.Core.Tests.ForeignQdq;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Core.Tests.Export;

/// <summary>
/// Issue 10 item 8: a model that already carries Q/DQ (the PyTorch QAT export and ONNX Runtime quantize_static layout of
/// tests/data/foreign-qdq) goes through export keeping its own scales. The reference is ONNX Runtime running the input
/// model as it is: our qat.onnx must give the same logits bit for bit, carry the same scales and weight integers, and say where the
/// config asked for something else.
/// </summary>
public class QatInputTests(ITestOutputHelper output)
{
    public static TheoryData<string> Good => new() { ForeignFixtures.TorchQat, ForeignFixtures.OrtStatic };

    private static string Data => Path.Combine(TestAssets.Data("foreign-qdq"), "input_*.npy").Replace('\\', '/');

    private static ExportResult Export(string file, string dir, string configBody)
    {
        var config = Path.Combine(dir, "q.yaml");
        File.WriteAllText(config, configBody + $"inputs:\n  x:\n    data: \"{Data}\"\n");
        return ExportStage.Run(new ExportRequest { ModelPath = ForeignFixtures.Path(file), ConfigPath = config, OutputDirectory = dir, Name = "m", Threads = 1 });
    }

    /// <summary>The (scale, zero point) of the DequantizeLinear a node reads at <paramref name="input"/>, following one level of the exporter's pairs.</summary>
    private static (float[] Scales, TensorData ZeroPoints, TensorData? Integers) DqBehind(OnnxModel m, string nodeName, int input)
    {
        var node = m.Graph.Nodes.Single(n => n.Name == nodeName);
        var dq = m.Graph.Producers()[node.Inputs[input]];
        Assert.Equal("DequantizeLinear", dq.OpType);
        var g = m.Graph;
        g.Initializers.TryGetValue(dq.Inputs[0], out var ints);
        return (g.Initializers[dq.Inputs[1]].As<float>().ToArray(), g.Initializers[dq.Inputs[2]], ints);
    }

    [Theory]
    [MemberData(nameof(Good))]
    public void A_qdq_model_exports_with_its_own_scales_and_onnx_runtime_gives_the_same_logits(string file)
    {
        var dir = TestAssets.TempDir("qat-input");
        var result = Export(file, dir, "preset: performance\n");
        output.WriteLine(File.ReadAllText(result.ModelCheckTextPath).Split("QDQ input model")[1]);
        Assert.Empty(result.Warnings);

        // ONNX Runtime (plain kernels: the reference mode) on the input model and on ours, the 4 real inputs.
        var original = ForeignFixtures.Load(file);
        float lsb = ForeignFixtures.OutputScale(original, "logits");
        using var theirs = new OrtRunner(ForeignFixtures.Path(file), OrtOptimization.Disabled);
        using var ours = new OrtRunner(result.QatModelPath, OrtOptimization.Disabled);
        foreach (var x in ForeignFixtures.Inputs())
        {
            var a = theirs.Run(x)["logits"].ReadOnlySpan<float>().ToArray();
            var b = ours.Run(x)["logits"].ReadOnlySpan<float>().ToArray();
            double worst = a.Zip(b).Max(p => Math.Abs(p.First - p.Second));
            output.WriteLine($"max |logit diff| {worst:G4} (output LSB {lsb:G4})");
            // The same integers everywhere: bit for bit with ONNX Runtime's plain kernels.
            Assert.True(worst == 0, $"logits differ by {worst} (output step {lsb}): [{string.Join(", ", a)}] vs [{string.Join(", ", b)}]");
        }

        // The input's scale and zero point are the model's (uint8 z maps to int8 z - 128: the same real values).
        var qat = OnnxModelReader.Load(result.QatModelPath);
        var inputQ = original.Graph.Nodes.First(n => n.OpType == "QuantizeLinear" && n.Inputs[0] == "x");
        float modelScale = original.Graph.Initializers.TryGetValue(inputQ.Inputs[1], out var s) ? s.As<float>()[0] : float.NaN;
        var (xScale, xZp, _) = DqBehind(qat, "/stem/Conv", 0);
        Assert.Equal(BitConverter.SingleToInt32Bits(modelScale), BitConverter.SingleToInt32Bits(xScale[0]));
        Assert.Equal(ElementType.Int8, xZp.Type);
        Assert.Equal(127 - 128, xZp.As<sbyte>()[0]);

        // Every weight keeps the model's per-channel scales; ORT's stored integers come back unchanged.
        foreach (var conv in new[] { "/stem/Conv", "/dw/Conv", "/pw/Conv", "/down/Conv", "/res/Conv" })
        {
            var (scales, zps, ints) = DqBehind(qat, conv, 1);
            var originalConv = original.Graph.Nodes.Single(n => n.Name == conv);
            var originalDq = original.Graph.Producers()[originalConv.Inputs[1]];
            var expected = original.Graph.Initializers[originalDq.Inputs[1]].As<float>().ToArray();
            Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), scales.Select(BitConverter.SingleToInt32Bits));
            Assert.All(zps.As<sbyte>().ToArray(), z => Assert.Equal(0, z));
            if (file == ForeignFixtures.OrtStatic)
                Assert.Equal(original.Graph.Initializers[originalDq.Inputs[0]].As<sbyte>().ToArray(), ints!.As<sbyte>().ToArray());
        }
        if (file == ForeignFixtures.TorchQat)
        {
            // PyTorch has no pair between the pool's DQ and the Flatten before the Gemm: the pool's scale passes on.
            var poolQ = original.Graph.Nodes.Single(n => n.OpType == "QuantizeLinear" && n.Inputs[0] == "/pool/GlobalAveragePool_output_0");
            Assert.Equal(original.Graph.Initializers[poolQ.Inputs[1]].As<float>()[0], DqBehind(qat, "/fc/Gemm", 0).Scales[0]);
        }
        if (file == ForeignFixtures.OrtStatic)
        {
            // ORT folded each ReLU into a zero point; the float model export measures against has them back.
            Assert.Equal(4, qat.Graph.Nodes.Count(n => n.OpType == "Relu"));
            Assert.Contains("Relu restored after", File.ReadAllText(result.ModelCheckTextPath));
        }
        // What we wrote is an ordinary qat model for the rest of the chain: convert makes every Conv an integer group.
        var quantizedPath = Path.Combine(dir, "m.quantized.onnx");
        ConvertStage.Run(result.QatModelPath, quantizedPath);
        Assert.Equal(5, OnnxModelReader.Load(quantizedPath).Graph.Nodes.Count(n => n.Domain == "quant.build" && n.OpType == "QConv"));
        // Float vs qat: the float model is the input without its Q/DQ, so this is the quantization's own effect.
        Assert.True(result.Similarity.Of("logits", x => x.Cosine).Min > 0.99, $"float vs qat cosine {result.Similarity.Of("logits", x => x.Cosine).Min}");
    }

    [Fact]
    public void Where_the_config_asks_otherwise_the_model_wins_and_each_contradiction_is_a_warning_naming_the_nodes()
    {
        var dir = TestAssets.TempDir("qat-input-conflict");
        // base puts the Add and the pool in float16; the node_config asks int16 for the res Conv; per-tensor weights.
        var result = Export(ForeignFixtures.OrtStatic, dir,
            "preset: base\nmodel_config:\n  weight:\n    per_channel: false\nnode_config:\n  /res/Conv:\n    qtype: int16\n");
        foreach (var w in result.Warnings) output.WriteLine(w);
        Assert.All(result.Warnings, w => Assert.Contains(": warning QB4022: ", w));
        Assert.All(result.Warnings, w => Assert.StartsWith(ForeignFixtures.Path(ForeignFixtures.OrtStatic), w));
        Assert.Contains(result.Warnings, w => w.Contains("float16") && w.Contains("/skip_add/Add") && w.Contains("/pool/GlobalAveragePool"));
        Assert.Contains(result.Warnings, w => w.Contains("int16") && w.Contains("/res/Conv"));
        Assert.Contains(result.Warnings, w => w.Contains("per_channel is false") && w.Contains("/stem/Conv"));

        // What was written is the model's: the Add reads int8 pairs at the model's scales, weights stay per channel.
        var original = ForeignFixtures.Load(ForeignFixtures.OrtStatic);
        var qat = OnnxModelReader.Load(result.QatModelPath);
        var (addScale, addZp, _) = DqBehind(qat, "/skip_add/Add", 1);
        Assert.Equal(original.Graph.Initializers["res_out_scale"].As<float>()[0], addScale[0]);
        Assert.Equal(ElementType.Int8, addZp.Type);
        Assert.Equal(32, DqBehind(qat, "/res/Conv", 1).Scales.Length);
        using var theirs = new OrtRunner(ForeignFixtures.Path(ForeignFixtures.OrtStatic), OrtOptimization.Disabled);
        using var ours = new OrtRunner(result.QatModelPath, OrtOptimization.Disabled);
        float lsb = ForeignFixtures.OutputScale(original, "logits");
        foreach (var x in ForeignFixtures.Inputs())
        {
            var a = theirs.Run(x)["logits"].ReadOnlySpan<float>().ToArray();
            var b = ours.Run(x)["logits"].ReadOnlySpan<float>().ToArray();
            Assert.True(a.Zip(b).Max(p => Math.Abs(p.First - p.Second)) <= lsb * 1.001);
        }
    }

    [Fact]
    public void Asymmetric_weights_are_one_error_naming_the_weight_and_the_fix()
    {
        var dir = TestAssets.TempDir("qat-input-asym");
        var e = Assert.Throws<QuantException>(() => Export(ForeignFixtures.AsymmetricWeight, dir, "preset: performance\n"));
        output.WriteLine(e.Message);
        Assert.Equal(ErrorCode.ExportQatInputUnsupported, e.Code);
        Assert.Equal(ForeignFixtures.Path(ForeignFixtures.AsymmetricWeight), e.Where.File);
        Assert.Contains("stem.weight", e.Message);
        Assert.Contains("symmetric", e.Message);
        Assert.False(File.Exists(Path.Combine(dir, "m.qat.onnx")));
    }

    [Theory]
    [InlineData(ForeignFixtures.QOperator, ErrorCode.ConvertQOperatorModel)]
    [InlineData(ForeignFixtures.PerChannelActivation, ErrorCode.ConvertPerChannelActivation)]
    public void Qdq_structure_the_integer_contract_cannot_hold_is_rejected_as_convert_rejects_it(string file, ErrorCode code)
    {
        var dir = TestAssets.TempDir("qat-input-bad");
        var e = Assert.Throws<QuantException>(() => Export(file, dir, "preset: performance\n"));
        output.WriteLine(e.Message);
        Assert.Equal(code, e.Code);
        Assert.Equal(ForeignFixtures.Path(file), e.Where.File);
        Assert.False(File.Exists(Path.Combine(dir, "m.qat.onnx")));
    }

    [Fact]
    public void A_float_model_is_not_a_qat_input()
    {
        Assert.False(QatInput.Carries(OnnxModelReader.Load(TestAssets.ClsModel)));
        Assert.Null(QatInput.Read(OnnxModelReader.Load(TestAssets.ClsModel), TestAssets.ClsModel));
    }
}
