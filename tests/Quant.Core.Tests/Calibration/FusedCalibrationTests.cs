using Quant.Core.Calibration;
using Quant.Core.Passes;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Calibration;

/// <summary>
/// Calibration observes the fused plan (values inside fused elementwise chains arrive tile by tile) and must give
/// exactly the statistics, in exactly the order, of observing the unfused plan value by value.
/// </summary>
public class FusedCalibrationTests
{
    /// <summary>Forwards to a collector as a plain observer, so the run executes the unfused plan.</summary>
    private sealed class Unfused(CalibrationCollector inner) : IValueObserver
    {
        public Tensor? OnValue(in ObservedValue value) => inner.OnValue(value);
    }

    /// <summary>Forwards to a collector as a tile observer and counts the pieces it was handed.</summary>
    private sealed class Counting(CalibrationCollector inner) : ITileObserver
    {
        public readonly HashSet<string> PieceValues = [];
        public int HighestLane = -1;
        public bool TakesTiles => inner.TakesTiles;
        public int TileLanes => inner.TileLanes;
        public Tensor? OnValue(in ObservedValue value) => inner.OnValue(value);
        public void OnTile(string name, ReadOnlySpan<float> tile, int lane)
        {
            lock (PieceValues)
            {
                PieceValues.Add(name);
                HighestLane = Math.Max(HighestLane, lane);
            }
            inner.OnTile(name, tile, lane);
        }
    }

    [Theory]
    [InlineData(1, 2048)]
    [InlineData(2, 2048)]
    [InlineData(1, 1000)] // a bin count that is not a power of two: the bin factor is then not exact
    public void TheFusedRecRunGivesTheUnfusedRunsStatisticsByteForByte(int threads, int bins)
    {
        // The prepared rec graph (what an export calibrates) has 28 fused Mul -> Add -> HardSwish chains.
        var model = GraphPreparation.Prepare(OnnxModelReader.Load(TestAssets.RecModel)).Model;
        var session = new InferenceSession(model, new SessionOptions { Threads = threads });
        var order = CalibrationPass.ValueOrder(session);
        var fused = new CalibrationCollector(numBins: bins, threads: threads, valueOrder: order);
        var unfused = new CalibrationCollector(numBins: bins, threads: threads, valueOrder: order);
        var counting = new Counting(fused);
        foreach (var file in OcrSamples.RecFiles)
        {
            var feeds = new Dictionary<string, Tensor> { ["x"] = OcrSamples.Rec(file) };
            var a = session.Run(feeds, new RunOptions { Observer = counting });
            var b = session.Run(feeds, new RunOptions { Observer = new Unfused(unfused) });
            foreach (var (name, t) in b) Assert.True(t.Bytes().SequenceEqual(a[name].Bytes()), $"output {name} differs");
        }
        Assert.True(counting.PieceValues.Count >= 28, $"only {counting.PieceValues.Count} values arrived in pieces");
        Assert.Equal(threads - 1, counting.HighestLane); // at 2 threads the chains' pieces came in two lanes at once
        var fusedStats = fused.ToStatistics("rec");
        var unfusedStats = unfused.ToStatistics("rec");
        Assert.Equal(unfusedStats.Tensors.Select(t => t.Name), fusedStats.Tensors.Select(t => t.Name));
        Assert.True(unfusedStats.ContentEquals(fusedStats));
        Assert.Equal(unfusedStats.ToBytes(), fusedStats.ToBytes());
        // Every value of the unfused run is there, pieces included.
        Assert.Equal(order.Count(n => unfusedStats.Contains(n)), fusedStats.Tensors.Count);
    }

    [Fact]
    public void PiecesThatGrowTheRangeOrHoldNaNGiveTheWholeTensorsStatistics()
    {
        // Pieces whose magnitude grows (each one folds the pending counts), an all-zero start, a NaN and an infinity.
        var rng = new Random(5);
        var x = new float[10 * 1024 + 37];
        for (int i = 0; i < x.Length; i++) x[i] = i < 1500 ? 0f : (float)((rng.NextDouble() * 2 - 1) * Math.Pow(2, i / 700.0));
        x[4100] = float.NaN;
        x[9000] = float.NegativeInfinity;
        foreach (int bins in new[] { 2048, 1000, 7 })
        {
            var whole = new CalibrationCollector(numBins: bins);
            var pieces = new CalibrationCollector(numBins: bins);
            // Three lanes taking their pieces in turn: lane 0 the first third (zeros, then growing), lane 2 the largest
            // magnitudes, so each lane's pending range differs from the others' and from the value's.
            var lanes = new CalibrationCollector(numBins: bins, threads: 3);
            int tiles = (x.Length + 1023) / 1024;
            for (int round = 0; round < 2; round++)
            {
                whole.Add("v", Tensor.From(x, x.Length));
                for (int at = 0; at < x.Length; at += 1024) pieces.OnTile("v", x.AsSpan(at, Math.Min(1024, x.Length - at)), 0);
                for (int k = 0; k < (tiles + 2) / 3; k++)
                    for (int lane = 0; lane < 3; lane++)
                    {
                        int tile = lane * ((tiles + 2) / 3) + k, at = tile * 1024;
                        if (tile < tiles) lanes.OnTile("v", x.AsSpan(at, Math.Min(1024, x.Length - at)), lane);
                    }
                pieces.OnValue(new ObservedValue("w", Tensor.From(new[] { 1f, -2f }, 2), null)); // ends the step
                lanes.OnValue(new ObservedValue("w", Tensor.From(new[] { 1f, -2f }, 2), null));
            }
            var a = whole.ToStatistics("k")["v"];
            var b = pieces.ToStatistics("k")["v"];
            var c = lanes.ToStatistics("k")["v"];
            Assert.Equal(4, a.NonFinite); // two rounds of one NaN and one infinity
            Assert.True(a.ContentEquals(b), $"{bins} bins: count {a.Count}/{b.Count}, range {a.RangeExponent}/{b.RangeExponent}");
            Assert.True(a.ContentEquals(c), $"{bins} bins, 3 lanes: count {a.Count}/{c.Count}, range {a.RangeExponent}/{c.RangeExponent}");
        }
    }
}
