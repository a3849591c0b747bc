using Quant.Core.Conversion;
using Quant.Core.Diagnostics;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Convert;

/// <summary>
/// Spec §3.6: each kind of qat model convert cannot represent gives one QuantException with its QB7xxx code, at the
/// model file, naming the node and tensor and the fix; nothing is written.
/// </summary>
public class ConvertRejectionTests
{
    private static QuantException Rejects(TinyQat qat, ErrorCode code, params string[] mentions)
    {
        var dir = TestAssets.TempDir("convert-reject");
        var path = qat.Save(dir);
        var quantized = Path.Combine(dir, "tiny.quantized.onnx");
        var e = Assert.Throws<QuantException>(() => ConvertStage.Run(path, quantized));
        Assert.Equal(code, e.Code);
        Assert.Equal(path, e.Where.File);
        foreach (var m in mentions) Assert.Contains(m, e.Message);
        Assert.False(File.Exists(quantized));
        Assert.False(File.Exists(Path.Combine(dir, "tiny.convert.json")));
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
        return e;
    }

    [Theory]
    [InlineData(0f, "0")]
    [InlineData(-0.02f, "-0.0199999996")]
    [InlineData(float.NaN, "NaN")]
    [InlineData(float.PositiveInfinity, "Infinity")]
    public void A_scale_that_is_not_positive_and_finite_names_the_node_and_tensor(float scale, string shown) =>
        Rejects(new TinyQat { InputScale = scale, DequantizeScale = 0.02f }, ErrorCode.ConvertInvalidScale,
            "node 'x_q' (QuantizeLinear)", "'x_scale'", $"is {shown}", "tensor 'x'", "positive and finite");

    [Fact]
    public void A_qoperator_model_is_rejected_with_the_fix() =>
        Rejects(new TinyQat { ConvOp = "QLinearConv", Relu = false }, ErrorCode.ConvertQOperatorModel,
            "node 'conv' (QLinearConv)", "QDQ format", "quant_format=QuantFormat.QDQ");

    [Fact]
    public void A_per_channel_activation_is_rejected() =>
        Rejects(new TinyQat { PerChannelInput = true }, ErrorCode.ConvertPerChannelActivation,
            "activation 'x'", "node 'x_q'", "axis 1", "3 scales", "per_channel: false");

    [Fact]
    public void An_asymmetric_weight_is_rejected() =>
        Rejects(new TinyQat { WeightZeroPoint = 3 }, ErrorCode.ConvertAsymmetricWeight,
            "weight 'w_q'", "node 'conv' (Conv)", "zero point 3", "'w_dq'", "symmetric");

    [Fact]
    public void A_weight_per_channel_along_the_input_channels_is_rejected() =>
        Rejects(new TinyQat { WeightScales = [0.01f, 0.02f, 0.03f], WeightAxis = 1 }, ErrorCode.ConvertWeightAxis,
            "weight 'w_q'", "node 'conv' (Conv)", "axis 1", "axis 0");

    [Fact]
    public void A_bias_beyond_int32_is_rejected() =>
        Rejects(new TinyQat { BiasValue = 1e8f }, ErrorCode.ConvertBiasOverflow, "bias of node 'conv' (Conv), channel 0", "beyond int32");

    [Fact]
    public void A_pair_whose_scales_differ_is_rejected() =>
        Rejects(new TinyQat { DequantizeScale = 0.03f }, ErrorCode.ConvertMalformedQdq, "node 'x_q'", "node 'x_dq'", "'x'", "same scale");

    [Fact]
    public void An_int32_activation_is_rejected_as_an_unsupported_type() =>
        Rejects(new TinyQat { ActivationType = ElementType.Int32 }, ErrorCode.ConvertUnsupportedQuantType, "node 'x_q' (QuantizeLinear)", "'x'", "int32", "int8 and int16");

    [Fact]
    public void An_unreadable_model_is_one_error_at_the_file()
    {
        var dir = TestAssets.TempDir("convert-reject");
        var path = Path.Combine(dir, "broken.qat.onnx");
        File.WriteAllBytes(path, [1, 2, 3, 4, 5, 255]);
        var e = Assert.Throws<QuantException>(() => ConvertStage.Run(path, Path.Combine(dir, "broken.quantized.onnx")));
        Assert.Equal(ErrorCode.ModelUnreadable, e.Code);
        Assert.Equal(path, e.Where.File);
    }
}
