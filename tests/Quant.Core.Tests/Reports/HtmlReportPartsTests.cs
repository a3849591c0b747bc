using Quant.Core.Calibration;
using Quant.Core.Reports.Html;
using Quant.Engine;

namespace Quant.Core.Tests.Reports;

/// <summary>The HTML report's small parts: escaping, chart ticks and coordinates, the clipped share from a histogram.</summary>
public class HtmlReportPartsTests
{
    [Fact]
    public void Escape_makes_every_markup_character_text_and_replaces_control_characters()
    {
        Assert.Equal("a&lt;b&gt;&amp;&quot;c&#39;\tx\n\uFFFD", HtmlText.Escape("a<b>&\"c'\tx\n\u0001"));
        Assert.Equal("", HtmlText.Escape(null));
    }

    [Fact]
    public void Ticks_are_round_steps_covering_the_range_and_coordinates_are_invariant()
    {
        Assert.Equal([0.96, 0.97, 0.98, 0.99, 1.0], SvgPlot.Ticks(0.9581, 1.0, 5));
        Assert.Equal([20, 40, 60, 80, 100, 120], SvgPlot.Ticks(1, 126, 6));
        Assert.Equal([-2, -1, 0, 1, 2, 3], SvgPlot.Ticks(-2.444, 3.1, 6));
        Assert.Equal([1, 10, 100, 1000], SvgPlot.LogTicks(1, 4000));
        Assert.Equal("0", HtmlText.Coord(-0.01));
        Assert.Equal("12.3", HtmlText.Coord(12.34));
        Assert.Equal("-1.5", HtmlText.Coord(-1.46));
    }

    [Fact]
    public void The_clipped_share_is_the_share_of_values_outside_the_kept_range()
    {
        // 1000 values evenly over [-1, 3): a range kept to [-0.5, 2] clips [-1, -0.5) and (2, 3), 37.5% of them.
        var data = Enumerable.Range(0, 1000).Select(i => -1f + 4f * i / 1000).ToArray();
        var c = new CalibrationCollector(numBins: 2048);
        c.Add("t", Tensor.From(data, data.Length));
        var share = HistogramSection.ClippedShare(c.Tensors[0], new ActivationRange("t", "int8", 0.0157, -0.5, 2.0, "max"));
        Assert.InRange(share, 0.374, 0.376);
        Assert.Equal(0, HistogramSection.ClippedShare(c.Tensors[0], new ActivationRange("t", "int8", 0.03, -4, 4, "max")));
    }
}
