using Quant.Core.Calibration;
using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Core.Export;
using Quant.Core.Precision;
using Quant.Core.Tests.Precision;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Core.Tests.Export;

public class QdqExporterTests(ITestOutputHelper output)
{
    private static Dictionary<string, Tensor> Feed(OnnxModel m, int seed)
    {
        var x = m.Graph.Inputs[0];
        var shape = x.Shape!.Select(d => (int)d.Value).ToArray();
        return new() { [x.Name] = Tensor.From(SmallModels.RandomInput(seed, shape.Aggregate(1, (a, b) => a * b)), shape) };
    }

    private static (OnnxModel Qdq, PrecisionPlan Plan) ExportSmall(OnnxModel m, QuantConfig config, List<FusedPair>? fused = null)
    {
        var plan = PrecisionPlanner.Plan(m, config, fused);
        var acts = ExportFixtures.AbsMaxActivations(m, [Feed(m, 1).Values.Single()]);
        return (QdqExporter.Export(m, plan, acts, ExportFixtures.AbsMaxWeights(plan)), plan);
    }

    private static List<Node> Readers(OnnxModel m, string tensor) => m.Graph.Nodes.Where(n => n.Inputs.Contains(tensor)).ToList();

    private static Node Producer(OnnxModel m, string tensor) => m.Graph.Nodes.Single(n => n.Outputs.Contains(tensor));

    [Fact]
    public void One_pair_per_tensor_none_inside_fused_pairs_weights_pre_quantized_bias_float()
    {
        var m = SmallModels.Branchy();
        var fused = new List<FusedPair> { new(m.Graph.Nodes.Single(n => n.Name == "c1"), m.Graph.Nodes.Single(n => n.Name == "r1")) };
        var (q, _) = ExportSmall(m, ExportFixtures.Config(), fused);

        Assert.Equal(13, q.OpsetFor(""));
        // t2 feeds c2, s1 (int8) and pow1 (float32): one shared pair, pow1 reads the float value.
        var t2Readers = Readers(q, "t2");
        Assert.Equal(["QuantizeLinear", "Pow"], t2Readers.Select(n => n.OpType));
        Assert.Equal(["c2", "s1"], Readers(q, "t2_dq").Select(n => n.Name));
        // c1 → r1 fused: r1 reads the conv output directly.
        Assert.Equal(["r1"], Readers(q, "t1").Select(n => n.Name));
        // Weights: int8 initializer through a per-channel DequantizeLinear (axis 0); the float weight is gone; bias stays float.
        var c1 = q.Graph.Nodes.Single(n => n.Name == "c1");
        Assert.Equal(["x_dq", "w1_dq", "b1"], c1.Inputs);
        var wdq = Producer(q, "w1_dq");
        Assert.Equal(("DequantizeLinear", 0L), (wdq.OpType, wdq.GetInt("axis", -1)));
        Assert.Equal(ElementType.Int8, q.Graph.Initializers["w1_q"].Type);
        Assert.Equal([8L], q.Graph.Initializers["w1_scale"].Dims);
        Assert.False(q.Graph.Initializers.ContainsKey("w1"));
        Assert.Equal(ElementType.Float, q.Graph.Initializers["b1"].Type);
        // The int8 Softmax output is a model output: quantized, and the output keeps its name.
        Assert.Equal("DequantizeLinear", Producer(q, "y").OpType);
        Assert.Equal("y_float", Producer(q, "y_q").Inputs[0]);
        Assert.Equal("Softmax", Producer(q, "y_float").OpType);
        Assert.Equal("Pow", Producer(q, "side").OpType);
        q.Graph.TopologicalOrder();
    }

    [Fact]
    public void Weight_axes_int16_opset_21_and_float16_cast_pairs()
    {
        var m = SmallModels.Gemms();
        var config = new QuantConfig
        {
            SourceFile = "q.yaml",
            Preset = Preset.UpperBound,
            Nodes = { ["twice"] = new NodeConfig { NodeName = "twice", QType = QType.Int8 } },
        };
        var (q, plan) = ExportSmall(m, config);
        Assert.True(plan.UsesInt16);
        Assert.Equal(21, q.OpsetFor(""));
        Assert.True(q.IrVersion >= 10);
        foreach (var (w, axis) in new[] { ("wt", 1L), ("bm", 1L), ("bg", 0L) })
        {
            var dq = Producer(q, w + "_dq16");
            Assert.Equal(axis, dq.GetInt("axis", -1));
            Assert.Equal(ElementType.Int16, q.Graph.Initializers[w + "_q16"].Type);
            Assert.Equal(ElementType.Int16, q.Graph.Initializers[w + "_zero_point16"].Type);
        }
        Assert.Equal("Gemm", Producer(q, "out").OpType);
        // GlobalAveragePool and Flatten are float16 under upper_bound: inputs and outputs rounded through Cast pairs.
        var gap = q.Graph.Nodes.Single(n => n.Name == "gap");
        Assert.Equal("u1_fp32", gap.Inputs[0]);
        Assert.Equal(["Cast", "Cast"], new[] { Producer(q, "u1_fp32"), Producer(q, "u1_fp16") }.Select(n => n.OpType));
        Assert.Equal(10L, Producer(q, "u1_fp16").GetInt("to", 0));
        // u2 is rounded once at gap's output and shared: Flatten (float16) reads it without a second pair.
        Assert.Equal("u2_fp32", q.Graph.Nodes.Single(n => n.Name == "fl").Inputs[0]);
        Assert.DoesNotContain(q.Graph.Nodes, n => n.Outputs.Contains("u2_fp32_1"));
        // twice (int8) and mm (int16) read u3 in different qtypes: two pairs.
        Assert.Equal(["u3_q16", "u3_q"], Readers(q, "u3_fp32").Select(n => n.Outputs[0]).Order(StringComparer.Ordinal).Reverse());
    }

    [Fact]
    public void Small_qdq_models_run_in_ort_and_our_engine_with_the_same_results()
    {
        foreach (var (m, preset) in new[] { (SmallModels.Branchy(), Preset.Performance), (SmallModels.Gemms(), Preset.UpperBound), (SmallModels.Gemms(), Preset.Base) })
        {
            var (q, _) = ExportSmall(m, ExportFixtures.Config(preset));
            var dir = TestAssets.TempDir("qdq");
            var path = Path.Combine(dir, "m.qat.onnx");
            OnnxModelWriter.Save(q, path);
            var feed = Feed(m, 2);
            var ort = OrtOracle.Run(path, feed).Outputs;
            var ours = new InferenceSession(OnnxModelReader.Load(path)).Run(feed);
            var reference = new InferenceSession(m).Run(feed);
            foreach (var (name, t) in ort)
            {
                // ORT fuses QDQ groups into integer kernels (QLinearConv, lookup-table Softmax) that round
                // differently from fake quantization, so single quantization steps differ here and there.
                double same = TensorAssert.Cosine(t, ours[name]);
                double cos = TensorAssert.Cosine(reference[name], t);
                output.WriteLine($"{m.Graph.Name} {preset} {name}: ORT vs engine cosine {same:F6}, max |diff| {TensorAssert.MaxAbsDiff(t, ours[name]):G3}; ORT vs float cosine {cos:F6}");
                Assert.True(same >= 0.9999, $"{m.Graph.Name} {preset} {name}: ORT vs engine cosine {same}");
                Assert.True(cos > 0.98, $"{m.Graph.Name} {preset} {name}: cosine {cos}");
            }
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Missing_parameters_are_export_errors_naming_the_tensor()
    {
        var m = SmallModels.Branchy();
        var plan = PrecisionPlanner.Plan(m, ExportFixtures.Config());
        var e = Assert.Throws<QuantException>(() => QdqExporter.Export(m, plan, new Dictionary<string, QuantParams>(), ExportFixtures.AbsMaxWeights(plan)));
        Assert.Equal(ErrorCode.ExportFailed, e.Code);
        Assert.Contains("no calibration parameters for tensor 'x', which node 'c1' (Conv) reads or writes as int8", e.Message);

        var acts = ExportFixtures.AbsMaxActivations(m, [Feed(m, 1).Values.Single()]);
        var weights = ExportFixtures.AbsMaxWeights(plan);
        weights["w2"] = weights["w2"] with { Axis = 1 };
        e = Assert.Throws<QuantException>(() => QdqExporter.Export(m, plan, acts, weights));
        Assert.Contains("weight 'w2' of node 'c2' (Conv) has per-channel parameters along axis 1 with 8 scales; expected axis 0", e.Message);
    }

    [Fact]
    public void Converting_params_between_int8_and_int16_keeps_the_real_range()
    {
        var sym = new QuantParams(QType.Int8, [0.5f], [0], null, "max");
        var s16 = QdqExporter.ConvertTo(sym, QType.Int16);
        Assert.Equal(0.5 * 127 / 32767, s16.Scales[0], 1e-9);
        Assert.Equal(0, s16.ZeroPoints[0]);
        var asym = new QuantParams(QType.Int8, [0.1f], [-28], null, "max");   // real range [-10, 15.5]
        var a16 = QdqExporter.ConvertTo(asym, QType.Int16);
        Assert.Equal(25.5 / 65535, a16.Scales[0], 1e-7);
        Assert.Equal(-10.0, (-32768 - a16.ZeroPoints[0]) * (double)a16.Scales[0], 1e-3);
    }

    [Fact]
    public void Opset_upgrade_keeps_the_meaning_of_old_softmax_clip_and_slice()
    {
        // Opset 11: Softmax over a non-last axis flattens to 2-D; Clip has attribute bounds at opset 10 and below, so use opset 9.
        var g = new Graph { Name = "old" };
        g.Inputs.Add(new ValueInfo("x", ElementType.Float, [2, 3, 4]));
        g.Outputs.Add(new ValueInfo("y", ElementType.Float, [2, 2, 4]));
        var clip = new Node("clip", "Clip", "", ["x"], ["c"]);
        clip.Set(AttributeValue.Of("min", -0.5f));
        clip.Set(AttributeValue.Of("max", 0.75f));
        var slice = new Node("slice", "Slice", "", ["c"], ["s"]);
        slice.Set(AttributeValue.Of("starts", new long[] { 1 }));
        slice.Set(AttributeValue.Of("ends", new long[] { 3 }));
        slice.Set(AttributeValue.Of("axes", new long[] { 1 }));
        var sm = new Node("sm", "Softmax", "", ["s"], ["y"]);
        sm.Set(AttributeValue.Of("axis", 1L));
        g.Nodes.AddRange([clip, slice, sm]);
        var m = new OnnxModel(g) { IrVersion = 4 };
        m.Opsets[""] = 9;

        var config = new QuantConfig { SourceFile = "q.yaml", Model = new ModelConfig { AllNodeType = QType.Float32 } };
        var plan = PrecisionPlanner.Plan(m, config);
        var q = QdqExporter.Export(m, plan, new Dictionary<string, QuantParams>(), new Dictionary<string, QuantParams>());
        Assert.Equal(13, q.OpsetFor(""));
        Assert.Equal(["Clip", "Slice", "Shape", "Flatten", "Softmax", "Reshape"], q.Graph.Nodes.Select(n => n.OpType));
        var dir = TestAssets.TempDir("upgrade");
        try
        {
            OnnxModelWriter.Save(m, Path.Combine(dir, "old.onnx"));
            OnnxModelWriter.Save(q, Path.Combine(dir, "new.onnx"));
            var feed = new Dictionary<string, Tensor> { ["x"] = Tensor.From(SmallModels.RandomInput(5, 24), 2, 3, 4) };
            var before = OrtOracle.Run(Path.Combine(dir, "old.onnx"), feed).Outputs["y"];
            var after = OrtOracle.Run(Path.Combine(dir, "new.onnx"), feed).Outputs["y"];
            TensorAssert.Close(before, after, 1e-6, 1e-7, "softmax/clip/slice after the opset upgrade");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    // ---- the real models ----

    private static readonly Lazy<OnnxModel> Rec = new(() => ExportFixtures.Prepare(TestAssets.RecModel));
    private static readonly Lazy<OnnxModel> Cls = new(() => ExportFixtures.Prepare(TestAssets.ClsModel));

    public static TheoryData<string> RealModels => new() { "rec", "cls" };

    [Theory]
    [MemberData(nameof(RealModels))]
    public void Real_models_export_for_every_preset_run_in_ort_and_stay_close_to_float(string which)
    {
        var (model, raw, calib, eval) = which == "rec"
            ? (Rec.Value, TestAssets.RecModel, OcrSamples.Rec(OcrSamples.RecFiles[0]), OcrSamples.Rec(OcrSamples.RecFiles[1]))
            : (Cls.Value, TestAssets.ClsModel, OcrSamples.Cls(OcrSamples.ClsFiles[0]), OcrSamples.Cls(OcrSamples.ClsFiles[1]));
        var input = model.Graph.RuntimeInputs.Single().Name;
        var feed = new Dictionary<string, Tensor> { [input] = eval };
        var reference = OrtOracle.Run(raw, feed).Outputs;
        var acts = ExportFixtures.AbsMaxActivations(model, [calib]);
        var fused = ExportFixtures.FusedPairs(model);
        var dir = TestAssets.TempDir("qdq-" + which);
        var cosines = new Dictionary<Preset, double>();
        try
        {
            foreach (var preset in Enum.GetValues<Preset>())
            {
                var plan = PrecisionPlanner.Plan(model, ExportFixtures.Config(preset), fused);
                var weights = ExportFixtures.AbsMaxWeights(plan);
                var path = QdqExporter.Save(model, plan, acts, weights, dir, $"{which}-{preset}");
                var bytes = File.ReadAllBytes(path);
                // Byte-identical when planned and exported again.
                var again = QdqExporter.Export(model, PrecisionPlanner.Plan(model, ExportFixtures.Config(preset), fused), acts, ExportFixtures.AbsMaxWeights(plan));
                Assert.True(bytes.AsSpan().SequenceEqual(OnnxModelWriter.ToBytes(again)), $"{which} {preset}: second export differs");

                var ort = OrtOracle.Run(path, feed).Outputs;
                var (name, expected) = reference.Single();
                double cos = TensorAssert.Cosine(expected, ort[name]);
                cosines[preset] = cos;
                output.WriteLine($"{which} {preset}: {Counts(plan)}; {plan.ChangeLog.Count} change(s); {bytes.Length} bytes; cosine vs float {cos:F6}");
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
        // cls: a 2-class softmax, so cosine saturates near 1 and only a loose order check is meaningful.
        // rec with all-int8 absmax scales is far from float (0.80, see docs/config-reference.md, "Measured"): its decomposed
        // LayerNorm/HardSwish and heavy-tailed Conv inputs need better calibration and fusion; these floors guard
        // the present state, not the goal. precision (base with int16 GEMM activations) lands below base here (0.949 vs
        // 0.992 on this one probe with one-sample absmax scales and no graph preparation); through the export stage
        // (graph preparation, max calibration) it is above base on every probe measured (0.970 vs 0.949, ORT plain).
        var floor = which == "cls"
            ? new Dictionary<Preset, double> { [Preset.Performance] = 0.999, [Preset.Base] = 0.999, [Preset.Precision] = 0.999, [Preset.UpperBound] = 0.999 }
            : new Dictionary<Preset, double> { [Preset.Performance] = 0.75, [Preset.Base] = 0.98, [Preset.Precision] = 0.93, [Preset.UpperBound] = 0.995 };
        Assert.All(cosines, kv => Assert.True(kv.Value > floor[kv.Key], $"{which} {kv.Key} cosine {kv.Value} <= {floor[kv.Key]}"));
        Assert.True(cosines[Preset.UpperBound] >= cosines[Preset.Performance] - 1e-6, $"{which}: upper_bound {cosines[Preset.UpperBound]} < performance {cosines[Preset.Performance]}");
        Assert.True(cosines[Preset.Precision] >= cosines[Preset.Performance] - 1e-6, $"{which}: precision {cosines[Preset.Precision]} < performance {cosines[Preset.Performance]}");
    }

    private static string Counts(PrecisionPlan plan) =>
        string.Join(" ", plan.CountByQType().Select(kv => $"{PrecisionPlan.QTypeText(kv.Key)}={kv.Value}"));
}
