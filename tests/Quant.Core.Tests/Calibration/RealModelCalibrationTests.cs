using System.Diagnostics;
using Quant.Core.Calibration;
using Quant.Core.Config;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Core.Tests.Calibration;

// Allocation and working-set figures are process-wide: this class must not run beside other test classes.
[Collection(ProcessWideMeasurements.Name)]
public class RealModelCalibrationTests(ITestOutputHelper output)
{
    private static readonly Lazy<InferenceSession> Det = new(() => new InferenceSession(OnnxModelReader.Load(TestAssets.DetModel)));
    private static readonly Lazy<InferenceSession> Rec = new(() => new InferenceSession(OnnxModelReader.Load(TestAssets.RecModel)));

    private static Dictionary<string, Tensor> Feed(InferenceSession s, Tensor x) => new() { [s.Inputs[0].Name] = x };

    [Fact]
    public void DetCalibratesSamplesOfDifferentSizesInOneRunAndRoundTripsThroughTheFile()
    {
        var det = Det.Value;
        var collector = new CalibrationCollector(perChannel: true);
        var big = OcrSamples.Det(OcrSamples.DetFiles[0]);
        var wide = OcrSamples.Det(OcrSamples.DetFiles[1], 320, 640);
        det.Run(Feed(det, big), new RunOptions { Observer = collector });
        det.Run(Feed(det, wide), new RunOptions { Observer = collector });
        var stats = collector.ToStatistics("det|test");
        output.WriteLine($"det: {stats.Tensors.Count} observed float tensors, {stats.RetainedBytes / 1024} KiB retained, file {stats.ToBytes().Length / 1024} KiB");
        Assert.True(stats.Tensors.Count > 300);

        var input = stats[det.Inputs[0].Name];
        Assert.Equal(big.Length + wide.Length, input.Count);
        Assert.Equal(Math.Min(big.ReadOnlySpan<float>().ToArray().Min(), wide.ReadOnlySpan<float>().ToArray().Min()), input.Min);
        Assert.Equal(3, input.ChannelMin!.Length);
        var output0 = stats[det.OutputNames[0]];
        Assert.Equal(640 * 640 + 320 * 640, output0.Count); // [1,1,H,W] per sample
        Assert.InRange(output0.Min, 0f, 1f); // a sigmoid map
        Assert.InRange(output0.Max, 0f, 1f);
        foreach (var t in stats.Tensors) Assert.Equal(t.Count, t.AbsHistogram().Sum());

        var dir = TestAssets.TempDir("calib-det");
        var path = Path.Combine(dir, "det.calib");
        stats.Save(path);
        var loaded = CalibrationStatistics.TryLoad(path, "det|test");
        Assert.NotNull(loaded);
        Assert.True(stats.ContentEquals(loaded));
        Assert.Equal(File.ReadAllBytes(path), loaded.ToBytes());
        Assert.Null(CalibrationStatistics.TryLoad(path, "det|other-preprocessing"));

        // Every method derives finite positive scales for every tensor, from the file alone.
        var tensors = loaded.Tensors.ToDictionary(t => t.Name, _ => QType.Int8);
        foreach (var c in CalibrationCandidates.Of(new ActivationConfig { Asymmetric = [false, true] }))
            Assert.All(c.Derive(loaded, tensors, new Dictionary<string, QuantParams>()).Values,
                q => Assert.True(q.Scales.All(s => s > 0 && float.IsFinite(s)), c.Label));
    }

    [Fact]
    public void RecStatisticsAreTheSameForOneBatchOfFourAndFourBatchesOfOne()
    {
        var rec = Rec.Value;
        var samples = OcrSamples.RecFiles.Select(OcrSamples.Rec).ToArray();
        CalibrationStatistics Run(params Tensor[] batches)
        {
            var c = new CalibrationCollector();
            foreach (var b in batches) rec.Run(Feed(rec, b), new RunOptions { Observer = c });
            return c.ToStatistics("rec");
        }
        var single = Run(samples);
        var batched = Run(OcrSamples.Batch(samples));
        var pairs = Run(OcrSamples.Batch(samples[0], samples[1]), OcrSamples.Batch(samples[2], samples[3]));
        Assert.Equal(single.Tensors.Select(t => t.Name), batched.Tensors.Select(t => t.Name));
        int exact = 0;
        foreach (var a in single.Tensors)
        {
            foreach (var b in new[] { batched[a.Name], pairs[a.Name] })
            {
                if (a.ContentEquals(b)) { exact++; continue; }
                // The engine may round differently per batch size (blocked GEMMs): allow float noise only.
                Assert.Equal(a.Count, b.Count);
                Assert.Equal(a.Max, b.Max, 1e-4 * Math.Max(1, a.AbsMax));
                Assert.Equal(a.Min, b.Min, 1e-4 * Math.Max(1, a.AbsMax));
                double w = Math.Max(a.BinWidth, b.BinWidth);
                foreach (var m in new[] { CalibrationMethod.Percentile, CalibrationMethod.Kl, CalibrationMethod.Mse })
                    Assert.Equal(ActivationScales.Threshold(a, m, QType.Int8), ActivationScales.Threshold(b, m, QType.Int8), w * 1.0001);
            }
        }
        output.WriteLine($"rec: {single.Tensors.Count} tensors, {exact} of {2 * single.Tensors.Count} comparisons bit-identical");
    }

    [Fact]
    public void MemoryDoesNotGrowWithTheNumberOfSamplesAndOverheadIsMeasured()
    {
        var det = Det.Value;
        var images = OcrSamples.DetFiles.Select(f => OcrSamples.Det(f)).ToArray();
        det.Run(Feed(det, images[0])); // warm up

        (long Retained, long Allocated, long PeakWs, double Ms) Calibrate(int passes)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            var proc = Process.GetCurrentProcess();
            long alloc0 = GC.GetTotalAllocatedBytes(precise: true);
            var c = new CalibrationCollector();
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < passes; i++) det.Run(Feed(det, images[i % images.Length]), new RunOptions { Observer = c });
            sw.Stop();
            long alloc = GC.GetTotalAllocatedBytes(precise: true) - alloc0;
            proc.Refresh();
            return (c.ToStatistics("k").RetainedBytes, alloc, proc.PeakWorkingSet64, sw.Elapsed.TotalMilliseconds / passes);
        }
        var two = Calibrate(2);
        var eight = Calibrate(8);
        output.WriteLine($"2 passes: retained {two.Retained / 1024} KiB, allocated {two.Allocated / 1048576} MiB ({two.Allocated / 2 / 1048576} MiB/pass), peak WS {two.PeakWs / 1048576} MiB, {two.Ms:F0} ms/pass");
        output.WriteLine($"8 passes: retained {eight.Retained / 1024} KiB, allocated {eight.Allocated / 1048576} MiB ({eight.Allocated / 8 / 1048576} MiB/pass), peak WS {eight.PeakWs / 1048576} MiB, {eight.Ms:F0} ms/pass");
        Assert.Equal(two.Retained, eight.Retained);
        // Allocation per pass must not grow with the pass count (nothing per sample is kept).
        Assert.True(eight.Allocated / 8.0 <= two.Allocated / 2.0 * 1.25 + (4 << 20), "allocations grow with the number of passes");

        // Overhead: plain vs observed, interleaved to share machine noise.
        double plain = 0, observed = 0;
        var keep = new CalibrationCollector();
        for (int r = 0; r < 3; r++)
        {
            var sw = Stopwatch.StartNew();
            det.Run(Feed(det, images[r % 2]));
            plain += sw.Elapsed.TotalMilliseconds;
            sw.Restart();
            det.Run(Feed(det, images[r % 2]), new RunOptions { Observer = keep });
            observed += sw.Elapsed.TotalMilliseconds;
        }
        // Observed runs use the unfused plan; isolate the collector's own cost with a no-op observer.
        double noop = 0;
        for (int r = 0; r < 3; r++)
        {
            var sw = Stopwatch.StartNew();
            det.Run(Feed(det, images[r % 2]), new RunOptions { Observer = new NoOp() });
            noop += sw.Elapsed.TotalMilliseconds;
        }
        long floatsPerPass = keep.Tensors.Sum(t => t.Count) / 3;
        output.WriteLine($"{keep.Tensors.Count} tensors, {floatsPerPass / 1e6:F0} M floats per pass: collector {(observed - noop) / 3 * 1e6 / floatsPerPass:F2} ns/float");
        output.WriteLine($"det 640x640: plain {plain / 3:F0} ms, no-op observer {noop / 3:F0} ms, collecting {observed / 3:F0} ms ({observed / plain:F2}x plain)");
        // Printed, not asserted: this wall-clock ratio (3.2-3.6x on a quiet machine for this unprepared model at 2
        // threads) read 5.1x under the test run's own parallel load. Speed is measured by the `loop` benchmark
        // (docs/export.md, "Calibration speed"); the kernels' vector paths are tested against the scalar ones
        // (HistogramTests), and a per-sample allocation fails the assertion above.
        Assert.True(floatsPerPass > 100_000_000, $"the collector saw {floatsPerPass} floats per det pass; every float value should be observed");
    }

    private sealed class NoOp : IValueObserver
    {
        public Tensor? OnValue(in ObservedValue value) => null;
    }
}

/// <summary>Tests that measure process-wide memory run alone (xunit runs other collections in parallel).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessWideMeasurements
{
    public const string Name = "process-wide measurements";
}
