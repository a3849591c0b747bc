using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Configuration;

public sealed class QuantConfigLoaderTests : IDisposable
{
    private readonly string _dir = TestAssets.TempDir("config");

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text.ReplaceLineEndings("\n"));
        return path;
    }

    private QuantConfig LoadYaml(string text) => QuantConfigLoader.Load(Write("q.yaml", text));

    /// <summary>Loads <paramref name="text"/> expecting a failure; checks code, position and message fragments.</summary>
    private QuantException Fails(string text, ErrorCode code, int line, int column, params string[] fragments)
    {
        var path = Write("bad.yaml", text);
        var e = PositionedError.Expect(() => QuantConfigLoader.Load(path), code, line, column, fragments);
        Assert.True(path == e.Where.File, e.ToDiagnostic());
        return e;
    }

    private const string Full = """
        preset: upper_bound
        model_config:
          all_node_type: int16
          model_output_type: float32
          activation:
            calibration_type: percentile
            max_percentile: 0.9999
            per_channel: true
            asymmetric: [true, false]
            num_bin: 1024
          weight:
            per_channel: false
            bias_correction: true
        op_config:
          Softmax: {qtype: float16}
        node_config:
          Conv_12:
            qtype: int16
            input0: int16
            input1: ec
            scale: 0.01
          Relu_3: {threshold: 3.2}
        subgraph_config:
          head:
            inputs: [a, b]
            outputs: [c]
            qtype: int16
        inputs:
          x:
            data: ["calib/*.npy", "more/**/*.npz"]
            dtype: uint8
            shape: [1, 3, 48, 320]
            layout: NHWC
            scale: 1/255
            mean: [0.485, 0.456, 0.406]
            std: [0.229, 0.224, 0.225]
            channel_order: bgr_to_rgb
        calibration: {samples: 32, batch_size: 2}
        """;

    [Fact]
    public void EveryKeyIsReadWithItsPosition()
    {
        var c = LoadYaml(Full);
        Assert.Equal(Preset.UpperBound, c.Preset);
        Assert.Equal((1, 9), (c.PresetPosition.Line, c.PresetPosition.Column));
        Assert.Equal(QType.Int16, c.Model.AllNodeType);
        Assert.Equal((3, 18), (c.Model.AllNodeTypePosition.Line, c.Model.AllNodeTypePosition.Column));
        Assert.Equal(QType.Float32, c.Model.ModelOutputType);
        var a = c.Model.Activation;
        Assert.Equal([CalibrationMethod.Percentile], a.CalibrationTypes);
        Assert.Equal([0.9999], a.MaxPercentiles);
        Assert.Equal([true], a.PerChannel);
        Assert.Equal([true, false], a.Asymmetric);
        Assert.Equal(1024, a.NumBins);
        Assert.Equal((9, 17), (a.AsymmetricPosition.Line, a.AsymmetricPosition.Column));
        Assert.False(c.Model.Weight.PerChannel);
        Assert.True(c.Model.Weight.BiasCorrection);
        Assert.Null(c.Model.Weight.BiasCorrectionMetric);

        Assert.Equal(QType.Float16, c.OpTypes["Softmax"].QType);
        Assert.Equal((15, 3), (c.OpTypes["Softmax"].Position.Line, c.OpTypes["Softmax"].Position.Column));
        var conv = c.Nodes["Conv_12"];
        Assert.Equal(QType.Int16, conv.QType);
        Assert.Equal(new InputQType(QType.Int16, false, new SourcePosition(c.SourceFile, 19, 13)), conv.Inputs[0]);
        Assert.True(conv.Inputs[1].ErrorCompensation);
        Assert.Null(conv.Inputs[1].QType);
        Assert.Equal(0.01f, conv.Scale);
        Assert.Null(conv.Threshold);
        Assert.Equal((17, 3), (conv.Position.Line, conv.Position.Column));
        Assert.Equal(3.2f, c.Nodes["Relu_3"].Threshold);
        var head = c.Subgraphs["head"];
        Assert.Equal(["a", "b"], head.Inputs);
        Assert.Equal(["c"], head.Outputs);
        Assert.Equal(QType.Int16, head.QType);
        Assert.Equal([(25, 14), (25, 17)], head.InputPositions.Select(p => (p.Line, p.Column)));

        var x = c.Inputs["x"];
        Assert.Equal(["calib/*.npy", "more/**/*.npz"], x.Data);
        Assert.Equal([(30, 12), (30, 27)], x.DataPositions.Select(p => (p.Line, p.Column)));
        Assert.Equal(ElementType.UInt8, x.StoredType);
        Assert.Equal([1, 3, 48, 320], x.Shape!);
        Assert.Equal(DataLayout.NHWC, x.Layout);
        Assert.Equal((1f, 255f), (x.Scale, x.ScaleDivisor));
        Assert.Equal([0.485f, 0.456f, 0.406f], x.Mean!);
        Assert.Equal([0.229f, 0.224f, 0.225f], x.Std!);
        Assert.Equal(ChannelOrder.BgrToRgb, x.ChannelOrder);
        Assert.Equal(32, c.Calibration.Samples);
        Assert.Equal(2, c.Calibration.BatchSize);
        Assert.Equal((38, 40), (c.Calibration.BatchSizePosition.Line, c.Calibration.BatchSizePosition.Column));
        Assert.Null(c.Checks);
        Assert.Equal(_dir, c.BaseDirectory);
    }

    [Fact]
    public void DefaultsApplyWhenSectionsAreAbsent()
    {
        var c = LoadYaml("inputs: {x: {data: a.npy}}\n");
        Assert.Null(c.Preset);
        Assert.Null(c.Model.AllNodeType);
        Assert.Equal([CalibrationMethod.Default], c.Model.Activation.CalibrationTypes);
        Assert.Equal(2048, c.Model.Activation.NumBins);
        Assert.True(c.Model.Weight.PerChannel);
        Assert.False(c.Model.Weight.BiasCorrection);
        Assert.Null(c.Calibration.Samples);
        Assert.Equal(1, c.Calibration.BatchSize);
        var x = c.Inputs["x"];
        Assert.Equal((1f, 1f, DataLayout.NCHW, ChannelOrder.Keep), (x.Scale, x.ScaleDivisor, x.Layout, x.ChannelOrder));
        Assert.False(x.HasPreprocessing);
        Assert.Empty(LoadYaml("").Inputs);
    }

    /// <summary>HMCT's own layout as hb_compile yamls carry it: nested under quant_config, candidate lists, bias_correction as a mapping.</summary>
    private const string Hmct = """
        quant_config:
          model_config:
            all_node_type: int8
            model_output_type: int8
            activation:
              calibration_type: ['max', 'kl']
              max_percentile: [0.99995, 1.0]
              per_channel: [true, false]
              asymmetric: [true]
              num_bin: [1024, 2048]
            weight:
              bias_correction:
                metric: mae
          op_config:
            Softmax: {qtype: float16}
          node_config:
            p2o.Conv.0: {qtype: int16, input0: float16}
          subgraph_config:
            neck:
              inputs: [conv2d_1.tmp_0]
              outputs: [sigmoid_0.tmp_0]
              qtype: int16
        """;

    [Fact]
    public void HmctLayoutNestedUnderQuantConfigIsAccepted()
    {
        var c = LoadYaml(Hmct);
        AssertHmct(c);
        Assert.Equal((15, 5), (c.OpTypes["Softmax"].Position.Line, c.OpTypes["Softmax"].Position.Column));
    }

    [Theory]
    [InlineData("preset: performance\n", true)]
    [InlineData("preset: performance\nmodel_config:\n  weight:\n    per_channel: true\n", true)]
    [InlineData("preset: performance\nmodel_config:\n  activation:\n    calibration_type: max\n", true)]
    [InlineData("preset: performance\nmodel_config:\n  activation:\n    asymmetric: false\n", false)]
    [InlineData("preset: base\n", false)]
    [InlineData("preset: precision\nmodel_config:\n  activation:\n    calibration_type: max\n", false)]
    [InlineData("model_config:\n  all_node_type: int8\n", false)]
    public void Performance_quantizes_activations_asymmetrically_unless_the_config_says_otherwise(string yaml, bool expected)
    {
        Assert.Equal([expected], LoadYaml(yaml).Model.Activation.Asymmetric);
    }

    [Theory]
    [InlineData("preset: precision\n", true)]
    [InlineData("preset: precision\nmodel_config:\n  activation:\n    calibration_type: max\n", true)]
    [InlineData("preset: precision\nmodel_config:\n  weight:\n    per_channel: true\n", true)]
    [InlineData("preset: precision\nmodel_config:\n  weight:\n    bias_correction: false\n", false)]
    [InlineData("preset: base\n", false)]
    [InlineData("preset: upper_bound\n", false)]
    [InlineData("preset: performance\n", false)]
    [InlineData("model_config:\n  all_node_type: int16\n", false)]
    public void Precision_corrects_biases_unless_the_config_says_otherwise(string yaml, bool expected)
    {
        var w = LoadYaml(yaml).Model.Weight;
        Assert.Equal(expected, w.BiasCorrection);
        // The preset's default is the plain `true`: the default metric and sample count.
        Assert.Null(w.BiasCorrectionMetric);
        Assert.Null(w.BiasCorrectionSamples);
    }

    [Fact]
    public void Precision_takes_bias_correction_options_from_the_config()
    {
        var w = LoadYaml("preset: precision\nmodel_config:\n  weight:\n    bias_correction: {metric: mae, num_sample: 4}\n").Model.Weight;
        Assert.True(w.BiasCorrection);
        Assert.Equal("mae", w.BiasCorrectionMetric);
        Assert.Equal(4, w.BiasCorrectionSamples);
    }

    private static void AssertHmct(QuantConfig c)
    {
        Assert.Equal(QType.Int8, c.Model.AllNodeType);
        var a = c.Model.Activation;
        Assert.Equal([CalibrationMethod.Max, CalibrationMethod.Kl], a.CalibrationTypes);
        Assert.Equal([0.99995, 1.0], a.MaxPercentiles);
        Assert.Equal([true, false], a.PerChannel);
        Assert.Equal([true], a.Asymmetric);
        Assert.Equal([1024, 2048], a.NumBinCandidates);
        Assert.Equal(1024, a.NumBins);
        Assert.True(c.Model.Weight.BiasCorrection);
        Assert.Equal("mae", c.Model.Weight.BiasCorrectionMetric);
        Assert.True(c.Model.Weight.PerChannel);
        Assert.Equal(QType.Float16, c.OpTypes["Softmax"].QType);
        Assert.Equal(QType.Float16, c.Nodes["p2o.Conv.0"].Inputs[0].QType);
        Assert.Equal(["conv2d_1.tmp_0"], c.Subgraphs["neck"].Inputs);
    }

    [Fact]
    public void HmctJsonWithTabsIsAccepted()
    {
        var json = "{\n\t\"model_config\": {\n\t\t\"all_node_type\": \"int8\",\n\t\t\"model_output_type\": \"int8\",\n" +
                   "\t\t\"activation\": {\"calibration_type\": [\"max\", \"kl\"], \"max_percentile\": [0.99995, 1.0], \"per_channel\": [true, false],\n" +
                   "\t\t\t\"asymmetric\": [true], \"num_bin\": [1024, 2048]},\n" +
                   "\t\t\"weight\": {\"bias_correction\": {\"metric\": \"mae\"}}\n\t},\n" +
                   "\t\"op_config\": {\"Softmax\": {\"qtype\": \"float16\"}},\n" +
                   "\t\"node_config\": {\"p2o.Conv.0\": {\"qtype\": \"int16\", \"input0\": \"float16\"}},\n" +
                   "\t\"subgraph_config\": {\"neck\": {\"inputs\": [\"conv2d_1.tmp_0\"], \"outputs\": [\"sigmoid_0.tmp_0\"], \"qtype\": \"int16\"}}\n}\n";
        var c = QuantConfigLoader.Load(Write("q.json", json));
        AssertHmct(c);
        Assert.Equal((9, 16), (c.OpTypes["Softmax"].Position.Line, c.OpTypes["Softmax"].Position.Column));

        var e = Assert.Throws<QuantException>(() => QuantConfigLoader.Load(Write("bad.json", "{\n\t\"model_config\": {\"all_node_typ\": \"int8\"}\n}\n")));
        Assert.Equal(ErrorCode.ConfigUnknownKey, e.Code);
        Assert.Equal((2, 19), (e.Where.Line, e.Where.Column));
        Assert.Contains("did you mean 'all_node_type'?", e.Message);
    }

    [Fact]
    public void UnknownKeyNamesKeyPositionAllowedKeysAndNearest()
    {
        var e = Fails("model_config:\n  activation:\n    calibraton_type: max\n", ErrorCode.ConfigUnknownKey, 3, 5,
            "unknown key 'calibraton_type' in model_config.activation; did you mean 'calibration_type'?",
            "Allowed keys: calibration_type, max_percentile, per_channel, asymmetric, num_bin");
        Assert.Equal($"{e.Where.File}(3,5): error QB1002: {e.Message}", e.ToDiagnostic());
        Fails("preset: base\ncalibrate: {samples: 3}\n", ErrorCode.ConfigUnknownKey, 2, 1, "unknown key 'calibrate' at the top level; did you mean 'calibration'?");
        Fails("node_config:\n  Conv_1: {qtype: int8, inptu0: int16}\n", ErrorCode.ConfigUnknownKey, 2, 25, "did you mean 'input0'?", "one per node input");
        Fails("inputs:\n  x: {data: a.npy, means: [1]}\n", ErrorCode.ConfigUnknownKey, 2, 20, "did you mean 'mean'?");
        Fails("zzz: 1\n", ErrorCode.ConfigUnknownKey, 1, 1, "unknown key 'zzz' at the top level. Allowed keys: preset, inputs");
        Fails("model_config:\n  modelwise_search: {metric: mae}\n", ErrorCode.ConfigUnknownKey, 2, 3, "not supported by Quant.Build");
    }

    [Fact]
    public void LayerwiseSearchIsOffUnlessAskedForAndTakesASampleCount()
    {
        Assert.Null(LoadYaml("model_config: {all_node_type: int8}\n").Model.LayerwiseSearch);
        Assert.Null(LoadYaml("model_config: {layerwise_search: false}\n").Model.LayerwiseSearch);
        Assert.Equal(LayerwiseSearchConfig.DefaultSamples, LoadYaml("model_config: {layerwise_search: true}\n").Model.LayerwiseSearch!.Samples);
        Assert.Equal(2, LoadYaml("model_config:\n  layerwise_search: {samples: 2}\n").Model.LayerwiseSearch!.Samples);
        // HMCT's own options for its search are not ours: rejected, not ignored.
        Fails("model_config:\n  layerwise_search: {metric: cosine}\n", ErrorCode.ConfigUnknownKey, 2, 22, "unknown key 'metric'", "Allowed keys: samples");
    }

    [Fact]
    public void WrongTypesNameTheExpectedType()
    {
        Fails("model_config:\n  activation:\n    max_percentile: abc\n", ErrorCode.ConfigWrongType, 3, 21,
            "model_config.activation.max_percentile: expected a number, got 'abc'");
        Fails("model_config:\n  activation:\n    num_bin: 2.5\n", ErrorCode.ConfigWrongType, 3, 14, "expected an integer, got '2.5'");
        Fails("calibration: {samples: many}\n", ErrorCode.ConfigWrongType, 1, 24, "calibration.samples: expected an integer, got 'many'");
        Fails("model_config:\n  weight: {per_channel: yes}\n", ErrorCode.ConfigWrongType, 2, 25, "expected true or false, got 'yes'");
        Fails("model_config:\n  weight: {equalization: {high_bias_absorption: true}}\n", ErrorCode.ConfigWrongType, 2, 26, "model_config.weight.equalization");
        Assert.True(LoadYaml("model_config:\n  weight: {equalization: true}\n").Model.Weight.Equalization);
        Assert.False(LoadYaml("model_config:\n  weight: {per_channel: true}\n").Model.Weight.Equalization);
        Fails("model_config: [1, 2]\n", ErrorCode.ConfigWrongType, 1, 15, "model_config: expected a mapping, got a list");
        Fails("inputs: {x: {data: a.npy, shape: 4}}\n", ErrorCode.ConfigWrongType, 1, 34, "inputs.x.shape: expected a list, got '4'");
        Fails("inputs: {x: {data: a.npy, scale: 1/abc}}\n", ErrorCode.ConfigWrongType, 1, 34, "expected a number or a fraction like 1/255, got '1/abc'");
        Fails("model_config:\n  all_node_type:\n", ErrorCode.ConfigWrongType, 2, 17, "expected one of int8, int16, float16, float32, got nothing");
        Fails("- a\n- b\n", ErrorCode.ConfigWrongType, 1, 1, "a config is a mapping of sections");
    }

    [Theory]
    [InlineData("model_config: {all_node_type: int6}", 1, 31, "'int6' is not one of int8, int16, float16, float32; did you mean 'int8'?")]
    [InlineData("op_config: {Softmax: {qtype: fp16}}", 1, 30, "op_config.Softmax.qtype: 'fp16' is not one of")]
    [InlineData("node_config: {a: {input1: int4}}", 1, 27, "'int4' is not one of int8, int16, float16, float32, ec")]
    [InlineData("model_config: {activation: {calibration_type: [max, entropy]}}", 1, 53, "calibration_type[1]: 'entropy' is not one of default, max, percentile, kl, mse, fixed")]
    [InlineData("model_config: {activation: {max_percentile: 1.5}}", 1, 45, "1.5 is outside (0, 1]")]
    [InlineData("model_config: {activation: {max_percentile: 0}}", 1, 45, "0 is outside (0, 1]")]
    [InlineData("model_config: {activation: {num_bin: -5}}", 1, 38, "-5 bins is not a usable histogram")]
    [InlineData("model_config: {activation: {num_bin: [2048, 1]}}", 1, 45, "num_bin[1]: 1 bins is not a usable histogram; give a count from 2 to 1048576")]
    [InlineData("model_config: {layerwise_search: {samples: 0}}", 1, 44, "model_config.layerwise_search.samples: 0 must be from 1 to 64")]
    [InlineData("model_config: {activation: {calibration_type: []}}", 1, 47, "the list is empty")]
    [InlineData("calibration: {batch_size: 0}", 1, 27, "calibration.batch_size: 0 must be at least 1")]
    [InlineData("calibration: {samples: -1}", 1, 24, "calibration.samples: -1 must be at least 1")]
    [InlineData("preset: fast", 1, 9, "preset: 'fast' is not one of performance, base, precision, upper_bound")]
    [InlineData("inputs: {x: {data: a.npy, std: [1, 0, 1]}}", 1, 36, "inputs.x.std[1]: a std of 0 divides by zero")]
    [InlineData("inputs: {x: {data: a.npy, shape: [1, 0]}}", 1, 38, "inputs.x.shape[1]: 0 is not a dimension")]
    [InlineData("inputs: {x: {data: a.npy, scale: 0}}", 1, 34, "give a finite non-zero scale")]
    [InlineData("inputs: {x: {data: a.npy, layout: CHW}}", 1, 35, "'CHW' is not one of NCHW, NHWC")]
    [InlineData("inputs: {x: {data: a.npy, dtype: float}}", 1, 34, "'float' is not one of float32")]
    [InlineData("inputs: {x: {dtype: uint8}}", 1, 10, "inputs.x: 'data' is required")]
    [InlineData("node_config: {a: {scale: -1}}", 1, 26, "node_config.a.scale: -1 must be greater than 0")]
    [InlineData("node_config: {a: {scale: 0.1, threshold: 3}}", 1, 42, "give either scale or threshold")]
    [InlineData("subgraph_config: {s: {inputs: [a], qtype: int16}}", 1, 19, "subgraph_config.s: 'outputs' is required")]
    [InlineData("model_config: {weight: {bias_correction: {metric: mae, num_sample: 0}}}", 1, 68, "num_sample: 0 must be at least 1")]
    [InlineData("model_config: {weight: {bias_correction: {metric: sqnr}}}", 1, 51, "bias_correction.metric: 'sqnr' is not one of cosine, mse, mae")]
    [InlineData("quant_config: {model_config: {}}\nmodel_config: {}", 1, 16, "repeats the top-level 'model_config' at line 2")]
    public void InvalidValuesArePositionedAtTheValue(string yaml, int line, int column, string message) =>
        Fails(yaml + "\n", ErrorCode.ConfigInvalidValue, line, column, message);

    [Fact]
    public void SyntaxErrorsArePositioned()
    {
        var e = Fails("model_config:\n  activation: {num_bin: 3\n", ErrorCode.ConfigSyntax, 3, 1, "not valid YAML/JSON");
        Assert.DoesNotContain("Line:", e.Message);
        Fails("a: 1\n---\nb: 2\n", ErrorCode.ConfigSyntax, 3, 1, "several YAML documents");
        Fails("preset: base\npreset: performance\n", ErrorCode.ConfigSyntax, 2, 1, "Duplicate key");
    }

    [Fact]
    public void ChecksIsKeptWithItsPositions()
    {
        // The schema itself is tested in Checks/ChecksConfigTests.
        var c = LoadYaml("preset: base\nchecks:\n  anything: {cosine: {min: 0.9}}\n  here: {l1: {max: 3}}\n");
        Assert.NotNull(c.Checks);
        Assert.Equal((2, 1), (c.ChecksPosition.Line, c.ChecksPosition.Column));
        var first = c.Checks!.Children.First();
        Assert.Equal("anything", first.Key.ToString());
        Assert.Equal(3, first.Key.Start.Line);
        Fails("checks: 3\n", ErrorCode.ConfigWrongType, 1, 9, "checks: expected a mapping, got '3'");
    }

    [Fact]
    public void MissingFileIsReported()
    {
        var e = Assert.Throws<QuantException>(() => QuantConfigLoader.Load(Path.Combine(_dir, "nope.yaml")));
        Assert.Equal(ErrorCode.ConfigFileNotFound, e.Code);
        Assert.Equal(0, e.Where.Line);
        Assert.Contains("nope.yaml' does not exist", e.Message);
    }

    [Theory]
    [InlineData("calibraton_type", "calibration_type", 1)]
    [InlineData("per_chanel", "per_channel", 1)]
    [InlineData("inptu0", "input0", 1)]
    [InlineData("abc", "abc", 0)]
    [InlineData("kitten", "sitting", 3)]
    public void EditDistanceCountsTranspositionsAsOne(string a, string b, int expected) =>
        Assert.Equal(expected, YamlReader.Distance(a, b));
}
