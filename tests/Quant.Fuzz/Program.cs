using System.Diagnostics;
using System.Security.Cryptography;
using Quant.Fuzz;

// quant-fuzz TARGET SECONDS REPO_ROOT OUT_DIR [SEED]
//   Mutational fuzzing of one loader (FuzzTargets.cs) for SECONDS; findings (minimized) go to OUT_DIR/findings/TARGET,
//   the corpus to OUT_DIR/corpus/TARGET; the input being run is kept in OUT_DIR/current-TARGET.bin so that a crash that
//   kills the process (stack overflow, native fault) leaves it behind for build/fuzz.sh. One summary line at the end.
// quant-fuzz replay TARGET FILE...   runs files once and prints each outcome.
if (args.Length >= 2 && args[0] == "replay")
{
    var t = FuzzTarget.Get(args[1]);
    t.Prepare(Path.Combine(Path.GetTempPath(), $"quant-fuzz-{Environment.ProcessId}"));
    int bad = 0;
    foreach (var f in args.Skip(2))
    {
        var o = FuzzOracle.Execute(t, File.ReadAllBytes(f));
        if (o.Finding) bad++;
        Console.WriteLine($"{(o.Finding ? "FINDING" : "ok")} {f}: {o}");
        if (o.Finding && o.Error is not null) Console.WriteLine(o.Error);
    }
    return bad == 0 ? 0 : 1;
}
if (args.Length < 4)
{
    Console.Error.WriteLine("usage: quant-fuzz TARGET SECONDS REPO_ROOT OUT_DIR [SEED] | quant-fuzz replay TARGET FILE...");
    return 2;
}
return new Fuzzer(FuzzTarget.Get(args[0]), double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture), args[2], args[3],
    args.Length > 4 ? int.Parse(args[4], System.Globalization.CultureInfo.InvariantCulture) : 1).Run();

internal sealed class Fuzzer(FuzzTarget target, double seconds, string repoRoot, string outDir, int seed)
{
    private static readonly TimeSpan HangLimit = TimeSpan.FromSeconds(5);
    private const int MaxCorpus = 4000;

    private readonly Random _rng = new(seed);
    private readonly List<byte[]> _corpus = [];
    private readonly HashSet<string> _outcomes = [];
    private readonly Dictionary<string, string> _findings = [];
    private readonly string _findingDir = Path.Combine(outDir, "findings", target.Name);
    private readonly string _corpusDir = Path.Combine(outDir, "corpus", target.Name);
    private FileStream? _current;
    private long _runStarted = -1;
    private byte[] _running = [];
    private long _maxAllocated, _maxAllocatedInput;

    public int Run()
    {
        Directory.CreateDirectory(_findingDir);
        Directory.CreateDirectory(_corpusDir);
        // Targets that read a file write each input first: in memory (/dev/shm) when there is one (raw .bin samples: ~250 runs/s on this disk, ~10,000/s in memory).
        var scratch = Directory.Exists("/dev/shm") ? Path.Combine("/dev/shm", $"quant-fuzz-{Environment.ProcessId}") : Path.Combine(outDir, "work");
        target.Prepare(Path.Combine(scratch, target.Name));
        _current = new FileStream(Path.Combine(outDir, $"current-{target.Name}.bin"), FileMode.Create, FileAccess.Write, FileShare.Read);
        new Thread(Watchdog) { IsBackground = true }.Start();

        int seeds = 0;
        foreach (var s in target.Seeds(repoRoot).Concat(Directory.GetFiles(_corpusDir).Order(StringComparer.Ordinal).Select(File.ReadAllBytes)))
        {
            seeds++;
            Consider(s, isSeed: true);
        }
        var mutator = new Mutator(_rng, target.Tokens);
        var clock = Stopwatch.StartNew();
        long execs = 0;
        var limit = TimeSpan.FromSeconds(seconds);
        while (clock.Elapsed < limit)
        {
            var parent = _corpus[_rng.Next(_corpus.Count)];
            var input = mutator.Mutate(parent, () => _corpus[_rng.Next(_corpus.Count)]);
            if (_rng.Next(10) != 0) input = target.FixUp(input);
            Consider(input, isSeed: false);
            execs++;
        }
        clock.Stop();
        _current.SetLength(0);
        _current.Dispose();
        if (scratch.StartsWith("/dev/shm/", StringComparison.Ordinal)) Directory.Delete(scratch, recursive: true);
        Console.WriteLine(FormattableString.Invariant(
            $"{target.Name,-13} execs {execs,9}  time {clock.Elapsed.TotalSeconds,6:0.0} s  {execs / clock.Elapsed.TotalSeconds,7:0}/s  findings {_findings.Count,2}  corpus {_corpus.Count,5} (seeds {seeds})  distinct outcomes {_outcomes.Count}  max alloc {_maxAllocated / 1024.0 / 1024:0.0} MiB (input {_maxAllocatedInput} B)"));
        foreach (var (sig, file) in _findings) Console.WriteLine($"  finding: {sig} -> {file}");
        return _findings.Count == 0 ? 0 : 1;
    }

    private void Consider(byte[] input, bool isSeed)
    {
        var o = Execute(input);
        if (o.Finding)
        {
            if (!_findings.ContainsKey(o.Signature)) Record(input, o);
            return;
        }
        // No coverage instrumentation: an input that makes the loader answer with a message no input gave before reached a
        // new check, so it joins the corpus (kept below MaxCorpus; seeds always).
        if ((_outcomes.Add(o.Signature) && _corpus.Count < MaxCorpus) || isSeed)
        {
            _corpus.Add(input);
            if (!isSeed) File.WriteAllBytes(Path.Combine(_corpusDir, Hash(input) + ".bin"), input);
        }
    }

    private Outcome Execute(byte[] input)
    {
        _current!.Position = 0;
        _current.Write(input);
        _current.SetLength(input.Length);
        _current.Flush();
        _running = input;
        Volatile.Write(ref _runStarted, Stopwatch.GetTimestamp());
        var o = FuzzOracle.Execute(target, input);
        Volatile.Write(ref _runStarted, -1);
        if (o.AllocatedBytes > _maxAllocated) (_maxAllocated, _maxAllocatedInput) = (o.AllocatedBytes, input.Length);
        return o;
    }

    /// <summary>Shrinks a finding while it keeps its signature (chunks of halving size, bounded by tries and time).</summary>
    private byte[] Minimize(byte[] input, string signature)
    {
        var best = input;
        var clock = Stopwatch.StartNew();
        int tries = 0;
        for (int chunk = Math.Max(1, best.Length / 2); chunk >= 1 && tries < 4000 && clock.Elapsed.TotalSeconds < 20; chunk /= 2)
        {
            for (int at = 0; at + chunk <= best.Length && tries < 4000 && clock.Elapsed.TotalSeconds < 20;)
            {
                var candidate = best[..at].Concat(best[(at + chunk)..]).ToArray();
                tries++;
                if (Execute(candidate).Signature == signature) best = candidate;
                else at += chunk;
            }
        }
        return best;
    }

    private void Record(byte[] input, Outcome o)
    {
        var small = o.Signature.StartsWith("crash", StringComparison.Ordinal) ? Minimize(input, o.Signature) : input;
        var name = Hash(small);
        File.WriteAllBytes(Path.Combine(_findingDir, name + ".bin"), small);
        File.WriteAllText(Path.Combine(_findingDir, name + ".txt"), $"{o.Signature}\n{o.Detail}\n");
        _findings[o.Signature] = Path.Combine(_findingDir, name + ".bin");
        Console.WriteLine($"[{target.Name}] finding: {o.Signature} ({input.Length} -> {small.Length} bytes) {name}.bin");
    }

    /// <summary>A run past the limit is a hang: its input is saved and the process ends (a .NET thread cannot be stopped).</summary>
    private void Watchdog()
    {
        while (true)
        {
            Thread.Sleep(200);
            long started = Volatile.Read(ref _runStarted);
            if (started < 0 || Stopwatch.GetElapsedTime(started) < HangLimit) continue;
            var input = _running;
            var name = Hash(input);
            File.WriteAllBytes(Path.Combine(_findingDir, name + ".bin"), input);
            File.WriteAllText(Path.Combine(_findingDir, name + ".txt"), $"hang > {HangLimit.TotalSeconds} s\n");
            Console.WriteLine($"{target.Name,-13} HANG > {HangLimit.TotalSeconds} s on {input.Length} bytes -> {Path.Combine(_findingDir, name + ".bin")}");
            Environment.Exit(3);
        }
    }

    private static string Hash(byte[] b) => Convert.ToHexStringLower(SHA256.HashData(b))[..16];
}
