using System.Diagnostics;
using Quant.Core.Stages;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Quant.Check.Output;

/// <summary>
/// Shows a stage's <see cref="StageProgress"/> while it runs: live bars with elapsed and remaining time at a
/// terminal, <see cref="ProgressLines"/> otherwise (see <see cref="Terminal"/>). Both on stderr.
/// </summary>
internal static class StageProgressView
{
    public static T Run<T>(Func<IProgress<StageProgress>, T> work)
    {
        if (!Terminal.StderrInteractive)
        {
            var clock = Stopwatch.StartNew();
            return work(new ProgressLines(Console.Error, () => clock.Elapsed));
        }
        return Terminal.Error.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new CountColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx => work(new LiveBars(ctx)));
    }

    /// <summary>One bar per phase; a new phase finishes the previous bar.</summary>
    private sealed class LiveBars(ProgressContext ctx) : IProgress<StageProgress>
    {
        private ProgressTask? _task;

        public void Report(StageProgress p)
        {
            if (_task is null || _task.Description != p.Phase)
            {
                _task?.StopTask();
                _task = ctx.AddTask(p.Phase, autoStart: true, maxValue: Math.Max(1, p.Total));
            }
            _task.MaxValue = Math.Max(1, p.Total);
            _task.Value = p.Total <= 0 ? 1 : p.Done;
            _task.State.Update<int>("total", _ => p.Total);
            if (p.Done >= p.Total) _task.StopTask();
        }
    }

    /// <summary>"done/total" in the units the stage counts (samples, batches, candidates).</summary>
    private sealed class CountColumn : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Text($"{(int)task.Value}/{task.State.Get<int>("total")}");
    }
}
