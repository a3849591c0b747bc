using System.Diagnostics;
using Quant.TestSupport;

namespace Quant.Build.Tests;

/// <summary>
/// <c>quant-check check --baseline package:ID@VERSION</c> and <c>baseline resolve</c> as shipped in the Quant.Build
/// package, against the packed <see cref="ShippedModel"/>: the baseline is read from the package, an exact version
/// in the global packages folder needs no source, and every resolution failure is one QB5005 line that names the
/// package, the sources and the fix — quickly, never a hang.
/// </summary>
[Collection("msbuild")]
public class PackageBaselineCliTests(PackageFeed feed)
{
    private string Tool => Path.Combine(feed.PackageCache, "quant.build", PackageFeed.Version, "tools", "net10.0", "quant-check.dll");

    /// <summary>A folder with a project file naming the baseline and a nuget.config with the given sources.</summary>
    private static string Project(string spec, params (string Name, string Folder)[] sources)
    {
        var dir = TestAssets.TempDir("package-baseline-cli");
        File.WriteAllText(Path.Combine(dir, "nuget.config"), "<configuration>\n  <packageSources>\n    <clear />\n" +
            string.Concat(sources.Select(s => $"    <add key=\"{s.Name}\" value=\"{s.Folder}\" />\n")) + "  </packageSources>\n</configuration>\n");
        var project = Path.Combine(dir, "app.csproj");
        File.WriteAllText(project, $"<Project>\n  <ItemGroup>\n    <QuantModel Include=\"cls.onnx\" Baseline=\"{spec}\" />\n  </ItemGroup>\n</Project>\n");
        return project;
    }

    private (int Code, string Stdout, string Stderr, TimeSpan Time) QuantCheck(params string[] args)
    {
        var clock = Stopwatch.StartNew();
        var (code, stdout, stderr) = TestAssets.Run("dotnet", [Tool, .. args], TimeSpan.FromMinutes(3),
            new Dictionary<string, string> { ["NUGET_PACKAGES"] = feed.PackageCache });
        return (code, stdout, stderr, clock.Elapsed);
    }

    [Fact]
    public void Check_with_an_exact_package_baseline_reads_the_shipped_report_and_needs_no_source_once_cached()
    {
        var shipped = ShippedModel.Of(feed);
        var spec = $"package:{ShippedModel.Id}@{ShippedModel.Version}";
        var resolved = QuantCheck("baseline", "resolve", spec, "--name", "cls", "--project", Project(spec, ("models", shipped.Folder)));
        Assert.True(resolved.Code == 0, resolved.Stderr);
        Assert.Contains($"-> package {ShippedModel.Id} {ShippedModel.Version}", resolved.Stdout);

        // The shipped project's own model, qat and config against what it shipped, with a source that does not exist.
        var offline = Project(spec, ("gone", Path.Combine(TestAssets.TempDir("no-feed"), "missing")));
        var a = shipped.Project;
        var outDir = TestAssets.TempDir("package-baseline-out");
        var check = QuantCheck("check", Path.Combine(a.Dir, "models", "cls.onnx"), "--config", a.ConfigPath,
            "--qat", Path.Combine(a.Intermediate, "cls", "cls.qat.onnx"), "--out", outDir, "--name", "cls", "--baseline", spec, "--project", offline);
        Assert.True(check.Code == 0, check.Stdout + check.Stderr);
        // the threshold, runtime_vs_qat's default bound, and the 7 metrics' worst samples of each of the two stage pairs
        Assert.Contains("cls: 16 of 16 checks passed", check.Stdout);
        Assert.Matches(@"cosine min [0-9.]+ is within 0\.001 of baseline [0-9.]+ \(package Acme\.ClsModel 1\.0\.0\)", check.Stdout);
        Assert.Contains($"\"baseline\": \"{spec}\"", File.ReadAllText(Path.Combine(outDir, "cls.check.json")));
    }

    [Fact]
    public void Resolution_failures_are_one_QB5005_naming_the_package_the_sources_and_the_fix()
    {
        var shipped = ShippedModel.Of(feed);
        var models = ("models", shipped.Folder);
        var missingFolder = Path.Combine(TestAssets.TempDir("no-feed"), "missing");
        (string Spec, string Name, (string, string)[] Sources, string[] Expected)[] cases =
        [
            ("package:Acme.Nothing", "cls", [models], ["no package 'Acme.Nothing' in models (" + shipped.Folder + ")", "add the feed that has it to nuget.config"]),
            ($"package:{ShippedModel.Id}@9.9.9", "cls", [models], [$"package '{ShippedModel.Id}' has no version 9.9.9 in models", "available: 1.0.0"]),
            ($"package:{ShippedModel.Id}@{ShippedModel.Version}", "det", [models], ["no det.check.json, only contentFiles/any/any/models/cls/cls.check.json", "Pack=\"true\""]),
            ($"package:{ShippedModel.Id}", "cls", [("gone", missingFolder)], [$"gone: the folder {missingFolder} does not exist", $"pin package:{ShippedModel.Id}@VERSION"]),
            ("package:Acme Models", "cls", [models], ["does not name a package", "package:ID@VERSION"]),
            ($"package:{ShippedModel.Id}@not-a-version", "cls", [models], ["'not-a-version' is not a package version"]),
        ];
        foreach (var (spec, name, sources, expected) in cases)
        {
            var project = Project(spec, sources);
            var r = QuantCheck("baseline", "resolve", spec, "--name", name, "--project", project);
            Assert.Equal(1, r.Code);
            var line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            // Reported at the Baseline metadata in the project file (line 3; "package:" starts at column 46).
            Assert.StartsWith($"{project}(3,46): error QB5005: baseline ", line);
            foreach (var e in expected) Assert.Contains(e, line);
            Assert.True(r.Time < TimeSpan.FromSeconds(30), $"{spec}: {r.Time.TotalSeconds:F1} s");
        }

        // A nuget.config that is not XML: the same one line, not NuGet's exception.
        var broken = Project($"package:{ShippedModel.Id}", models);
        File.WriteAllText(Path.Combine(Path.GetDirectoryName(broken)!, "nuget.config"), "<configuration><packageSources>");
        var bad = QuantCheck("baseline", "resolve", $"package:{ShippedModel.Id}", "--name", "cls", "--project", broken);
        Assert.Equal(1, bad.Code);
        var only = Assert.Single(bad.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.StartsWith($"{broken}(3,46): error QB5005: baseline package:{ShippedModel.Id}: cannot read the NuGet configuration (nuget.config)", only);
    }
}
