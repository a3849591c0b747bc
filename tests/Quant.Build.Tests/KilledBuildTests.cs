using System.Diagnostics;
using System.Text.RegularExpressions;
using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Build.Tests;

/// <summary>
/// A real <c>dotnet build</c> of a project with two models (the PaddleOCR cls classifier with its HTML report, and a tiny
/// committed model), killed with SIGKILL of its whole process tree at seeded random moments spread over the build's
/// whole duration; the next, normal build must succeed and leave every artifact byte-identical to a build that was
/// never interrupted (the build is deterministic), with no half-written file trusted and no temporary file shipped.
/// </summary>
/// <remarks>
/// <c>QUANT_KILL_TRIALS</c> (default 6) and <c>QUANT_KILL_SEED</c> (default 12) choose how many kill points and which;
/// <c>build/kill-builds.sh</c> runs many seeds. Each trial starts from a project that was restored but never built.
/// </remarks>
[Collection("msbuild")]
public class KilledBuildTests(PackageFeed feed, ITestOutputHelper output)
{
    private static readonly string[] Models = ["cls", "tiny"];

    private const string TinyYaml = """
        inputs:
          x:
            data: "tiny-calib/*.npy"
        checks:
          similar:
            stage: qat_vs_float
            output: "*"
            cosine: {min: 0.9}
        """;

    /// <summary>The cls model of <see cref="FixtureProject"/> (with Report="true") and the tiny concat_ranges model with its own data.</summary>
    private FixtureProject TwoModelProject(string name)
    {
        var p = new FixtureProject(feed, name, itemMetadata: "Report=\"true\" ");
        AddTinyModel(p);
        return p;
    }

    /// <summary>tests/data/compare/concat_ranges.onnx (Mul, Relu, Concat on 8 values) as <c>tiny</c>, with four samples.</summary>
    private static void AddTinyModel(FixtureProject p)
    {
        File.Copy(TestAssets.Data("compare", "concat_ranges.onnx"), Path.Combine(p.Dir, "models", "tiny.onnx"));
        Directory.CreateDirectory(Path.Combine(p.Dir, "tiny-calib"));
        foreach (var f in Directory.GetFiles(TestAssets.Data("compare", "unit"), "*.npy"))
            File.Copy(f, Path.Combine(p.Dir, "tiny-calib", Path.GetFileName(f)));
        File.WriteAllText(Path.Combine(p.Dir, "tiny.quant.yaml"), TinyYaml);
        p.EditProject("</ItemGroup>", "  <QuantModel Include=\"models/tiny.onnx\" QConfig=\"tiny.quant.yaml\" />\n  </ItemGroup>");
    }

    [Fact]
    public void A_build_killed_at_any_moment_is_finished_correctly_by_the_next_build()
    {
        int trials = int.TryParse(Environment.GetEnvironmentVariable("QUANT_KILL_TRIALS"), out var t) ? t : 6;
        int seed = int.TryParse(Environment.GetEnvironmentVariable("QUANT_KILL_SEED"), out var s) ? s : 12;
        var p = TwoModelProject("killed");
        var env = new Dictionary<string, string> { ["NUGET_PACKAGES"] = feed.PackageCache };
        string[] buildArgs = ["build", "-nologo", "-nodeReuse:false", "-p:UseSharedCompilation=false", "-v:n"];

        // The reference: one uninterrupted build from the state every trial starts from (restored, never built).
        p.Build("-t:Restore").AssertSucceeded();
        ResetToRestored(p);
        var reference = KillableBuild.Start(p.Dir, env, buildArgs);
        Assert.True(reference.WaitForExit(TimeSpan.FromMinutes(5)), "the reference build did not finish");
        Assert.True(reference.ExitCode == 0, reference.Output);
        var duration = reference.Elapsed;
        var expected = Artifacts(p, Models);
        foreach (var m in Models) Assert.Contains($"{m}/{m}.qbm", expected.Keys);
        Assert.Contains("cls/cls.report.html", expected.Keys);
        output.WriteLine($"reference build {duration.TotalSeconds:F1} s, {expected.Count} artifacts; {trials} trials, seed {seed}");

        // Each stage run of the reference and how long it took ("Quant: export cls finished in 12.3 s").
        var stages = Regex.Matches(reference.Output, @"Quant: (\w+ \w+) finished in ([0-9.]+) s")
            .Select(m => (Stage: m.Groups[1].Value, Seconds: double.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture))).ToList();
        Assert.Equal(Models.Length * 4 + 1, stages.Count); // export, convert, compile, check per model; the cls report

        var rng = new Random(seed);
        var hits = new List<string>();
        for (int trial = 0; trial < trials; trial++)
        {
            ResetToRestored(p);
            // Three trials in four aim at one stage run (taken in turn, from where the seed says): the kill comes a random
            // part of that stage's reference duration after its "started" line, whatever the machine's load makes of the
            // clock. The fourth kills at a random moment of the whole build (restore, C# compile, prepare, the copies).
            // Every third trial kills twice in a row: the second build starts from what the first left.
            int kills = trial % 3 == 2 ? 2 : 1;
            for (int k = 0; k < kills; k++)
            {
                var build = KillableBuild.Start(p.Dir, env, buildArgs);
                string aim;
                bool ended;
                if (k == 0 && trial % 4 != 3)
                {
                    var (stage, seconds) = stages[(seed + trial - trial / 4) % stages.Count];
                    var delay = TimeSpan.FromSeconds(seconds * 1.1 * rng.NextDouble());
                    aim = $"{stage} + {delay.TotalSeconds:F1} s";
                    ended = !build.WaitForOutput(new Regex($"Quant: {stage} started"), TimeSpan.FromMinutes(5)) || build.WaitForExit(delay);
                }
                else
                {
                    var delay = duration * rng.NextDouble();
                    aim = $"{delay.TotalSeconds:F1} s";
                    ended = build.WaitForExit(delay);
                }
                string hit;
                if (ended)
                {
                    build.WaitForExit(TimeSpan.FromMinutes(5));
                    hit = $"none: the build finished first ({build.Elapsed.TotalSeconds:F1} s, exit {build.ExitCode})";
                }
                else
                {
                    var state = QuantState(p);
                    var running = build.KillTree();
                    hit = $"{Stage(build.Output)} at {build.Elapsed.TotalSeconds:F1} s; running: {Summary(running)}; {state}";
                }
                build.Dispose();
                var line = $"trial {trial} kill {k + 1} (aimed at {aim}): {hit}";
                hits.Add(line);
                output.WriteLine(line);
            }

            var next = p.Build("-p:UseSharedCompilation=false");
            Assert.True(next.Code == 0, $"the build after {hits[^1]} failed:\n{next.Output}");
            // Nothing a kill leaves is a damaged file: every write is atomic, so no stamp or cache needs distrusting.
            Assert.DoesNotMatch(new Regex("warning QB(6009|4003)"), next.Output);
            var actual = Artifacts(p, Models);
            Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
            foreach (var (file, bytes) in expected)
                Assert.True(bytes.AsSpan().SequenceEqual(actual[file]), $"{file} differs from the uninterrupted build's after {hits[^1]}");
            Assert.Empty(Directory.GetFiles(p.OutDir, "*.tmp", SearchOption.AllDirectories));
            // What the kills left in the artifact folders was swept when the stage wrote again.
            Assert.Empty(Directory.GetFiles(p.Intermediate, ".*.tmp", SearchOption.AllDirectories));
        }

        // And the build after that has nothing to do: the stamps the recovering builds wrote are all sound.
        var runsBefore = Models.Select(m => p.Runs(m).Length).ToArray();
        p.Build().AssertSucceeded();
        Assert.Equal(runsBefore, Models.Select(m => p.Runs(m).Length).ToArray());
    }

    [Fact]
    public void A_truncated_program_calibration_cache_or_stamp_is_redone_with_a_warning_naming_it()
    {
        var p = new FixtureProject(feed, "damaged", outputNames: []);
        AddTinyModel(p);
        p.Build().AssertSucceeded();
        var expected = Artifacts(p, ["tiny"]);
        var dir = Path.Combine(p.Intermediate, "tiny");
        int before = p.Runs("tiny").Length;

        // What a disk that filled up, a copy cut short or a crashed file system leaves: the build redoes the stage.
        void AfterDamage(string file, string damage, string[] runs, params string[] warnings)
        {
            if (damage == "half") { var bytes = File.ReadAllBytes(file); File.WriteAllBytes(file, bytes[..(bytes.Length / 2)]); }
            else File.WriteAllText(file, damage);
            var b = p.Build();
            b.AssertSucceeded();
            foreach (var w in warnings) Assert.Matches(new Regex(w), b.Output);
            Assert.Equal(runs, p.Runs("tiny").Skip(before).ToArray());
            before += runs.Length;
            var actual = Artifacts(p, ["tiny"]);
            foreach (var (f, bytes) in expected) Assert.True(bytes.AsSpan().SequenceEqual(actual[f]), $"{f} differs after damaging {Path.GetFileName(file)}");
            // Sound again: the next build runs nothing and warns of nothing.
            var again = p.Build();
            again.AssertSucceeded();
            Assert.DoesNotContain("warning QB", again.Output);
            Assert.Equal(before, p.Runs("tiny").Length);
        }

        int qbmSize = expected["tiny/tiny.qbm"].Length;
        AfterDamage(Path.Combine(dir, "tiny.qbm"), "half", ["compile tiny", "check tiny"],
            $@"tiny\.qbm : warning QB6009: tiny: tiny\.qbm is {qbmSize / 2} bytes, but the stage wrote {qbmSize} \(cut short or changed since\); compile runs again");
        AfterDamage(Path.Combine(dir, "tiny.calibration.qcs"), "half", ["export tiny calibration=collected", "convert tiny", "compile tiny", "check tiny"],
            @"warning QB6009: tiny: tiny\.calibration\.qcs is \d+ bytes, but the stage wrote \d+ .*; export runs again",
            @"tiny\.calibration\.qcs ?: warning QB4003: the calibration cache 'tiny\.calibration\.qcs' cannot be read: it is truncated .*; calibrating again and rewriting it");
        AfterDamage(Path.Combine(dir, "compile.stamp"), "quant stage st", ["compile tiny", "check tiny"],
            @"compile\.stamp : warning QB6009: tiny: its stamp compile\.stamp is damaged \(no 'quant stage stamp v1' header\); compile runs again");
    }

    /// <summary>The project as restored and never built: obj/ keeps only what restore wrote, bin/ is gone.</summary>
    private static void ResetToRestored(FixtureProject p)
    {
        foreach (var dir in new[] { Path.Combine(p.Dir, "bin"), Path.Combine(p.Dir, "obj", "Debug") })
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    }

    /// <summary>
    /// Every file the stages made and the copies in the output folder, by name: all of obj/.../quant/ except the build's
    /// own bookkeeping (stamps and runs.log record times; data.list, below) and temporary files.
    /// </summary>
    private static Dictionary<string, byte[]> Artifacts(FixtureProject p, string[] models)
    {
        var result = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var f in Directory.GetFiles(p.Intermediate, "*", SearchOption.AllDirectories))
        {
            var name = Path.GetFileName(f);
            // data.list is what the globs matched at the last prepare: empty in a first build (no deps yet), the files once a
            // build got as far as export; either is sound, so it depends on how far the killed build got.
            if (name.StartsWith('.') || name.EndsWith(".stamp", StringComparison.Ordinal) || name is "runs.log" or "data.list") continue;
            result[Path.GetRelativePath(p.Intermediate, f).Replace('\\', '/')] = File.ReadAllBytes(f);
        }
        foreach (var m in models)
            foreach (var f in Directory.GetFiles(p.OutDir, m + ".*"))
                result[Path.GetFileName(f)] = File.ReadAllBytes(f);
        return result;
    }

    /// <summary>Where the build was, from its log so far: the last "Quant: STAGE NAME started/finished" line.</summary>
    private static string Stage(string log)
    {
        var last = Regex.Matches(log, @"Quant: (\w+(?: baseline)? \w+) (started|finished|failed)").LastOrDefault();
        if (last is null) return "before any stage (restore, C# compile, prepare)";
        return last.Groups[2].Value == "started" ? $"during {last.Groups[1].Value}" : $"after {last.Groups[1].Value}";
    }

    /// <summary>The stamps present and the temporary files being written, per model, at the instant before the kill.</summary>
    private static string QuantState(FixtureProject p)
    {
        if (!Directory.Exists(p.Intermediate)) return "no quant folder yet";
        var parts = new List<string>();
        foreach (var m in Models)
        {
            var dir = Path.Combine(p.Intermediate, m);
            if (!Directory.Exists(dir)) continue;
            var stamps = Directory.GetFiles(dir, "*.stamp").Select(f => Path.GetFileNameWithoutExtension(f)).Order();
            var temps = Directory.GetFiles(dir, ".*.tmp").Select(f => Path.GetFileName(f)).Order();
            parts.Add($"{m} stamps [{string.Join(",", stamps)}]" + (temps.Any() ? $" writing [{string.Join(",", temps)}]" : ""));
        }
        return string.Join("; ", parts);
    }

    private static string Summary(IReadOnlyList<string> running) =>
        string.Join(", ", running.GroupBy(r => r).Select(g => g.Count() > 1 ? $"{g.Key} x{g.Count()}" : g.Key));
}
