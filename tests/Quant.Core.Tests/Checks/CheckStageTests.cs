using System.Xml.Linq;
using Quant.Core.Checks;
using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Core.Stages;
using Quant.TestSupport;

namespace Quant.Core.Tests.Checks;

/// <summary>The real cls model exported once (max calibration, the committed samples) for every check test.</summary>
public sealed class ClsExport
{
    public const string Output = "softmax_0.tmp_0";
    public string Dir { get; } = TestAssets.TempDir("check-stage");
    /// <summary>The shipped sample's model is moving while issue 4 lands; this is the same file from the asset cache.</summary>
    public string Model { get; } = TestAssets.ClsModel;
    public string Qat { get; }

    /// <summary>The export config; a check config is this plus a checks: section, which starts at line <see cref="ChecksLine"/>.</summary>
    public string Base { get; } =
        "model_config:\n" +
        "  activation:\n" +
        "    calibration_type: max\n" +
        "inputs:\n" +
        "  x:\n" +
        $"    data: \"{Path.Combine(TestAssets.Data("ppocr-cls"), "cls_*.npy").Replace('\\', '/')}\"\n" +
        "    scale: 1/255\n" +
        "    mean: 0.5\n" +
        "    std: 0.5\n";

    public const int ChecksLine = 10;

    public ClsExport()
    {
        var cfg = Path.Combine(Dir, "export.yaml");
        File.WriteAllText(cfg, Base);
        Qat = ExportStage.Run(new ExportRequest { ModelPath = Model, ConfigPath = cfg, OutputDirectory = Path.Combine(Dir, "export"), Name = "cls" }).QatModelPath;
    }

    public string Config(string checks)
    {
        var path = Path.Combine(TestAssets.TempDir("check-config"), "cls.quant.yaml");
        File.WriteAllText(path, Base + checks);
        return path;
    }

    /// <summary>A check of qat_vs_float only (runtime_vs_qat has its own tests: RuntimeCheckTests).</summary>
    public CheckRequest Request(string config, string? outDir = null, string? baseline = null) => new()
    {
        ModelPath = Model, QatModelPath = Qat, ConfigPath = config, Name = "cls", BaselinePath = baseline, Stages = [CheckStagePair.QatVsFloat],
        OutputDirectory = outDir ?? TestAssets.TempDir("check-out"), StepSummaryPath = null,
    };
}

public class CheckStageTests(ClsExport cls) : IClassFixture<ClsExport>
{
    private const string Passing = """
        checks:
          softmax:
            output: softmax_0.tmp_0
            cosine: {min: 0.9}
            sqnr: {min: 5}
            l1: {max: 0.5, over: avg}
            chebyshev: {max: 1.0}
        """;

    [Fact]
    public void Passing_thresholds_pass_and_every_report_has_one_entry_per_check()
    {
        var summary = Path.Combine(TestAssets.TempDir("check-summary"), "summary.md");
        File.WriteAllText(summary, "earlier step\n");
        var request = cls.Request(cls.Config(Passing));
        var result = CheckStage.Run(new CheckRequest
        {
            ModelPath = request.ModelPath, QatModelPath = request.QatModelPath, ConfigPath = request.ConfigPath, Name = "cls",
            OutputDirectory = request.OutputDirectory, StepSummaryPath = summary, Stages = request.Stages,
        });
        Assert.True(result.Passed, string.Join("\n", result.Failures.Select(f => f.Message)));
        Assert.Equal(4, result.Measurements.SampleCount);
        Assert.Equal(["cosine", "sqnr", "l1", "chebyshev"], result.Outcomes.Select(o => o.Metric));
        Assert.Equal([CheckAggregate.Min, CheckAggregate.Min, CheckAggregate.Avg, CheckAggregate.Max], result.Outcomes.Select(o => o.Aggregate!.Value));
        // The checked value is the aggregate of the per-sample metric.
        var table = result.Measurements.Similarity[CheckStagePair.QatVsFloat];
        Assert.Equal(table.Of(ClsExport.Output, s => s.Cosine).Min, result.Outcomes[0].Value);
        Assert.Equal(table.Of(ClsExport.Output, s => s.L1).Avg, result.Outcomes[2].Value);

        var junit = XDocument.Load(result.JUnitPath);
        var cases = junit.Descendants("testcase").ToList();
        Assert.Equal(4, cases.Count);
        Assert.Empty(junit.Descendants("failure"));
        Assert.Equal("4", junit.Root!.Attribute("tests")!.Value);
        Assert.Equal("softmax: output 'softmax_0.tmp_0' cosine min >= 0.9", cases[0].Attribute("name")!.Value);

        var json = File.ReadAllText(result.JsonPath);
        Assert.Contains("\"passed\": true", json);
        Assert.Contains("\"checks_total\": 4", json);
        var md = File.ReadAllText(result.MarkdownPath);
        Assert.Contains("passed (4 of 4 passed, 4 samples)", md);
        Assert.Equal(4, md.Split('\n').Count(l => l.StartsWith("| ✅ pass")));
        var appended = File.ReadAllText(summary);
        Assert.StartsWith("earlier step\n### Quant.Build checks: cls", appended);
    }

    [Fact]
    public void An_impossible_threshold_fails_at_its_yaml_position_with_both_values()
    {
        // line 10 checks:, 11 r:, 12 "    cosine: {min: 1.01}" (value at column 19), 13 "    mse: {max: 0}" (column 16)
        var cfg = cls.Config("checks:\n  r:\n    cosine: {min: 1.01}\n    mse: {max: 0}\n");
        var result = CheckStage.Run(cls.Request(cfg));
        Assert.False(result.Passed);
        var failures = result.Failures.ToList();
        Assert.Equal(2, failures.Count);
        var cos = failures[0];
        Assert.Equal((cfg, ClsExport.ChecksLine + 2, 19), (cos.Position.File, cos.Position.Line, cos.Position.Column));
        Assert.Equal(ErrorCode.CheckFailed, cos.Code);
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(cos.Message, @"^cls: qat_vs_float output 'softmax_0\.tmp_0' cosine min (0\.9\d+|1) < 1\.01$"), cos.Message);
        Assert.Equal($"{cfg}({ClsExport.ChecksLine + 2},19): error QB5001: {cos.Message}", cos.Diagnostic(asWarning: false));
        Assert.StartsWith($"{cfg}({ClsExport.ChecksLine + 2},19): warning QB5001: ", cos.Diagnostic(asWarning: true));
        var mse = failures[1];
        Assert.Equal((ClsExport.ChecksLine + 3, 16), (mse.Position.Line, mse.Position.Column));
        Assert.Matches(@"mse max [0-9.eE+-]+ > 0$", mse.Message);

        var junit = XDocument.Load(result.JUnitPath);
        Assert.Equal(2, junit.Descendants("testcase").Count());
        var f = junit.Descendants("failure").First();
        Assert.Equal("QB5001", f.Attribute("type")!.Value);
        Assert.Equal(cos.Message, f.Attribute("message")!.Value);
        Assert.Contains("\"passed\": false", File.ReadAllText(result.JsonPath));
        Assert.Contains("❌ **fail**", File.ReadAllText(result.MarkdownPath));
    }

    [Fact]
    public void A_regression_against_the_baseline_names_both_values()
    {
        var cfg = cls.Config("checks:\n  r:\n    cosine: {min: 0.5}\n    l2: {max: 1, over: avg}\n");
        var m = CheckStage.Measure(cls.Request(cfg));
        var baseline = CheckStage.BaselineOf(m);
        var outputs = baseline.Stages["qat_vs_float"].Outputs[ClsExport.Output];
        // Every metric's worst sample, plus the avg the l2 threshold reads.
        Assert.Equal(["chebyshev.max", "cosine.min", "l1.max", "l2.avg", "l2.max", "mre.max", "mse.max", "sqnr.min"], outputs.Keys);
        var dir = TestAssets.TempDir("check-baseline");
        var path = Path.Combine(dir, "cls.baseline.json");
        File.WriteAllText(path, baseline.Render());

        var ok = CheckStage.Run(cls.Request(cfg, baseline: path));
        Assert.True(ok.Passed, string.Join("\n", ok.Failures.Select(f => f.Message)));
        Assert.Equal(2 + 8, ok.Outcomes.Count);

        // An accepted cosine better than today's by more than the tolerance: today's is a regression.
        double current = outputs["cosine.min"];
        outputs["cosine.min"] = current + 0.01;
        outputs["l1.max"] = outputs["l1.max"] + 0.5; // a better accepted value does not fail anything
        File.WriteAllText(path, baseline.Render());
        var bad = CheckStage.Run(cls.Request(cfg, baseline: path));
        var f = Assert.Single(bad.Failures);
        Assert.Equal((ErrorCode.CheckBaselineRegression, CheckKind.Baseline), (f.Code, f.Kind));
        Assert.Equal((cfg, ClsExport.ChecksLine + 2, 19), (f.Position.File, f.Position.Line, f.Position.Column)); // the covering threshold
        var (now, accepted) = Format.Pair(current, current + 0.01);
        Assert.Contains($"cosine min {now} regressed from baseline {accepted} by more than the tolerance 0.001 (cls.baseline.json;", f.Message);

        // A baseline entry that is no longer measured fails at the baseline file (no threshold covers it).
        baseline.Stages["qat_vs_float"].Outputs["gone"] = new(StringComparer.Ordinal) { ["mse.max"] = 0.1 };
        outputs["cosine.min"] = current;
        File.WriteAllText(path, baseline.Render());
        var gone = Assert.Single(CheckStage.Run(cls.Request(cfg, baseline: path)).Failures);
        Assert.Equal((path, 0), (gone.Position.File, gone.Position.Line));
        Assert.Contains("output 'gone' mse max has baseline 0.1", gone.Message);

        File.WriteAllText(path, "{\"format\": \"something else\"}");
        var e = Assert.Throws<QuantException>(() => CheckStage.Run(cls.Request(cfg, baseline: path)));
        Assert.Equal(ErrorCode.CheckBaselineUnreadable, e.Code);
    }

    [Fact]
    public void An_evaluator_command_reads_the_stage_outputs_and_reports_a_metric()
    {
        // sh counts the .npy files the stage wrote (4 samples x 1 output); node computes a task metric
        // (top-1 agreement of qat with float) from the .npy files and writes it to $QUANT_EVALUATOR_RESULT.
        const string agreement =
            "const fs=require('fs'),p=require('path');" +
            "const rd=f=>{const b=fs.readFileSync(f);const h=b.readUInt16LE(8);const d=b.subarray(10+h);return new Float32Array(d.buffer.slice(d.byteOffset,d.byteOffset+d.length));};" +
            "const ix=d=>JSON.parse(fs.readFileSync(p.join(d,'index.json'))).samples;" +
            "const am=a=>a.indexOf(Math.max(...a));" +
            "const q=ix(process.env.QUANT_OUTPUTS),r=ix(process.env.QUANT_REFERENCE);let same=0;" +
            "q.forEach((s,i)=>{const o='softmax_0.tmp_0';if(am(rd(p.join(process.env.QUANT_OUTPUTS,s.outputs[o])))===am(rd(p.join(process.env.QUANT_REFERENCE,r[i].outputs[o]))))same++;});" +
            "fs.writeFileSync(process.env.QUANT_EVALUATOR_RESULT,JSON.stringify({agreement:same/q.length,samples:q.length}));";
        var script = Path.Combine(TestAssets.TempDir("check-eval"), "agreement.js");
        File.WriteAllText(script, agreement);
        var cfg = cls.Config(
            "checks:\n" +
            "  files:\n" +
            "    evaluator:\n" +
            "      command: |-\n" +
            "        echo counting; echo \"{\\\"npy\\\": $(find '{outputs}' -name '*.npy' | wc -l)}\"\n" +
            "      metric: npy\n" +
            "      min: 4\n" +
            "      max: 4\n" +
            "  agreement:\n" +
            $"    evaluator: {{command: \"node '{script.Replace('\\', '/')}'\", metric: agreement, min: 0.75}}\n");
        var result = CheckStage.Run(cls.Request(cfg));
        Assert.True(result.Passed, string.Join("\n", result.Failures.Select(f => f.Message)));
        var values = result.Measurements.Evaluators[CheckStagePair.QatVsFloat];
        Assert.Equal(4, values["npy"]);
        Assert.InRange(values["agreement"], 0.75, 1.0);
        Assert.Equal(3, result.Outcomes.Count(o => o.Kind == CheckKind.Evaluator));
        Assert.Equal(3, XDocument.Load(result.JUnitPath).Descendants("testcase").Count());
        // The outputs folder is temporary.
        Assert.Empty(Directory.GetDirectories(Path.GetDirectoryName(result.JsonPath)!));

        var failing = CheckStage.Run(cls.Request(cls.Config("checks:\n  files:\n    evaluator: {command: \"echo '{\\\"npy\\\": 3}'\", metric: npy, min: 4}\n")));
        var f = Assert.Single(failing.Failures);
        Assert.Equal("cls: qat_vs_float evaluator 'npy' 3 < 4", f.Message);
        Assert.Equal((ClsExport.ChecksLine + 2, 67), (f.Position.Line, f.Position.Column));

        var broken = cls.Config("checks:\n  files:\n    evaluator: {command: \"echo oops >&2; exit 3\", metric: npy, min: 4}\n");
        var e = Assert.Throws<QuantException>(() => CheckStage.Run(cls.Request(broken)));
        Assert.Equal((ErrorCode.CheckEvaluatorFailed, ClsExport.ChecksLine + 2, 26), (e.Code, e.Where.Line, e.Where.Column));
        Assert.Contains("exited with code 3: oops", e.Message);
        var noMetric = cls.Config("checks:\n  files:\n    evaluator: {command: \"echo '{\\\"other\\\": 1}'\", metric: npy, min: 4}\n");
        Assert.Contains("has no 'npy' (it has: other)", Assert.Throws<QuantException>(() => CheckStage.Run(cls.Request(noMetric))).Message);
    }

    [Fact]
    public void Reports_are_byte_identical_across_runs()
    {
        var cfg = cls.Config(Passing + "\n    mre: {max: 0.001}\n");
        var a = CheckStage.Run(cls.Request(cfg));
        var b = CheckStage.Run(cls.Request(cfg));
        Assert.NotEqual(a.JsonPath, b.JsonPath);
        Assert.Equal(File.ReadAllBytes(a.JsonPath), File.ReadAllBytes(b.JsonPath));
        Assert.Equal(File.ReadAllBytes(a.JUnitPath), File.ReadAllBytes(b.JUnitPath));
        Assert.Equal(File.ReadAllBytes(a.MarkdownPath), File.ReadAllBytes(b.MarkdownPath));
    }

    [Fact]
    public void Unknown_outputs_and_later_stages_are_positioned_errors()
    {
        var e = Assert.Throws<QuantException>(() => CheckStage.Run(cls.Request(cls.Config("checks:\n  r:\n    output: softmax_0.tmp\n    cosine: {min: 0.9}\n"))));
        Assert.Equal((ErrorCode.CheckUnknownOutput, ClsExport.ChecksLine + 2, 13), (e.Code, e.Where.Line, e.Where.Column));
        Assert.Contains("did you mean 'softmax_0.tmp_0'?", e.Message);
        // A later pair's rule with no quantized model to compare: refused at the rule's stage (the pairs are the default
        // ones here; a request naming its pairs skips the rules of the others, as a build's Stages does).
        var request = cls.Request(cls.Config("checks:\n  r:\n    stage: quantized_vs_qat\n    cosine: {min: 0.9}\n"));
        e = Assert.Throws<QuantException>(() => CheckStage.Run(new CheckRequest
        {
            ModelPath = request.ModelPath, QatModelPath = request.QatModelPath, ConfigPath = request.ConfigPath, Name = "cls",
            OutputDirectory = request.OutputDirectory, StepSummaryPath = null,
        }));
        Assert.Equal((ErrorCode.CheckStageUnavailable, ClsExport.ChecksLine + 2, 12), (e.Code, e.Where.Line, e.Where.Column));
        Assert.True(CheckStage.Run(request).Passed, "with the pairs named, a rule of another pair is not applied");
    }

    [Fact]
    public void Rec_passes_realistic_thresholds()
    {
        var dir = TestAssets.TempDir("check-rec");
        var cfg = Path.Combine(dir, "rec.quant.yaml");
        File.WriteAllText(cfg,
            "model_config:\n  activation:\n    calibration_type: max\n" +
            $"inputs:\n  x:\n    data: \"{Path.Combine(TestAssets.Data("ppocr-rec"), "calib_*.npy").Replace('\\', '/')}\"\n" +
            "    scale: 1/255\n    mean: 0.5\n    std: 0.5\n" +
            "checks:\n  - output: \"*\"\n    cosine: {min: 0.7}\n    sqnr: {min: 3, over: avg}\n");
        var qat = ExportStage.Run(new ExportRequest { ModelPath = TestAssets.RecModel, ConfigPath = cfg, OutputDirectory = dir, Name = "rec" }).QatModelPath;
        var result = CheckStage.Run(new CheckRequest
        {
            ModelPath = TestAssets.RecModel, QatModelPath = qat, ConfigPath = cfg, OutputDirectory = dir, Name = "rec", StepSummaryPath = null,
            Stages = [CheckStagePair.QatVsFloat],
        });
        Assert.True(result.Passed, string.Join("\n", result.Outcomes.Select(f => f.Message)));
        Assert.Equal(2, result.Outcomes.Count);
        Assert.All(result.Outcomes, o => Assert.Equal("rule 1", o.Rule));
    }
}
