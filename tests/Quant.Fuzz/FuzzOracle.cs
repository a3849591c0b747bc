using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Quant.Fuzz;

/// <summary>What one input did: accepted, a documented error, or a finding (an undocumented exception, too much allocation).</summary>
public sealed record Outcome(bool Finding, string Signature, string Detail, long AllocatedBytes, TimeSpan Elapsed, Exception? Error)
{
    public override string ToString() => $"{Signature} ({AllocatedBytes / 1024} KiB, {Elapsed.TotalMilliseconds:0} ms): {Detail}";
}

/// <summary>The oracle: only the target's documented errors may escape, within its allocation bound (the 5 s bound is the harness's watchdog).</summary>
public static partial class FuzzOracle
{
    public static Outcome Execute(FuzzTarget target, byte[] input)
    {
        var clock = Stopwatch.StartNew();
        long before = GC.GetAllocatedBytesForCurrentThread();
        Exception? error = null;
        try { target.Run(input); }
        catch (Exception e) { error = e; }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        clock.Stop();
        long bound = target.AllocationBound(input.Length);
        if (error is not null && !target.IsDocumented(error))
            return new Outcome(true, $"crash {error.GetType().Name} at {Site(error)}", error.ToString(), allocated, clock.Elapsed, error);
        var result = error is null ? "accepted" : $"{error.GetType().Name}: {Normalize(error.Message)}";
        if (allocated > bound)
            return new Outcome(true, $"alloc {allocated / FuzzTarget.MiB} MiB > {bound / FuzzTarget.MiB} MiB ({(error is null ? "accepted" : error.GetType().Name)})",
                $"{allocated} bytes allocated for a {input.Length}-byte input (bound {bound}); outcome {result}", allocated, clock.Elapsed, error);
        return new Outcome(false, result, error?.Message ?? "accepted", allocated, clock.Elapsed, error);
    }

    /// <summary>The innermost frame of our own code (the library frame below it says little about which of our reads went wrong).</summary>
    private static string Site(Exception e)
    {
        var frames = new StackTrace(e, false).GetFrames();
        foreach (var f in frames)
        {
            var m = f.GetMethod();
            var type = m?.DeclaringType?.FullName ?? "";
            if (type.StartsWith("Quant.", StringComparison.Ordinal) && !type.StartsWith("Quant.Fuzz", StringComparison.Ordinal))
                return $"{type}.{m!.Name}";
        }
        var top = frames.FirstOrDefault()?.GetMethod();
        return top is null ? "?" : $"{top.DeclaringType?.FullName}.{top.Name}";
    }

    /// <summary>A message with its numbers and quoted names taken out: which check answered, not with which values (corpus novelty).</summary>
    public static string Normalize(string message)
    {
        var m = Quoted().Replace(message, "''");
        m = Numbers().Replace(m, "#");
        return m.Length > 60 ? m[..60] : m;
    }

    [GeneratedRegex("'[^']*'")]
    private static partial Regex Quoted();

    [GeneratedRegex("[0-9]+")]
    private static partial Regex Numbers();
}
