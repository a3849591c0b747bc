using System.Diagnostics;
using Quant.Core.Diagnostics;
using Quant.Core.Stages;
using Quant.TestSupport;

namespace Quant.Core.Tests.Stages;

/// <summary>
/// What a killed or damaged earlier export leaves behind never reaches the next one: a calibration cache cut short or
/// damaged is recalibrated with warning QB4003 naming it (never a crash, never trusted), and the temporary files of
/// writers that died are swept before the stage writes.
/// </summary>
public class InterruptedExportTests
{
    private static ExportRequest Request(string dir)
    {
        var data = Path.Combine(TestAssets.Data("ppocr-cls"), "cls_*.npy").Replace('\\', '/');
        var cfg = Path.Combine(dir, "cls.quant.yaml");
        File.WriteAllText(cfg, $$$"""
            inputs:
              x: {data: "{{{data}}}", scale: 1/255, mean: 0.5, std: 0.5}
            calibration: {batch_size: 2}
            quant_config:
              model_config: {all_node_type: int8, activation: {calibration_type: max}}
            """);
        return new ExportRequest { ModelPath = TestAssets.ClsModel, ConfigPath = cfg, OutputDirectory = Path.Combine(dir, "out"), Name = "cls", Threads = 1 };
    }

    public static TheoryData<string> Damage => new() { "truncated", "empty", "flipped" };

    [Theory]
    [MemberData(nameof(Damage))]
    public void A_damaged_calibration_cache_is_recalibrated_with_a_warning_naming_it(string damage)
    {
        var request = Request(TestAssets.TempDir("interrupted-export"));
        var first = ExportStage.Run(request);
        Assert.False(first.CalibrationFromCache);
        Assert.Empty(first.Warnings);
        var qat = File.ReadAllBytes(first.QatModelPath);
        var cache = first.CalibrationCachePath;
        var good = File.ReadAllBytes(cache);

        byte[] bad = damage switch
        {
            "truncated" => good[..(good.Length / 2)], // what a non-atomic writer killed half way would leave
            "empty" => [],
            _ => good.Select((b, i) => i == good.Length / 3 ? (byte)(b ^ 0x40) : b).ToArray(), // one bit flipped: the checksum catches it
        };
        File.WriteAllBytes(cache, bad);

        var second = ExportStage.Run(request);
        Assert.False(second.CalibrationFromCache);
        var warning = Assert.Single(second.Warnings);
        Assert.Contains("warning QB4003", warning);
        Assert.Contains(cache, warning);
        Assert.Contains("calibrating again", warning);
        Assert.Equal(qat, File.ReadAllBytes(second.QatModelPath));
        Assert.Equal(good, File.ReadAllBytes(cache));

        // Rewritten whole: the next export reads it, silently.
        var third = ExportStage.Run(request);
        Assert.True(third.CalibrationFromCache);
        Assert.Empty(third.Warnings);
    }

    [Fact]
    public void Temporary_files_of_dead_writers_are_swept_before_the_export_writes_and_a_live_writers_are_kept()
    {
        var request = Request(TestAssets.TempDir("interrupted-export"));
        Directory.CreateDirectory(request.OutputDirectory);
        int dead = DeadProcessId();
        var left = new[]
        {
            Path.Combine(request.OutputDirectory, $".cls.qat.onnx.{dead}.{Guid.NewGuid():N}.tmp"), // the model writer's name
            Path.Combine(request.OutputDirectory, $".cls.model_check.json.{dead}.tmp"),           // AtomicFile's name
        };
        var live = Path.Combine(request.OutputDirectory, $".cls.qbm.{Environment.ProcessId}.tmp"); // a writer still at work
        var other = Path.Combine(request.OutputDirectory, $".det.qat.onnx.{dead}.tmp");           // another model's: not this stage's to sweep
        foreach (var f in left.Append(live).Append(other)) File.WriteAllText(f, "half");

        ExportStage.Run(request);

        foreach (var f in left) Assert.False(File.Exists(f), f);
        Assert.True(File.Exists(live));
        Assert.True(File.Exists(other));
        Assert.Equal([live], Directory.GetFiles(request.OutputDirectory, ".cls.*.tmp"));
    }

    [Fact]
    public void An_atomic_write_sweeps_its_own_targets_dead_temporaries()
    {
        var dir = TestAssets.TempDir("atomic");
        var stale = Path.Combine(dir, $".a.json.{DeadProcessId()}.tmp");
        File.WriteAllText(stale, "{\"cut");
        AtomicText.Write(Path.Combine(dir, "a.json"), "{}\n");
        Assert.False(File.Exists(stale));
        Assert.Equal("{}\n", File.ReadAllText(Path.Combine(dir, "a.json")));
        Assert.Equal(["a.json"], Directory.GetFiles(dir).Select(Path.GetFileName));
    }

    /// <summary>The id of a process that has exited (a finished <c>true</c>).</summary>
    private static int DeadProcessId()
    {
        using var p = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        p.WaitForExit();
        return p.Id;
    }
}
