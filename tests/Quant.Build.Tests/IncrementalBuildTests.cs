using Xunit.Abstractions;

namespace Quant.Build.Tests;

/// <summary>
/// Real <c>dotnet build</c>s of fixture projects consuming the packed Quant.Build package; what ran is read
/// from the tool's own record (<c>obj/.../quant/NAME/runs.log</c>), one line per stage run.
/// </summary>
[Collection("msbuild")]
public class IncrementalBuildTests(PackageFeed feed, ITestOutputHelper output)
{
    private const string Export = "export cls calibration=collected";
    private const string ExportFromCache = "export cls calibration=cache";
    private const string Convert = "convert cls";
    private const string Compile = "compile cls";
    private const string Check = "check cls";
    private static readonly string[] Chain = FixtureProject.Chain();

    private static void AssertNewRuns(FixtureProject p, int before, params string[] expected) =>
        Assert.Equal(expected, p.Runs().Skip(before).ToArray());

    [Fact]
    public void First_build_runs_the_four_stages_a_second_runs_none_and_clean_removes_the_artifacts()
    {
        var p = new FixtureProject(feed, "noop");
        var first = p.Build();
        first.AssertSucceeded();
        AssertNewRuns(p, 0, Chain);
        Assert.True(File.Exists(Path.Combine(p.OutDir, "cls.qat.onnx")), "the qat model is copied to the output folder");
        Assert.True(File.Exists(Path.Combine(p.OutDir, "cls.qbm")), "the compiled program is copied to the output folder");
        Assert.Equal(File.ReadAllBytes(Path.Combine(p.Intermediate, "cls", "cls.qbm")), File.ReadAllBytes(Path.Combine(p.OutDir, "cls.qbm")));
        foreach (var stage in new[] { "export", "convert", "compile", "check" }) Assert.Contains($"Quant: {stage} cls finished in", first.Output);
        foreach (var f in new[] { "cls.qat.onnx", "cls.model_check.json", "cls.quantized.onnx", "cls.convert.json", "cls.qbm", "cls.compile.json",
                                  "cls.check.json", "cls.check.junit.xml", "cls.check.md", "deps" })
            Assert.True(File.Exists(Path.Combine(p.Intermediate, "cls", f)), f);
        // The check measured every pair of the chain, the compiled program bit-exact against the quantized model.
        var report = File.ReadAllText(Path.Combine(p.Intermediate, "cls", "cls.check.json"));
        foreach (var pair in new[] { "qat_vs_float", "runtime_vs_qat", "quantized_vs_qat", "compiled_vs_quantized" }) Assert.Contains($"\"stage\": \"{pair}\"", report);
        Assert.Contains("\"default_bound\": \"bit_exact\"", report);

        var second = p.Build();
        second.AssertSucceeded();
        AssertNewRuns(p, 4);
        output.WriteLine($"first build {first.Time.TotalSeconds:F1} s, no-op rebuild {second.Time.TotalSeconds:F1} s");

        // A deleted artifact is rebuilt by its stage, and what reads it runs again.
        File.Delete(Path.Combine(p.Intermediate, "cls", "cls.qbm"));
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 4, Compile, Check);

        var clean = p.Build("-t:Clean");
        clean.AssertSucceeded();
        Assert.False(Directory.Exists(p.Intermediate), "Clean removes the intermediate quant folder");
        Assert.False(File.Exists(Path.Combine(p.OutDir, "cls.qat.onnx")), "Clean removes the copied model");
        Assert.False(File.Exists(Path.Combine(p.OutDir, "cls.qbm")), "Clean removes the copied program");
    }

    [Fact]
    public void A_checks_threshold_edit_reruns_only_the_check_and_a_node_qtype_edit_reruns_the_whole_chain_from_cached_statistics()
    {
        var p = new FixtureProject(feed, "edits");
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 0, Chain);

        p.EditConfig("cosine: {min: 0.99}", "cosine: {min: 0.98}");
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 4, Check);

        // A comment is not content: nothing runs.
        p.EditConfig("calibration:", "# calibrated on three crops\ncalibration:");
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 5);

        var qat = Path.Combine(p.Intermediate, "cls", "cls.qat.onnx");
        var qbm = Path.Combine(p.Intermediate, "cls", "cls.qbm");
        var (qatBefore, qbmBefore) = (File.ReadAllBytes(qat), File.ReadAllBytes(qbm));
        p.EditConfig("op_config:", "node_config:\n    p2o.Conv.1: {qtype: int16}\n  op_config:");
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 5, ExportFromCache, Convert, Compile, Check);
        Assert.False(qatBefore.AsSpan().SequenceEqual(File.ReadAllBytes(qat)), "the node_config change reaches the qat model");
        Assert.False(qbmBefore.AsSpan().SequenceEqual(File.ReadAllBytes(qbm)), "and the compiled program");
    }

    [Fact]
    public void A_compile_property_reruns_only_compile_and_the_check()
    {
        var p = new FixtureProject(feed, "compileprop");
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 0, Chain);
        var qbm = Path.Combine(p.Intermediate, "cls", "cls.qbm");
        var before = File.ReadAllBytes(qbm);

        // The memory plan made for batch 2 instead of the declared dims' batch 1: another program; going back gives the first one again.
        var batch2 = p.Build("-p:QuantCompileInputShapes=x=2x3x48x192");
        batch2.AssertSucceeded();
        AssertNewRuns(p, 4, Compile, Check);
        Assert.False(before.AsSpan().SequenceEqual(File.ReadAllBytes(qbm)), "the program is planned for the given shape");
        using (var report = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(p.Intermediate, "cls", "cls.compile.json"))))
            Assert.Equal([2, 3, 48, 192], report.RootElement.GetProperty("planned_input_shapes").GetProperty("x").EnumerateArray().Select(d => d.GetInt32()));

        p.Build().AssertSucceeded();
        AssertNewRuns(p, 6, Compile, Check);
        Assert.Equal(before, File.ReadAllBytes(qbm));

        // Stages without the later pairs: convert and compile no longer run, and the check (its pairs changed) runs once more.
        p.EditProject("OutputName=\"cls\"", "OutputName=\"cls\" Stages=\"export;check;runtime_vs_qat\"");
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 8, Check);
        Assert.DoesNotContain("quantized_vs_qat", File.ReadAllText(Path.Combine(p.Intermediate, "cls", "cls.check.json")));
    }

    [Fact]
    public void CalibrationData_metadata_replaces_the_configs_data_globs()
    {
        // Export and check only: what this test is about, without the later stages' time.
        var p = new FixtureProject(feed, "caldata", itemMetadata: "CalibrationData=\"frames/*.npy\" Stages=\"export;check;runtime_vs_qat\" ");
        Directory.Move(Path.Combine(p.Dir, "calib"), Path.Combine(p.Dir, "frames"));
        p.EditConfig("data: \"calib/*.npy\"", "data: \"nothing/*.npy\"");
        var first = p.Build("-v:d");
        first.AssertSucceeded();
        AssertNewRuns(p, 0, Export, Check);
        // Under MSBuild the tool's output is redirected: plain progress lines with the time left, no terminal escapes.
        Assert.Matches(@"calibration: \d+/\d+ \(\d+%\), \d+\.\d s(, about \d+\.\d s left)?", first.Output);
        Assert.DoesNotContain('\x1b', first.Output);
        var deps = File.ReadAllText(Path.Combine(p.Intermediate, "cls", "deps"));
        Assert.Contains(Path.Combine("frames", "sample_00.npy"), deps);
        Assert.DoesNotContain("nothing", deps);

        // A file added where the metadata points re-runs calibration.
        File.Copy(Path.Combine(p.Dir, "frames", "sample_00.npy"), Path.Combine(p.Dir, "frames", "sample_09.npy"));
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 2, Export, Check);
    }

    [Fact]
    public void Adding_a_calibration_file_recalibrates_and_a_property_reruns_its_stage()
    {
        var p = new FixtureProject(feed, "data", itemMetadata: "Stages=\"export;check;runtime_vs_qat\" ");
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 0, Export, Check);

        p.AddCalibrationFile(3);
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 2, Export, Check);
        Assert.Contains("sample_03.npy", File.ReadAllText(Path.Combine(p.Intermediate, "cls", "deps")));

        // A -p: property that the check depends on re-runs the check, and only it; going back re-runs it again.
        p.Build("-p:QuantTreatCheckFailuresAsWarnings=true").AssertSucceeded();
        AssertNewRuns(p, 4, Check);
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 5, Check);
        p.Build("-p:QuantBuildEnabled=false").AssertSucceeded();
        AssertNewRuns(p, 6);
    }

    [Fact]
    public void Runtime_vs_qat_runs_by_default_reusing_the_exports_float_vs_qat_and_Stages_can_leave_it_out()
    {
        var p = new FixtureProject(feed, "runtime");
        var first = p.Build("-v:d");
        first.AssertSucceeded();
        AssertNewRuns(p, 0, Chain);
        var json = Path.Combine(p.Intermediate, "cls", "cls.check.json");
        Assert.Contains("\"stage\": \"runtime_vs_qat\"", File.ReadAllText(json));
        // The check read the export's float-vs-qat measurement instead of running both models again.
        Assert.Contains("qat_vs_float: as the export measured it", first.Output);

        // Stages without runtime_vs_qat: the check runs again (its options changed), qat_vs_float only; export does not.
        var csproj = Directory.GetFiles(p.Dir, "*.csproj").Single();
        File.WriteAllText(csproj, File.ReadAllText(csproj).Replace("OutputName=\"cls\"", "OutputName=\"cls\" Stages=\"export;check\""));
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 4, Check);
        Assert.DoesNotContain("runtime_vs_qat", File.ReadAllText(json));

        File.WriteAllText(csproj, File.ReadAllText(csproj).Replace("Stages=\"export;check\"", "Stages=\"export;runtime\""));
        var bad = p.Build();
        Assert.NotEqual(0, bad.Code);
        Assert.Contains("QB6004", bad.Output);
        Assert.Contains("unknown stage 'runtime' in Stages; known stages: export, convert, compile, check, qat_vs_float, runtime_vs_qat, quantized_vs_qat, compiled_vs_quantized", bad.Output);
    }

    [Fact]
    public void A_failing_threshold_fails_the_build_at_its_yaml_position_and_is_a_warning_when_asked()
    {
        var p = new FixtureProject(feed, "gate", itemMetadata: "Stages=\"export;check;runtime_vs_qat\" ");
        p.EditConfig("cosine: {min: 0.99}", "cosine: {min: 0.99}\n    l1: {max: 1.0e-30}");
        var failed = p.Build();
        Assert.NotEqual(0, failed.Code);
        // checks: starts at line 16 of the fixture yaml; the l1 bound's max value is at line 21, column 15.
        Assert.Matches(@"cls\.quant\.yaml\(21,15\): error QB5001: [^\r\n]*l1", failed.Output);
        Assert.DoesNotContain("MSB6006", failed.Output); // the tool's own diagnostic, not "exited with code 1"
        Assert.False(File.Exists(Path.Combine(p.Intermediate, "cls", "check.stamp")), "a failed check is not trusted");

        // Not trusted means: the next build checks again (and fails again) without re-exporting.
        var again = p.Build();
        Assert.NotEqual(0, again.Code);
        Assert.Contains("Quant: check cls started", again.Output);
        Assert.DoesNotContain("Quant: export cls started", again.Output);
        Assert.Equal([Export], p.Runs()); // a failed check records no run

        var warned = p.Build("-p:QuantTreatCheckFailuresAsWarnings=true");
        warned.AssertSucceeded();
        Assert.Matches(@"cls\.quant\.yaml\(21,15\): warning QB5001", warned.Output);
    }

    [Fact]
    public void Three_models_built_in_parallel_give_the_same_artifacts_as_a_sequential_build()
    {
        string[] names = ["a", "b", "c"];
        var parallel = new FixtureProject(feed, "par", names);
        var sequential = new FixtureProject(feed, "seq", names);
        parallel.Build("-m").AssertSucceeded();
        sequential.Build("-m:1").AssertSucceeded();
        foreach (var n in names)
        {
            Assert.Equal(FixtureProject.Chain(n), parallel.Runs(n));
            foreach (var artifact in new[] { ".qat.onnx", ".qbm" })
            {
                var a = File.ReadAllBytes(Path.Combine(parallel.OutDir, n + artifact));
                var b = File.ReadAllBytes(Path.Combine(sequential.OutDir, n + artifact));
                Assert.True(a.AsSpan().SequenceEqual(b), $"{n}{artifact} differs between -m and -m:1");
            }
        }
    }
}
