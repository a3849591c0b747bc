using Quant.Core.Analysis;
using Quant.Core.Conversion;
using Quant.Core.Stages;
using Quant.Core.Tests.Stages;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Convert;

/// <summary>
/// A Conv + HardSwish with no quantization point between (what graph preparation's hard-swish fusion asks for)
/// becomes one QConv with <c>activation = "HardSwish"</c>: its output equals, bit for bit, the unfused lowering
/// QConv(to = float) → HardSwish → QuantizeLinear run by the same engine and by the compiled .qbm, and stays within one LSB of the qat model
/// run by ONNX Runtime.
/// </summary>
public class ConvHardSwishTests(Xunit.Abstractions.ITestOutputHelper output)
{
    // Inputs over [-6, 6] with input scale 0.05 put conv outputs on both bends of HardSwish (−3 and +3) and beyond.
    private static Tensor Input(int seed)
    {
        var rng = new Random(seed);
        return Tensor.From(Enumerable.Range(0, TinyQat.C * TinyQat.H * TinyQat.W).Select(_ => (float)(rng.NextDouble() * 12 - 6)).ToArray(),
            1, TinyQat.C, TinyQat.H, TinyQat.W);
    }

    private static TinyQat Model() => new() { HardSwish = true, InputScale = 0.05f, OutputScale = 0.03f, OutputZeroPoint = -20, BiasValue = 1.1f };

    [Fact]
    public void Conv_and_hardswish_become_one_qconv_equal_to_the_unfused_chain()
    {
        var dir = TestAssets.TempDir("convert-hardswish");
        var qat = Model().Save(dir);
        var quantized = Path.Combine(dir, "tiny.quantized.onnx");
        var summary = ConvertStage.Run(qat, quantized);

        var conv = Assert.Single(summary.Nodes);
        Assert.Equal(["QConv"], conv.Became);
        Assert.Equal("hs", conv.Fused);
        var model = OnnxModelReader.Load(quantized);
        Assert.Equal(["QuantizeLinear", "QConv", "DequantizeLinear"], model.Graph.Nodes.Select(n => n.OpType));
        var q = model.Graph.Nodes[1];
        Assert.Equal(4, q.Inputs.Count); // X, W, B and the float64 S_m: no multiplier/shift
        Assert.Equal("HardSwish", q.GetString("activation", ""));
        Assert.Equal(0.03f, q.GetFloat("y_scale", 0));
        Assert.Equal(-20, q.GetInt("y_zero_point", 0));

        var unfused = Unfused(quantized);
        Assert.Equal(1, unfused.Graph.Nodes.Count(n => n.OpType == "HardSwish"));

        var fusedRun = new InferenceSession(model);
        var unfusedRun = new InferenceSession(unfused);
        var compiled = Quant.Runtime.QbmModel.Load(Quant.Core.Compilation.CompileStage.Run(quantized, Path.Combine(dir, "tiny.qbm")).QbmPath);
        int bent = 0;
        foreach (var seed in Enumerable.Range(1, 20))
        {
            var feeds = new Dictionary<string, Tensor> { ["x"] = Input(seed) };
            var a = fusedRun.Run(feeds)["y"].ReadOnlySpan<float>().ToArray();
            var b = unfusedRun.Run(feeds)["y"].ReadOnlySpan<float>().ToArray();
            Assert.Equal(b, a);
            // The compiled program runs the same kernel: the same bits.
            Assert.Equal(a, compiled.Run(feeds)["y"].ReadOnlySpan<float>().ToArray());
            bent += a.Count(v => v < 0);
        }
        // The negative lobe of HardSwish (between −3 and 0) was reached, not just the identity part.
        Assert.True(bent > 0);
    }

    /// <summary>
    /// The unfused lowering of the same quantized model by hand: each QConv with an activation writes float, then
    /// the engine's HardSwish, then QuantizeLinear with the QConv's y_scale and y_zero_point.
    /// </summary>
    private static OnnxModel Unfused(string quantized)
    {
        var model = OnnxModelReader.Load(quantized);
        var g = model.Graph;
        int k = 0;
        foreach (var q in g.Nodes.Where(n => n.OpType == "QConv" && n.Has("activation")).ToList())
        {
            var to = (ElementType)q.GetInt("to", 3);
            float ys = q.GetFloat("y_scale", 0);
            long zp = q.GetInt("y_zero_point", 0);
            var y = q.Outputs[0];
            foreach (var a in new[] { "activation", "y_scale", "y_zero_point" }) q.Attributes.Remove(a);
            q.Set(AttributeValue.Of("to", (long)ElementType.Float));
            q.Outputs[0] = $"{y}_unfused_float";
            g.Initializers[$"unfused{k}_scale"] = TensorData.FromFloats($"unfused{k}_scale", [], [ys]);
            g.Initializers[$"unfused{k}_zp"] = to == ElementType.Int8
                ? TensorData.From($"unfused{k}_zp", to, [], new[] { (sbyte)zp }.AsSpan())
                : TensorData.From($"unfused{k}_zp", to, [], new[] { (short)zp }.AsSpan());
            int at = g.Nodes.IndexOf(q);
            g.Nodes.Insert(at + 1, new Node($"unfused{k}_hs", "HardSwish", "", [q.Outputs[0]], [$"{y}_unfused_hs"]));
            g.Nodes.Insert(at + 2, new Node($"unfused{k}_q", "QuantizeLinear", "", [$"{y}_unfused_hs", $"unfused{k}_scale", $"unfused{k}_zp"], [y]));
            k++;
        }
        model.Opsets[""] = Math.Max(model.Opsets.GetValueOrDefault(""), 14);
        return model;
    }

    [Fact]
    public void Fused_qconv_stays_within_one_lsb_of_the_qat_model_under_onnx_runtime()
    {
        var dir = TestAssets.TempDir("convert-hardswish-ort");
        var qat = Model().Save(dir);
        var quantized = Path.Combine(dir, "tiny.quantized.onnx");
        ConvertStage.Run(qat, quantized);
        using var ort = new Quant.Core.DeploymentRuntime.OrtRunner(qat);
        var ours = new InferenceSession(OnnxModelReader.Load(quantized));
        int flips = 0, total = 0;
        foreach (var seed in Enumerable.Range(1, 10))
        {
            var feeds = new Dictionary<string, Tensor> { ["x"] = Input(seed) };
            var a = ort.Run(feeds)["y"].ReadOnlySpan<float>().ToArray();
            var b = ours.Run(feeds)["y"].ReadOnlySpan<float>().ToArray();
            for (int i = 0; i < a.Length; i++)
            {
                double d = Math.Abs(a[i] - b[i]) / 0.03;
                Assert.True(d < 1.0001, $"seed {seed}, element {i}: qat {a[i]}, quantized {b[i]} differ by {d} LSB");
                if (d > 0.5) flips++;
            }
            total += a.Length;
        }
        Assert.True(flips <= total / 20, $"{flips} of {total} outputs flipped");
    }

    /// <summary>
    /// The real det (performance preset) with its PP-LCNetV3 affines folded so its convs feed their HardSwish directly
    /// (<see cref="LcnetAffine"/>): export → convert fuses them into QConvs with the HardSwish epilogue; every integer
    /// node is within 1 LSB of the qat run (spec §4.5, ties only), the output within quantized_vs_qat's default
    /// bound (the lower of the ±1-ulp and ±1-LSB flip floors), the fused model equals its unfused lowering bit for bit, and the compiled .qbm equals both.
    /// </summary>
    [Fact]
    public void Real_det_with_conv_hardswish_fuses_and_matches_qat_unfused_and_compiled()
    {
        var dir = TestAssets.TempDir("convert-hardswish-det");
        var floatModel = OnnxModelReader.Load(TestAssets.DetModel);
        int folded = LcnetAffine.Fold(floatModel);
        Assert.True(folded >= 20, $"only {folded} Conv → Mul → Add affines folded");
        var floatPath = Path.Combine(dir, "det-folded.onnx");
        OnnxModelWriter.Save(floatModel, floatPath);
        var cfg = ExportConfigs.Write(dir, ExportConfigs.Yaml(ExportConfigs.DetData, "performance", "max", ExportConfigs.DetPreprocessing));
        var export = ExportStage.Run(new ExportRequest { ModelPath = floatPath, ConfigPath = cfg, OutputDirectory = dir, Name = "m", SelectionSamples = 2 });
        var quantized = Path.Combine(dir, ConvertStage.FileName("m"));
        var summary = ConvertStage.Run(export.QatModelPath, quantized);
        int fused = summary.Nodes.Count(n => n.OpType == "Conv" && n.Fused is not null && n.Fused.StartsWith("hardswish", StringComparison.Ordinal));
        output.WriteLine($"{folded} affines folded; {fused} Conv + HardSwish fused; {summary.FloatIslands} float islands");
        Assert.True(fused >= 20, $"only {fused} Conv + HardSwish groups fused");

        var x = OcrSamples.Det(OcrSamples.DetFiles[1], 320, 320);
        var feeds = new Dictionary<string, Tensor> { ["x"] = x };
        var r = NodeLockstep.Run(export.QatModelPath, quantized, feeds);
        output.WriteLine($"node by node: {r.Flips} of {r.Elements} integers 1 LSB off; worst node {r.WorstNode} {r.WorstNodeShare:E2}");
        Assert.True(r.MaxDifference <= 1, $"an integer node is {r.MaxDifference} LSB off the qat run");
        Assert.True(r.Flips <= r.Elements / 100, $"{r.Flips} of {r.Elements} integers off by 1 LSB");

        // quantized_vs_qat's default bound (spec §14, Checks/DefaultBounds): the lower of the export's ±1-ulp floor and
        // the ±1-LSB requantization-flip floor on this sample, then 1 − 2·(1 − floor).
        var ours = new InferenceSession(OnnxModelReader.Load(quantized)).Run(feeds);
        var qatSession = new InferenceSession(OnnxModelReader.Load(export.QatModelPath));
        var flips = LastBitStability.MeasureRequantizationFlips(qatSession, feeds);
        foreach (var (name, t) in qatSession.Run(feeds))
        {
            double floor = Math.Min(export.Stability.FirstOrDefault(s => s.Output == name)?.MinCosine ?? 1,
                flips.FirstOrDefault(s => s.Output == name)?.MinCosine ?? 1);
            double bound = Math.Min(0.9999, 1 - 2 * (1 - floor));
            double cos = Similarity.Of(ours[name], t).Cosine;
            output.WriteLine($"'{name}': quantized vs qat cosine {cos:F7} (bound {bound:F6})");
            Assert.True(cos >= bound, $"'{name}': cosine {cos:F7} < {bound:F6}");
        }

        var unfused = new InferenceSession(Unfused(quantized)).Run(feeds);
        var compiled = Quant.Runtime.QbmModel.Load(Quant.Core.Compilation.CompileStage.Run(quantized, Path.Combine(dir, "m.qbm"),
            new Quant.Core.Compilation.CompileOptions { InputShapes = new Dictionary<string, int[]> { ["x"] = [1, 3, 320, 320] } }).QbmPath,
            new Quant.Runtime.QbmRunOptions { Threads = 2 }).Run(feeds);
        foreach (var (name, t) in ours)
        {
            Assert.Equal(t.ReadOnlySpan<float>().ToArray(), unfused[name].ReadOnlySpan<float>().ToArray());
            Assert.Equal(t.ReadOnlySpan<float>().ToArray(), compiled[name].ReadOnlySpan<float>().ToArray());
        }
    }
}
