using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.TestSupport;

namespace Quant.Core.Tests.Checks;

/// <summary>The <c>checks:</c> schema: both forms, defaults, remembered positions and positioned errors.</summary>
public sealed class ChecksConfigTests : IDisposable
{
    private readonly string _dir = TestAssets.TempDir("checks-config");

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private ChecksConfig Load(string yaml)
    {
        var path = Path.Combine(_dir, "q.yaml");
        File.WriteAllText(path, yaml);
        return QuantConfigLoader.Load(path).CheckRules;
    }

    private void Fails(string yaml, ErrorCode code, int line, int column, params string[] fragments)
    {
        var path = Path.Combine(_dir, "bad.yaml");
        File.WriteAllText(path, yaml);
        PositionedError.Expect(() => QuantConfigLoader.Load(path), code, line, column, fragments);
    }

    [Fact]
    public void Mapping_form_reads_rules_bounds_defaults_and_positions()
    {
        var c = Load("""
            checks:
              baseline_tolerance: {default: 0.002, sqnr: 0.5}
              softmax:
                stage: qat_vs_float
                output: softmax_0.tmp_0
                cosine: {min: 0.99}
                l1: {max: 0.05, over: avg}
                evaluator: {command: "echo {}", metric: acc, min: 0.9}
              everything:
                sqnr: {min: 20, max: 200}
            """);
        Assert.Equal(["softmax", "everything"], c.Rules.Select(r => r.Name));
        var softmax = c.Rules[0];
        Assert.Equal(CheckStagePair.QatVsFloat, softmax.Stage);
        Assert.Equal("softmax_0.tmp_0", softmax.Output);
        Assert.Equal((4, 12), (softmax.StagePosition.Line, softmax.StagePosition.Column));
        var cosine = softmax.Thresholds[0];
        Assert.Equal((CheckMetric.Cosine, 0.99, (double?)null), (cosine.Metric, cosine.Min!.Value, cosine.Max));
        Assert.Equal((6, 19), (cosine.MinPosition.Line, cosine.MinPosition.Column));
        Assert.Equal(CheckAggregate.Min, cosine.AggregateFor(lower: true)); // worst sample by default
        var l1 = softmax.Thresholds[1];
        Assert.Equal((7, 15), (l1.MaxPosition.Line, l1.MaxPosition.Column));
        Assert.Equal(CheckAggregate.Avg, l1.AggregateFor(lower: false));
        var e = softmax.Evaluator!;
        Assert.Equal(("echo {}", "acc", 0.9), (e.Command, e.Metric, e.Min!.Value));
        Assert.True(e.HigherIsBetter);
        Assert.Equal(600, e.TimeoutSeconds);
        var sqnr = c.Rules[1].Thresholds.Single();
        Assert.Equal("*", c.Rules[1].Output);
        Assert.Equal((10, 17, 10, 26), (sqnr.MinPosition.Line, sqnr.MinPosition.Column, sqnr.MaxPosition.Line, sqnr.MaxPosition.Column));
        Assert.Equal(CheckAggregate.Min, sqnr.AggregateFor(lower: true));
        Assert.Equal(CheckAggregate.Max, sqnr.AggregateFor(lower: false));
        Assert.Equal(0.002, c.ToleranceFor(CheckStagePair.QatVsFloat, "y", "cosine"));
        Assert.Equal(0.5, c.ToleranceFor(CheckStagePair.QatVsFloat, "y", "sqnr"));
    }

    [Fact]
    public void List_form_names_rules_and_takes_per_rule_tolerance()
    {
        var c = Load("""
            checks:
              - output: "*"
                cosine: {min: 0.9}
              - name: second
                output: y
                mse: {max: 1}
                baseline_tolerance: 0.01
            """);
        Assert.Equal(["rule 1", "second"], c.Rules.Select(r => r.Name));
        Assert.Equal(0.01, c.ToleranceFor(CheckStagePair.QatVsFloat, "y", "mse"));
        Assert.Equal(BaselineTolerance.DefaultAbsolute, c.ToleranceFor(CheckStagePair.QatVsFloat, "z", "mse"));
        Assert.Equal(BaselineTolerance.DefaultAbsolute, Load("preset: base\n").ToleranceFor(CheckStagePair.QatVsFloat, "y", "cosine"));
        Assert.Empty(Load("preset: base\n").Rules);
    }

    [Fact]
    public void Schema_errors_are_positioned()
    {
        Fails("checks:\n  r:\n    cosin: {min: 1}\n", ErrorCode.ConfigUnknownKey, 3, 5, "did you mean 'cosine'?");
        Fails("checks:\n  r:\n    cosine: 0.99\n", ErrorCode.ConfigWrongType, 3, 13, "expected a bound like {min: 0.99}");
        Fails("checks:\n  r:\n    cosine: {over: avg}\n", ErrorCode.ConfigInvalidValue, 3, 5, "give min or max");
        Fails("checks:\n  r:\n    l2: {max: 1, over: mean}\n", ErrorCode.ConfigInvalidValue, 3, 24, "'mean' is not one of min, avg, max");
        Fails("checks:\n  r:\n    stage: qat_vs_flt\n    cosine: {min: 1}\n", ErrorCode.ConfigInvalidValue, 3, 12, "did you mean 'qat_vs_float'?");
        Fails("checks:\n  r:\n    output: y\n", ErrorCode.ConfigInvalidValue, 2, 3, "the rule checks nothing");
        Fails("checks:\n  r:\n    evaluator: {metric: acc, min: 1}\n", ErrorCode.ConfigInvalidValue, 3, 16, "'command' is required");
        Fails("checks:\n  r:\n    evaluator: {command: x, metric: acc}\n", ErrorCode.ConfigInvalidValue, 3, 16, "give min or max");
        Fails("checks:\n  - {name: a, cosine: {min: 1}}\n  - {name: a, l1: {max: 1}}\n", ErrorCode.ConfigInvalidValue, 3, 5, "two rules are named 'a'");
        Fails("checks:\n  baseline_tolerance: -1\n", ErrorCode.ConfigInvalidValue, 2, 23, "not a tolerance");
        Fails("checks:\n  r: {cosine: {min: 1, max: 0.5}}\n", ErrorCode.ConfigInvalidValue, 2, 7, "no value can pass");
        Fails("checks:\n  r: {name: x, cosine: {min: 1}}\n", ErrorCode.ConfigInvalidValue, 2, 7, "'name' is for list items");
        Fails("checks:\n  r: {cosine: {min: high}}\n", ErrorCode.ConfigWrongType, 2, 21, "expected a number, got 'high'");
        Fails("checks:\n  a: {evaluator: {command: x, metric: m, min: 1}}\n  b: {evaluator: {command: y, metric: m, max: 1}}\n",
            ErrorCode.ConfigInvalidValue, 3, 18, "metric 'm' is already read by rule 'a'");
    }
}
