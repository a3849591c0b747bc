using Quant.Core.Checks;
using Quant.Core.Stages;

namespace Quant.Core.Tests.Checks;

/// <summary>A check report (NAME.check.json, what a model package ships) read as a baseline.</summary>
public class CheckReportBaselineTests(ClsExport cls) : IClassFixture<ClsExport>
{
    [Fact]
    public void A_check_report_read_as_a_baseline_holds_what_baseline_update_records_and_the_same_model_passes_it()
    {
        var config = cls.Config("checks:\n  softmax:\n    output: softmax_0.tmp_0\n    cosine: {min: 0.9}\n    l1: {max: 0.5, over: avg}\n");
        var first = CheckStage.Run(cls.Request(config));
        var fromReport = Baseline.Load(first.JsonPath);
        Assert.Equal(CheckStage.BaselineOf(first.Measurements).Render(), fromReport.Render());
        // The worst sample of every metric, plus the non-worst aggregate a threshold read (l1 avg).
        var entries = fromReport.Stages["qat_vs_float"].Outputs[ClsExport.Output].Keys;
        Assert.Equal(["chebyshev.max", "cosine.min", "l1.avg", "l1.max", "l2.max", "mre.max", "mse.max", "sqnr.min"], entries);
        Assert.Equal("cls.check.json", fromReport.Label);

        var second = CheckStage.Run(cls.Request(config, baseline: first.JsonPath));
        Assert.True(second.Passed, string.Join("\n", second.Failures.Select(f => f.Message)));
        Assert.Equal(2 + 8, second.Outcomes.Count);
        Assert.All(second.Outcomes.Where(o => o.Kind == CheckKind.Baseline), o => Assert.Contains("(cls.check.json)", o.Message));
    }
}
