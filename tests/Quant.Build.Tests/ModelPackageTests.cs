using System.Text.RegularExpressions;
using System.Xml.Linq;
using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Build.Tests;

/// <summary>
/// Model packages with real <c>dotnet pack</c> and <c>dotnet build</c>: project A packs the cls model
/// (<see cref="ShippedModel"/>); a consumer gets the model copied; project B, with
/// <c>Baseline="package:Acme.ClsModel"</c> and a nuget.config naming A's feed, fails when its model is worse.
/// </summary>
[Collection("msbuild")]
public class ModelPackageTests(PackageFeed feed, ITestOutputHelper output)
{
    /// <summary>A coarser calibration than A's (percentile clipping of every activation) that costs the cls model most of its accuracy.</summary>
    private const string CoarseCalibration = "calibration_type: percentile\n      max_percentile: 0.9";

    [Fact]
    public void Pack_puts_the_qat_model_the_program_and_the_check_report_under_models_NAME_and_a_consumer_gets_the_models_copied()
    {
        var shipped = ShippedModel.Of(feed);
        output.WriteLine($"build + pack of A: {shipped.PackResult.Time.TotalSeconds:F1} s");
        Assert.Contains("Quant: check cls finished", shipped.PackResult.Output); // the stages ran before the package was made
        var entries = ShippedModel.Entries(shipped.PackagePath);
        Assert.Contains("contentFiles/any/any/models/cls/cls.qat.onnx", entries);
        Assert.Contains("contentFiles/any/any/models/cls/cls.qbm", entries);
        Assert.Contains("contentFiles/any/any/models/cls/cls.check.json", entries);
        Assert.DoesNotContain(entries, e => e.EndsWith(".quantized.onnx", StringComparison.Ordinal)); // an intermediate, like the reports
        Assert.DoesNotContain(entries, e => e.EndsWith(".calibration.qcs", StringComparison.Ordinal) || e.EndsWith(".check.md", StringComparison.Ordinal));
        var nuspec = XDocument.Parse(ShippedModel.Read(shipped.PackagePath, $"{ShippedModel.Id}.nuspec"));
        var files = nuspec.Descendants().Where(e => e.Name.LocalName == "files").ToDictionary(e => (string)e.Attribute("include")!);
        Assert.Equal("true", (string?)files["any/any/models/cls/cls.qat.onnx"].Attribute("copyToOutput"));
        Assert.Equal("true", (string?)files["any/any/models/cls/cls.qbm"].Attribute("copyToOutput"));
        Assert.Equal("false", (string?)files["any/any/models/cls/cls.check.json"].Attribute("copyToOutput"));
        Assert.Equal("false", (string?)files["any/any/models/cls/cls.qat.onnx"].Attribute("flatten"));

        // A consumer's build copies the model (and only the model) to models/cls/ in its output.
        var consumer = new FixtureProject(feed, "consumer", outputNames: []);
        consumer.AddPackageSource("models", shipped.Folder);
        consumer.EditProject("<PackageReference Include=\"Quant.Build\"", $"<PackageReference Include=\"{ShippedModel.Id}\" Version=\"{ShippedModel.Version}\" />\n    <PackageReference Include=\"Quant.Build\"");
        var built = consumer.Build();
        built.AssertSucceeded();
        var copied = Path.Combine(consumer.OutDir, "models", "cls", "cls.qat.onnx");
        Assert.True(File.Exists(copied), built.Output);
        Assert.Equal(File.ReadAllBytes(Path.Combine(shipped.Project.Intermediate, "cls", "cls.qat.onnx")), File.ReadAllBytes(copied));
        Assert.Equal(File.ReadAllBytes(Path.Combine(shipped.Project.Intermediate, "cls", "cls.qbm")),
            File.ReadAllBytes(Path.Combine(consumer.OutDir, "models", "cls", "cls.qbm")));
        Assert.False(File.Exists(Path.Combine(consumer.OutDir, "models", "cls", "cls.check.json")), "the check report stays in the package");
    }

    [Fact]
    public void A_package_baseline_passes_when_the_model_is_not_worse_and_fails_with_QB5002_when_it_is()
    {
        var shipped = ShippedModel.Of(feed);
        var b = new FixtureProject(feed, "consumer-b", itemMetadata: $"Baseline=\"package:{ShippedModel.Id}\" ");
        b.AddPackageSource("models", shipped.Folder);

        // Same model, same config: as good as what was shipped.
        var same = b.Build();
        same.AssertSucceeded();
        Assert.Equal(FixtureProject.Chain(), b.Runs());
        Assert.Equal($"package:{ShippedModel.Id}@{ShippedModel.Version}\n", File.ReadAllText(Path.Combine(b.Intermediate, "cls", "baseline.resolved")));
        var report = File.ReadAllText(Path.Combine(b.Intermediate, "cls", "cls.check.json"));
        Assert.Contains($"\"baseline\": \"package:{ShippedModel.Id}@{ShippedModel.Version}\"", report);
        // Each metric's worst sample, for each of the four stage pairs (the threshold's cosine min is one of them).
        Assert.Equal(28, Regex.Matches(report, "\"kind\": \"baseline\"").Count);

        // The floating version is asked again each build; unchanged, it re-runs nothing.
        var again = b.Build();
        again.AssertSucceeded();
        Assert.Contains("Quant: resolve baseline cls finished", again.Output);
        Assert.Equal(4, b.Runs().Length);
        output.WriteLine($"B first build {same.Time.TotalSeconds:F1} s, rebuild with a floating package baseline {again.Time.TotalSeconds:F1} s");

        // A coarser calibration, with the threshold relaxed so that the config's own check passes: the shipped baseline catches it.
        b.EditConfig("calibration_type: max", CoarseCalibration);
        b.EditConfig("cosine: {min: 0.99}", "cosine: {min: 0.3}");
        var worse = b.Build();
        Assert.NotEqual(0, worse.Code);
        Assert.DoesNotContain("QB5001", worse.Output);
        var lines = File.ReadAllLines(b.ProjectFile);
        int line = Array.FindIndex(lines, l => l.Contains("Baseline=\"package:", StringComparison.Ordinal)) + 1;
        int column = lines[line - 1].IndexOf("package:", StringComparison.Ordinal) + 1;
        Assert.Matches(Regex.Escape($"{b.ProjectFile}({line},{column}): error QB5002: cls: qat_vs_float output 'softmax_0.tmp_0' sqnr min ") +
                       @"[-0-9.E]+ regressed from baseline [0-9.E]+ by more than the tolerance 0\.001 \(package Acme\.ClsModel 1\.0\.0;", worse.Output);
        // The threshold the shipped model's checks read (cosine min) is reported at that threshold in the yaml.
        Assert.Matches(@"cls\.quant\.yaml\(\d+,\d+\): error QB5002: cls: qat_vs_float output 'softmax_0\.tmp_0' cosine min [0-9.]+ regressed from baseline 1 ", worse.Output);
    }

    [Fact]
    public void A_newly_shipped_version_reruns_the_check_and_an_exact_version_builds_without_any_source()
    {
        var shipped = ShippedModel.Of(feed);
        var newer = TestAssets.TempDir("quant-models-newer");
        var b = new FixtureProject(feed, "consumer-float", itemMetadata: $"Baseline=\"package:{ShippedModel.Id}\" ");
        b.AddPackageSource("models", shipped.Folder);
        b.AddPackageSource("newer", newer);
        b.Build().AssertSucceeded();
        Assert.Equal(FixtureProject.Chain(), b.Runs());

        // A ships 1.1.0 (into a feed only this test reads): the floating baseline moves to it and the check runs again.
        shipped.Project.Pack(newer, "-p:PackageVersion=1.1.0").AssertSucceeded();
        var moved = b.Build();
        moved.AssertSucceeded();
        Assert.Equal([.. FixtureProject.Chain(), "check cls"], b.Runs());
        Assert.Equal($"package:{ShippedModel.Id}@1.1.0\n", File.ReadAllText(Path.Combine(b.Intermediate, "cls", "baseline.resolved")));

        // Pinned to 1.0.0 (in the global packages folder since the first build): no source is asked, so none is needed.
        b.EditProject($"Baseline=\"package:{ShippedModel.Id}\"", $"Baseline=\"package:{ShippedModel.Id}@{ShippedModel.Version}\"");
        File.WriteAllText(Path.Combine(b.Dir, "nuget.config"), File.ReadAllText(Path.Combine(b.Dir, "nuget.config"))
            .Replace(shipped.Folder, Path.Combine(b.Dir, "no-such-feed")).Replace(newer, Path.Combine(b.Dir, "no-such-feed-either")));
        var pinned = b.Build("--no-restore");
        pinned.AssertSucceeded();
        Assert.DoesNotContain("Quant: resolve baseline", pinned.Output);
        Assert.Equal([.. FixtureProject.Chain(), "check cls", "check cls"], b.Runs());
        Assert.Contains($"\"baseline\": \"package:{ShippedModel.Id}@{ShippedModel.Version}\"", File.ReadAllText(Path.Combine(b.Intermediate, "cls", "cls.check.json")));
        var noop = b.Build("--no-restore");
        noop.AssertSucceeded();
        Assert.Equal(6, b.Runs().Length);
        output.WriteLine($"no-op rebuild with an exact package baseline {noop.Time.TotalSeconds:F1} s");
    }

    [Fact]
    public void A_packed_model_without_checks_warns_that_the_package_has_no_check_report_and_Pack_must_be_a_boolean()
    {
        var p = new FixtureProject(feed, "nochecks", itemMetadata: "Pack=\"true\" ", properties: "<PackageId>Acme.NoChecks</PackageId><Version>1.0.0</Version>");
        var yaml = File.ReadAllText(p.ConfigPath);
        File.WriteAllText(p.ConfigPath, yaml[..yaml.IndexOf("checks:", StringComparison.Ordinal)]);
        var folder = TestAssets.TempDir("quant-models-nochecks");
        var packed = p.Pack(folder);
        packed.AssertSucceeded();
        Assert.Matches(@"warning QB6007: QuantModel 'models/cls\.onnx' is packed without cls\.check\.json because its check does not run", packed.Output);
        var entries = ShippedModel.Entries(Path.Combine(folder, "Acme.NoChecks.1.0.0.nupkg"));
        Assert.Contains("contentFiles/any/any/models/cls/cls.qat.onnx", entries);
        Assert.DoesNotContain(entries, e => e.EndsWith(".check.json", StringComparison.Ordinal));

        p.EditProject("Pack=\"true\"", "Pack=\"yes\"");
        var bad = p.Build("--no-restore");
        Assert.NotEqual(0, bad.Code);
        Assert.Contains("error QB6008: QuantModel 'models/cls.onnx': Pack=\"yes\" is not true or false", bad.Output);
    }
}
