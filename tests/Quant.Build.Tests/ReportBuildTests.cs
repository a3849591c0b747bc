using Xunit.Abstractions;

namespace Quant.Build.Tests;

/// <summary>
/// <c>Report="true"</c> / <c>QuantReport=true</c>: a real <c>dotnet build</c> writes NAME.report.html beside the other
/// artifacts after the check, incrementally, and also when the check fails (the page then shows the failure).
/// </summary>
[Collection("msbuild")]
public class ReportBuildTests(PackageFeed feed, ITestOutputHelper output)
{
    private static string Section(string html, string id)
    {
        int start = html.IndexOf($"<section id=\"{id}\">", StringComparison.Ordinal);
        Assert.True(start >= 0, $"section {id}");
        return html[start..html.IndexOf("</section>", start, StringComparison.Ordinal)];
    }

    [Fact]
    public void Report_metadata_writes_the_page_after_the_check_only_when_inputs_change_and_also_when_the_check_fails()
    {
        var p = new FixtureProject(feed, "report", itemMetadata: "Stages=\"export;check;runtime_vs_qat\" Report=\"true\" CopyToOutput=\"qat;report\" ");
        var first = p.Build();
        first.AssertSucceeded();
        Assert.Equal(["export cls calibration=collected", "check cls", "report cls"], p.Runs());
        Assert.Contains("Quant: report cls finished in", first.Output);
        var page = Path.Combine(p.Intermediate, "cls", "cls.report.html");
        var html = File.ReadAllText(page);
        Assert.Equal(File.ReadAllBytes(page), File.ReadAllBytes(Path.Combine(p.OutDir, "cls.report.html")));
        foreach (var id in new[] { "precision", "histograms", "checks" }) Assert.DoesNotContain("class=\"not-run\"", Section(html, id));
        Assert.Contains("<b class=\"pass\">passed</b>", Section(html, "checks"));

        p.Build().AssertSucceeded();
        Assert.Equal(3, p.Runs().Length); // nothing changed: no stage and no report ran

        // A failing threshold fails the build, and the page is written anyway, showing the failing check.
        p.EditConfig("cosine: {min: 0.99}", "cosine: {min: 0.99}\n    l1: {max: 1.0e-30}");
        var failed = p.Build();
        Assert.NotEqual(0, failed.Code);
        Assert.Contains("error QB5001", failed.Output);
        Assert.Contains("Quant: report cls finished in", failed.Output);
        var checks = Section(File.ReadAllText(page), "checks");
        Assert.Matches("<tr class=\"fail\"><td><b class=\"fail\">FAIL</b></td><td>threshold direction</td><td>qat_vs_float</td><td>[^<]*</td><td>l1", checks);
        output.WriteLine($"first build {first.Time.TotalSeconds:F1} s; report {new FileInfo(page).Length} bytes");
    }

    [Fact]
    public void The_QuantReport_property_turns_the_page_on_for_every_model_and_a_bad_value_is_QB8065()
    {
        var p = new FixtureProject(feed, "report-prop", ["a", "b"], itemMetadata: "Stages=\"export\" ", properties: "<QuantReport>true</QuantReport>");
        p.Build().AssertSucceeded();
        foreach (var n in new[] { "a", "b" })
        {
            Assert.Equal([$"export {n} calibration=collected", $"report {n}"], p.Runs(n));
            var html = File.ReadAllText(Path.Combine(p.Intermediate, n, n + ".report.html"));
            Assert.Contains("not run: run <code>quant-check check</code>", Section(html, "checks")); // no check stage: says how to get one
            Assert.DoesNotContain("class=\"not-run\"", Section(html, "histograms"));
        }
        var bad = p.Build("-p:QuantReport=yes");
        Assert.NotEqual(0, bad.Code);
        Assert.Contains("error QB8065: QuantReport=\"yes\" is not true or false", bad.Output);
    }
}
