using System.Globalization;
using Quant.Core.Stages;

namespace Quant.Check.Output;

/// <summary>
/// Progress as plain lines, for logs: a phase's start, each further tenth of it, and its end, with the time spent
/// and the time left at the rate so far. At most a dozen lines per phase, however many samples.
/// </summary>
internal sealed class ProgressLines(TextWriter writer, Func<TimeSpan> clock) : IProgress<StageProgress>
{
    private string? _phase;
    private TimeSpan _start;
    private TimeSpan? _last;
    private int _tenth = -1;

    public void Report(StageProgress p)
    {
        var now = clock();
        if (p.Phase != _phase)
        {
            // A phase first heard of part-way (its first report is 1/N) began when the previous one last reported.
            _phase = p.Phase;
            _start = p.Done > 0 && _last is { } last ? last : now;
            _tenth = -1;
        }
        _last = now;
        int tenth = p.Total <= 0 ? 10 : (int)(10L * p.Done / p.Total);
        if (tenth == _tenth) return;
        _tenth = tenth;
        writer.WriteLine(Line(p, now - _start));
    }

    internal static string Line(StageProgress p, TimeSpan elapsed)
    {
        var text = $"{p.Phase}: {p.Done}/{p.Total}";
        if (p.Total <= 0 || p.Done <= 0) return text;
        text += string.Create(CultureInfo.InvariantCulture, $" ({100L * p.Done / p.Total}%), {Duration(elapsed)}");
        if (p.Done >= p.Total) return text;
        var left = TimeSpan.FromTicks((long)(elapsed.Ticks * (double)(p.Total - p.Done) / p.Done));
        return text + $", about {Duration(left)} left";
    }

    /// <summary>Seconds with a decimal under a minute, then minutes and seconds, then hours and minutes.</summary>
    internal static string Duration(TimeSpan t) => t.TotalSeconds switch
    {
        < 60 => t.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture) + " s",
        < 3600 => string.Create(CultureInfo.InvariantCulture, $"{(int)t.TotalMinutes} min {t.Seconds:D2} s"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{(int)t.TotalHours} h {t.Minutes:D2} min"),
    };
}
