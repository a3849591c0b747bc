using Quant.Core.Compilation;
using Quant.Core.Conversion;
using Quant.Core.Diagnostics;
using Quant.Engine;
using Quant.Onnx;
using Quant.Runtime;
using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Core.Tests.ForeignQdq;

/// <summary>
/// The foreign QDQ fixtures through issue 9's chain: convert (NAME.qat.onnx → NAME.quantized.onnx, spec §3: PyTorch's
/// float weights through Q (P3), ORT's int8/int32 initializers (P2/P4), uint8 activations mapped to int8 with zero
/// point z − 128 (§3.3)), then compile (→ NAME.qbm) and the runtime. quantized vs qat: cosine ≥ 0.9999 (§14, the
/// reference is the qat model run by our engine); compiled == quantized bit for bit. And the three models convert
/// must refuse, each with one error naming the file and the place.
/// </summary>
public class ForeignQdqChainTests(ITestOutputHelper output)
{
    public static TheoryData<string> Good => ForeignQdqRuntimeTests.Good;

    /// <summary>Default-domain compute nodes left in the quantized model (the boundary Q/DQ are the qat model's own operators).</summary>
    private static List<string> PlainOps(OnnxModel m) =>
        m.Graph.Nodes.Where(n => n.IsDefaultDomain && n.OpType is not ("QuantizeLinear" or "DequantizeLinear")).Select(n => n.OpType).ToList();

    [Theory]
    [MemberData(nameof(Good))]
    public void Converts_and_compiles_the_foreign_model_consistently(string file)
    {
        var dir = TestAssets.TempDir("foreign-chain");
        var qatPath = ForeignFixtures.Path(file);
        var name = System.IO.Path.GetFileNameWithoutExtension(file);
        var quantizedPath = System.IO.Path.Combine(dir, name + ".quantized.onnx");
        var qbmPath = System.IO.Path.Combine(dir, name + ".qbm");

        var converted = ConvertStage.Run(qatPath, quantizedPath);
        Assert.True(File.Exists(quantizedPath));
        Assert.True(File.Exists(converted.ReportPath), converted.ReportPath);
        var qat = ForeignFixtures.Load(file);
        var quantized = OnnxModelReader.Load(quantizedPath);
        var plain = PlainOps(quantized);
        output.WriteLine($"{file}: {converted.IntegerGroups} integer groups, {converted.FloatIslands} float islands; plain ONNX ops left: [{string.Join(", ", plain)}]");

        // Graph inputs and outputs keep the qat model's names, types and shapes (docs/quantized-model.md).
        Assert.Equal(qat.Graph.Inputs.Select(i => (i.Name, i.Type)), quantized.Graph.Inputs.Select(i => (i.Name, i.Type)));
        Assert.Equal(qat.Graph.Outputs.Select(o => (o.Name, o.Type)), quantized.Graph.Outputs.Select(o => (o.Name, o.Type)));
        // Every convolution is an integer group: 5 QConv (the depthwise one included), none left in float.
        Assert.Equal(5, quantized.Graph.Nodes.Count(n => n.Domain == "quant.build" && n.OpType == "QConv"));
        Assert.DoesNotContain("Conv", plain);
        if (file == ForeignFixtures.OrtStatic)
        {
            // ORT's layout quantizes every tensor: no float island; 5 Conv, Add, pool and Gemm are integer groups,
            // and the Flatten between two pairs moves integers (it may stay a plain ONNX Flatten on int8).
            Assert.Equal(0, converted.FloatIslands);
            Assert.True(converted.IntegerGroups >= 8, $"{converted.IntegerGroups} integer groups");
            Assert.All(plain, op => Assert.Equal("Flatten", op));
            Assert.Contains(quantized.Graph.Nodes, n => n.Domain == "quant.build" && n.OpType == "QGemm");
        }
        else
        {
            // PyTorch's export has DQ(pool) → Flatten → Gemm with no pair in between: only those two may stay float;
            // 5 Conv, Add and pool are integer groups.
            Assert.All(plain, op => Assert.Contains(op, new[] { "Flatten", "Gemm" }));
            Assert.True(converted.FloatIslands <= 2, $"{converted.FloatIslands} float islands");
            Assert.True(converted.IntegerGroups >= 7, $"{converted.IntegerGroups} integer groups");
        }

        var summary = CompileStage.Run(quantizedPath, qbmPath);
        Assert.True(File.Exists(qbmPath));
        Assert.True(File.Exists(summary.ReportPath), summary.ReportPath);
        var compiled = QbmModel.Load(qbmPath);

        var qatRun = new InferenceSession(qat, new SessionOptions { Threads = 1 });
        var quantizedRun = new InferenceSession(quantized, new SessionOptions { Threads = 1 });
        float lsb = ForeignFixtures.OutputScale(qat, "logits");
        foreach (var (feeds, i) in ForeignFixtures.Inputs().Select((f, i) => (f, i)))
        {
            var reference = qatRun.Run(feeds)["logits"];
            var ours = quantizedRun.Run(feeds)["logits"];
            double cosine = TensorAssert.Cosine(reference, ours), diff = TensorAssert.MaxAbsDiff(reference, ours);
            output.WriteLine($"{file} input {i}: quantized vs qat cosine {cosine:F9}, max |diff| {diff / lsb:F2} LSB");
            Assert.True(cosine >= 0.9999, $"{file} input {i}: quantized vs qat cosine {cosine}");

            var deployed = compiled.Run(feeds)["logits"];
            Assert.Equal(ours.Type, deployed.Type);
            Assert.Equal(ours.Shape, deployed.Shape);
            Assert.True(ours.Bytes().SequenceEqual(deployed.Bytes()), $"{file} input {i}: compiled differs from quantized (max |diff| {TensorAssert.MaxAbsDiff(ours, deployed)})");
        }
    }

    [Theory]
    [InlineData(ForeignFixtures.QOperator, 7001, new[] { "/stem/Conv_quant", "QLinearConv" })]
    [InlineData(ForeignFixtures.PerChannelActivation, 7003, new[] { "stem_out" })]
    // The first weight in graph order, with the zero point as the file stores it (uint8 135, not its int8 image 7).
    [InlineData(ForeignFixtures.AsymmetricWeight, 7004, new[] { "/stem/Conv", "135" })]
    public void Convert_rejects_what_the_integer_contract_cannot_represent(string file, int code, string[] places)
    {
        var dir = TestAssets.TempDir("foreign-reject");
        var quantizedPath = System.IO.Path.Combine(dir, "bad.quantized.onnx");
        var e = Assert.Throws<QuantException>(() => ConvertStage.Run(ForeignFixtures.Path(file), quantizedPath));
        output.WriteLine(e.ToDiagnostic());
        // ErrorCode 7001 ConvertQOperatorModel, 7003 ConvertPerChannelActivation, 7004 ConvertAsymmetricWeight (spec §15).
        Assert.Equal((ErrorCode)code, e.Code);
        Assert.EndsWith(file, e.Where.File);
        foreach (var place in places) Assert.Contains(place, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(dir)); // nothing half-written
    }
}
