using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.ForeignQdq;

/// <summary>
/// The committed foreign QDQ models of tests/data/foreign-qdq (made once by build/fixtures/foreign_qdq.py with
/// Debian's PyTorch and onnx; README.md there lists their patterns) and their 4 real inputs.
/// </summary>
public static class ForeignFixtures
{
    /// <summary>PyTorch eager-mode QAT exported by torch.onnx.export: float weights → Q → DQ (pattern P3).</summary>
    public const string TorchQat = "torch-qat.onnx";

    /// <summary>ONNX Runtime quantize_static's QDQ layout: int8 weight and int32 bias initializers → DQ (P2, P4).</summary>
    public const string OrtStatic = "ort-static.onnx";

    public const string QOperator = "bad-qoperator.onnx";
    public const string PerChannelActivation = "bad-per-channel-activation.onnx";
    public const string AsymmetricWeight = "bad-asymmetric-weight.onnx";

    public static string Path(string file) => TestAssets.Data("foreign-qdq", file);

    /// <summary>The 4 committed inputs x [1,3,32,32] (crops of the committed det photos, normalized to [-1, 1]).</summary>
    public static IReadOnlyList<Dictionary<string, Tensor>> Inputs() =>
        Enumerable.Range(0, 4).Select(i => new Dictionary<string, Tensor> { ["x"] = Npy.Read(Path($"input_{i:0000}.npy")) }).ToList();

    public static OnnxModel Load(string file) => OnnxModelReader.Load(Path(file));

    /// <summary>The scale of the QuantizeLinear whose output the graph output's DequantizeLinear reads: one output LSB.</summary>
    public static float OutputScale(OnnxModel model, string output)
    {
        var dq = model.Graph.Nodes.Single(n => n.OpType == "DequantizeLinear" && n.Outputs[0] == output);
        return model.Graph.Initializers[dq.Inputs[1]].As<float>()[0];
    }
}
