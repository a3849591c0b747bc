using Quant.Check.Output;
using Quant.Core.Stages;

namespace Quant.Check.Tests.Output;

/// <summary>Plain progress (logs, CI, MSBuild): few lines per phase, with the time spent and the time left.</summary>
public class ProgressLinesTests
{
    [Fact]
    public void A_phase_prints_its_start_each_tenth_and_its_end_with_the_time_left()
    {
        var text = new StringWriter();
        var now = TimeSpan.Zero;
        var lines = new ProgressLines(text, () => now);
        // 200 samples at 0.5 s each: 201 reports.
        for (int done = 0; done <= 200; done++)
        {
            lines.Report(new StageProgress("calibration", done, 200));
            now += TimeSpan.FromSeconds(0.5);
        }
        var printed = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();
        Assert.Equal(11, printed.Length);
        Assert.Equal("calibration: 0/200", printed[0]);
        // At 20 of 200, 10 s in: 180 more at the same rate is 90 s.
        Assert.Equal("calibration: 20/200 (10%), 10.0 s, about 1 min 30 s left", printed[1]);
        Assert.Equal("calibration: 100/200 (50%), 50.0 s, about 50.0 s left", printed[5]);
        Assert.Equal("calibration: 200/200 (100%), 1 min 40 s", printed[10]);
    }

    [Fact]
    public void A_phase_first_reported_part_way_is_timed_from_the_previous_report()
    {
        var text = new StringWriter();
        var now = TimeSpan.Zero;
        var lines = new ProgressLines(text, () => now);
        lines.Report(new StageProgress("calibration", 2, 2));
        now = TimeSpan.FromSeconds(4);
        lines.Report(new StageProgress("comparing float and qat", 1, 4));
        Assert.EndsWith("comparing float and qat: 1/4 (25%), 4.0 s, about 12.0 s left", text.ToString().TrimEnd());
    }

    [Fact]
    public void An_empty_phase_prints_one_line()
    {
        var text = new StringWriter();
        var lines = new ProgressLines(text, () => TimeSpan.Zero);
        lines.Report(new StageProgress("running evaluators", 0, 0));
        lines.Report(new StageProgress("running evaluators", 0, 0));
        Assert.Equal("running evaluators: 0/0", text.ToString().Trim());
    }

    [Theory]
    [InlineData(0.04, "0.0 s")]
    [InlineData(59.94, "59.9 s")]
    [InlineData(61, "1 min 01 s")]
    [InlineData(3599, "59 min 59 s")]
    [InlineData(7325, "2 h 02 min")]
    public void Durations_read_as_a_person_says_them(double seconds, string expected) =>
        Assert.Equal(expected, ProgressLines.Duration(TimeSpan.FromSeconds(seconds)));

    [Theory]
    [InlineData(null, false)]
    [InlineData("", false)]
    [InlineData("0", false)]
    [InlineData("false", false)]
    [InlineData("true", true)]
    [InlineData("1", true)]
    [InlineData("woodpecker", true)]
    public void CI_counts_when_set_to_anything_but_empty_0_or_false(string? value, bool ci) =>
        Assert.Equal(ci, Terminal.IsCi(value));
}
