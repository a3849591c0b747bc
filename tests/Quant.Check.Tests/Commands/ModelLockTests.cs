using System.Diagnostics;
using Quant.Core.Diagnostics;
using Quant.TestSupport;

namespace Quant.Check.Tests.Commands;

/// <summary>
/// Two quant-check runs on one output folder take turns on the model's lock (<c>NAME.lock</c>): real exports of the
/// cls model in separate processes; a lock held too long is QB6021 naming the lock file; a killed holder leaves no lock.
/// </summary>
public class ModelLockTests
{
    private static readonly string Tool = Path.Combine(AppContext.BaseDirectory, "quant-check.dll");
    private static readonly string ClsModel = Path.Combine(TestAssets.RepoRoot, "samples", "ppocr-cls", "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx");

    private static string[] Export(string config, string outDir) => ["export", ClsModel, "--config", config, "--out", outDir, "--name", "cls"];

    private static (int Code, string Stdout, string Stderr) QuantCheck(string[] args, IDictionary<string, string>? env = null) =>
        TestAssets.Run("dotnet", [Tool, .. args], TimeSpan.FromMinutes(5), env);

    [Fact]
    public async Task Two_exports_into_one_folder_at_once_take_turns_and_write_what_one_export_writes()
    {
        var root = TestAssets.TempDir("lock-parallel");
        var config = DeterminismTests.WriteConfig(root);
        var single = Path.Combine(root, "single");
        var (code, _, stderr) = QuantCheck(Export(config, single));
        Assert.True(code == 0, stderr);

        var shared = Path.Combine(root, "shared");
        // Held by this test while both start, so that they certainly overlap; released after a moment.
        var held = ModelLock.Acquire(shared, "cls");
        var runs = new[] { Task.Run(() => QuantCheck(Export(config, shared))), Task.Run(() => QuantCheck(Export(config, shared))) };
        await Task.Delay(TimeSpan.FromSeconds(3));
        held.Dispose();
        var results = await Task.WhenAll(runs);

        foreach (var r in results) Assert.True(r.Code == 0, r.Stderr);
        Assert.Contains(results, r => r.Stderr.Contains($"quant-check: waiting for another build of cls in {shared} (lock {Path.Combine(shared, "cls.lock")}); up to 600 s"));
        foreach (var f in new[] { "cls.qat.onnx", "cls.calibration.qcs", "cls.model_check.json", "cls.qconfig_changelogs.txt" })
            Assert.True(File.ReadAllBytes(Path.Combine(single, f)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(shared, f))), $"{f} differs from a single export's");
        Assert.Empty(Directory.GetFiles(shared, "*.tmp"));
        Assert.Empty(Directory.GetFiles(shared, ".*"));
    }

    [Fact]
    public void A_lock_held_past_the_timeout_is_QB6021_naming_the_lock_file_and_nothing_is_written()
    {
        var root = TestAssets.TempDir("lock-timeout");
        var config = DeterminismTests.WriteConfig(root);
        var outDir = Path.Combine(root, "out");
        using (ModelLock.Acquire(outDir, "cls"))
        {
            var (code, stdout, stderr) = QuantCheck(Export(config, outDir), new Dictionary<string, string> { [ModelLock.TimeoutVariable] = "1" });
            Assert.Equal(1, code);
            var lockFile = Path.Combine(outDir, "cls.lock");
            Assert.Contains($"quant-check: waiting for another build of cls in {outDir} (lock {lockFile}); up to 1 s", stderr);
            Assert.Contains($"{lockFile}: error QB6021: another build or quant-check run has held the lock of 'cls' for 1 s; wait for it to finish", stderr);
            Assert.Contains("QUANT_LOCK_TIMEOUT=SECONDS (MSBuild: QuantLockTimeout)", stderr);
            Assert.DoesNotContain("   at ", stdout + stderr); // one line, no stack trace
        }
        Assert.Equal(["cls.lock"], Directory.GetFiles(outDir).Select(Path.GetFileName));

        // A wait that is not a number of seconds is said so, not taken for the default.
        var bad = QuantCheck(Export(config, outDir), new Dictionary<string, string> { [ModelLock.TimeoutVariable] = "soon" });
        Assert.Equal(1, bad.Code);
        Assert.Contains("QUANT_LOCK_TIMEOUT: error QB6021: 'soon' is not a number of seconds to wait for another build's lock", bad.Stderr);
    }

    [Fact]
    public void A_killed_run_leaves_no_lock_behind()
    {
        var root = TestAssets.TempDir("lock-killed");
        var config = DeterminismTests.WriteConfig(root);
        var outDir = Path.Combine(root, "out");
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])[Tool, .. Export(config, outDir)]) psi.ArgumentList.Add(a);
        using var export = Process.Start(psi)!;
        // Wait until the export holds the lock (trying with no wait fails with QB6021 from then on), then kill it mid-run.
        var clock = Stopwatch.StartNew();
        while (true)
        {
            Assert.False(export.HasExited, "the export finished before it could be killed");
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2), "the export never took the lock");
            if (File.Exists(Path.Combine(outDir, "cls.lock")))
            {
                try { ModelLock.Acquire(outDir, "cls", timeout: TimeSpan.Zero).Dispose(); }
                catch (QuantException e) when (e.Code == ErrorCode.BuildModelLocked) { break; }
            }
            Thread.Sleep(20);
        }
        export.Kill(entireProcessTree: true);
        export.WaitForExit();
        // The lock file is still there; the lock is not: the next run takes it at once.
        Assert.True(File.Exists(Path.Combine(outDir, "cls.lock")));
        using (ModelLock.Acquire(outDir, "cls", timeout: TimeSpan.Zero)) { }
        var (code, _, stderr) = QuantCheck(Export(config, outDir));
        Assert.True(code == 0, stderr);
        Assert.DoesNotContain("waiting for another build", stderr);
    }
}
