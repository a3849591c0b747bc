using Quant.Core.Analysis;
using Quant.Core.Conversion;
using Quant.Core.Stages;
using Quant.Core.Tests.Stages;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Precision;

/// <summary>
/// The J6 precision preset (int16 GEMM activations with int8 weights, int16 x int16 attention MatMuls, float16 elsewhere)
/// through the real export, convert and compile stages on PaddleOCR rec: the preset's bias correction keeps every bias
/// in the int32 range, every GEMM becomes an integer op, the quantized model computes what the qat model computes and the
/// compiled model exactly what the quantized model computes.
/// </summary>
public class PrecisionPresetConvertTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public void Rec_precision_preset_converts_to_integer_gemms_matching_the_qat_model()
    {
        var dir = TestAssets.TempDir("precision-convert");
        var cfg = ExportConfigs.Write(dir, ExportConfigs.Yaml(ExportConfigs.RecData, "precision", "max", ExportConfigs.RecPreprocessing));
        var export = ExportStage.Run(new ExportRequest { ModelPath = TestAssets.RecModel, ConfigPath = cfg, OutputDirectory = dir, Name = "rec" });
        var quantized = Path.Combine(dir, ConvertStage.FileName("rec"));
        var summary = ConvertStage.Run(export.QatModelPath, quantized);
        var gemms = summary.Nodes.Where(n => n.OpType is "Conv" or "MatMul" or "Gemm").ToList();
        output.WriteLine($"{summary.IntegerGroups} integer groups, {summary.FloatIslands} float islands; GEMMs: " +
            string.Join(", ", gemms.GroupBy(n => n.FloatIsland is null ? string.Join("+", n.Became) : "float island: " + n.FloatIsland).Select(g => $"{g.Key} x{g.Count()}")));
        Assert.Equal(51, gemms.Count);
        Assert.All(gemms, n => Assert.Null(n.FloatIsland));

        // The preset corrects biases by default; every corrected bias still fits half the int32 range at the exported
        // input x weight scale (Int32BiasFit's promise, which the integer contract quantizes the bias with).
        Assert.True(export.Config.Model.Weight.BiasCorrection);
        using (var report = System.Text.Json.JsonDocument.Parse(File.ReadAllText(export.ModelCheckJsonPath)))
        {
            int kept = report.RootElement.GetProperty("bias_correction").GetProperty("layers").EnumerateArray().Count(l => l.GetProperty("applied").GetBoolean());
            output.WriteLine($"bias correction kept in {kept} layers");
            Assert.True(kept > 0, "no layer's bias was corrected");
        }
        var qatModel = OnnxModelReader.Load(export.QatModelPath);
        var producers = qatModel.Graph.Producers();
        float[] Scales(string tensor) => qatModel.Graph.Initializers[producers[tensor].Inputs[1]].As<float>().ToArray();
        int biases = 0;
        foreach (var n in qatModel.Graph.Nodes.Where(n => n.OpType == "Conv" && n.Inputs.Count > 2))
        {
            var b = qatModel.Graph.Initializers[n.Inputs[2]].As<float>().ToArray();
            float sx = Scales(n.Inputs[0]).Single();
            var sw = Scales(n.Inputs[1]);
            for (int m = 0; m < b.Length; m++)
                Assert.True(Math.Abs(b[m]) <= (double)sx * sw[m % sw.Length] * int.MaxValue * 0.5, $"{n.Name} channel {m}: bias {b[m]} beyond half the int32 range");
            biases++;
        }
        Assert.True(biases >= 30, $"only {biases} Conv biases checked");

        var qat = new InferenceSession(qatModel);
        var ours = new InferenceSession(OnnxModelReader.Load(quantized));
        foreach (var file in OcrSamples.RecFiles)
        {
            var feeds = new Dictionary<string, Tensor> { ["x"] = OcrSamples.Rec(file) };
            var reference = qat.Run(feeds);
            // The quantized_vs_qat check's default bound: requantization ties flip whole integer steps (spec §14), so
            // the floor is the lower of the last-bit floor and the 1-LSB flip floor, here measured on each sample.
            var flips = LastBitStability.MeasureRequantizationFlips(qat, feeds);
            foreach (var (name, t) in ours.Run(feeds))
            {
                double floor = Math.Min(export.Stability.First(s => s.Output == name).MinCosine, flips.First(s => s.Output == name).MinCosine);
                double bound = Math.Min(0.9999, 1 - 2 * (1 - floor)), cos = Similarity.Of(t, reference[name]).Cosine;
                output.WriteLine($"{file} '{name}': quantized vs qat {cos:F7} (floor {floor:F7}, bound {bound:F7})");
                Assert.True(cos >= bound, $"{file} '{name}': quantized vs qat cosine {cos} < {bound}");
            }
        }

        // And the compiled model computes what the quantized model computes, bit for bit (biases corrected or not).
        var qbm = Path.Combine(dir, "rec.qbm");
        Quant.Core.Compilation.CompileStage.Run(quantized, qbm);
        var compiled = Quant.Runtime.QbmModel.Load(qbm);
        var probe = new Dictionary<string, Tensor> { ["x"] = OcrSamples.Rec(OcrSamples.RecFiles[0]) };
        var expected = ours.Run(probe);
        foreach (var (name, actual) in compiled.Run(probe))
            Assert.True(expected[name].Bytes().SequenceEqual(actual.Bytes()), $"compiled output '{name}' differs from the quantized model's");
        Directory.Delete(dir, true);
    }
}
