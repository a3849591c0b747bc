using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Build.Tests;

/// <summary>
/// Builds that run at the same time, as real <c>dotnet build</c>s: two of one project (an IDE and a terminal) take
/// turns on each model's lock and leave exactly what one build leaves; a parallel build of two projects that read
/// one calibration folder leaves that folder as it was.
/// </summary>
[Collection("msbuild")]
public class ConcurrentBuildTests(PackageFeed feed, ITestOutputHelper output)
{
    private static readonly string[] Artifacts = ["cls.qat.onnx", "cls.calibration.qcs", "cls.quantized.onnx", "cls.qbm", "cls.check.json"];

    [Fact]
    public async Task Two_builds_of_one_project_at_once_take_turns_and_leave_what_one_build_leaves()
    {
        var p = new FixtureProject(feed, "twice");
        p.Build().AssertSucceeded();
        var model = Path.Combine(p.Intermediate, "cls");
        var single = Artifacts.ToDictionary(a => a, a => File.ReadAllBytes(Path.Combine(model, a)));

        // The project is compiled and restored; every quant stage is to run again, in both builds at once.
        Directory.Delete(p.Intermediate, recursive: true);
        var builds = await Task.WhenAll(Task.Run(() => p.Build("--no-restore")), Task.Run(() => p.Build("--no-restore")));
        foreach (var b in builds) b.AssertSucceeded();
        output.WriteLine($"concurrent builds: {builds[0].Time.TotalSeconds:F1} s and {builds[1].Time.TotalSeconds:F1} s");
        // One waited for the other's lock, and said so at normal verbosity.
        Assert.Contains(builds, b => b.Output.Contains($"quant-check: waiting for another build of cls in {model}"));

        foreach (var a in Artifacts)
            Assert.True(single[a].AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(model, a))), $"{a} differs from a single build's");
        foreach (var a in new[] { "cls.qat.onnx", "cls.qbm" })
            Assert.True(single[a].AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(p.OutDir, a))), $"the copy of {a} in the output folder differs from a single build's");
        Assert.Empty(Directory.GetFiles(model, "*.tmp"));

        // What they left is consistent: the next build finds every stage up to date.
        int runs = p.Runs().Length;
        p.Build().AssertSucceeded();
        Assert.Equal(runs, p.Runs().Length);
    }

    [Fact]
    public void A_parallel_build_of_two_projects_reading_one_calibration_folder_leaves_the_folder_as_it_was()
    {
        var shared = TestAssets.TempDir("quant-shared-calibration");
        foreach (var f in Directory.GetFiles(TestAssets.Data("ppocr-cls"), "cls_*.npy").Order(StringComparer.Ordinal).Take(3))
            File.Copy(f, Path.Combine(shared, Path.GetFileName(f)));
        var before = Snapshot(shared);

        var metadata = $"CalibrationData=\"{shared}/*.npy\" Stages=\"export;check;runtime_vs_qat\" ";
        var a = new FixtureProject(feed, "shareda", itemMetadata: metadata);
        var b = new FixtureProject(feed, "sharedb", itemMetadata: metadata);
        File.WriteAllText(Path.Combine(a.Dir, "both.slnx"), $"""
            <Solution>
              <Project Path="{Path.GetFileName(a.ProjectFile)}" />
              <Project Path="{Path.GetRelativePath(a.Dir, b.ProjectFile)}" />
            </Solution>
            """);
        var build = a.Build("both.slnx", "-m");
        build.AssertSucceeded();
        output.WriteLine($"-m build of two projects: {build.Time.TotalSeconds:F1} s");

        foreach (var p in new[] { a, b })
        {
            Assert.Equal(["export cls calibration=collected", "check cls"], p.Runs());
            var deps = File.ReadAllText(Path.Combine(p.Intermediate, "cls", "deps"));
            foreach (var f in before.Keys) Assert.Contains($"data {Path.Combine(shared, f)}", deps);
        }
        Assert.Equal(before, Snapshot(shared)); // read only: nothing added, nothing rewritten
        Assert.Equal(File.ReadAllBytes(Path.Combine(a.Intermediate, "cls", "cls.qat.onnx")), File.ReadAllBytes(Path.Combine(b.Intermediate, "cls", "cls.qat.onnx")));
    }

    /// <summary>Every file under the folder with its size and last write time.</summary>
    private static Dictionary<string, (long, DateTime)> Snapshot(string dir) =>
        Directory.GetFiles(dir, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(dir, f), f => (new FileInfo(f).Length, File.GetLastWriteTimeUtc(f)));
}
