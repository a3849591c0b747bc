using Quant.Core.Calibration;
using Quant.Engine;
using Quant.TestSupport;

namespace Quant.Core.Tests.Calibration;

public class StatisticsFileTests
{
    private static CalibrationStatistics Sample(string key)
    {
        var c = new CalibrationCollector(numBins: 256, perChannel: true);
        c.Add("a", Tensor.From(HistogramTests.Gaussian(3 * 1000, 1), 1, 3, 1000));
        c.Add("b", Tensor.From(new float[] { 0, 0, float.NaN }, 3));
        c.Add("ü-ñame", Tensor.From(new float[] { -1e30f, 1e-30f }, 2));
        return c.ToStatistics(key);
    }

    [Fact]
    public void RoundTripsByteIdenticallyAndAtomically()
    {
        var dir = TestAssets.TempDir("calib-file");
        var path = Path.Combine(dir, "sub", "det.calib");
        var stats = Sample("model=abc;data=def;pre=ghi");
        stats.Save(path);
        Assert.Equal([Path.GetFileName(path)], Directory.GetFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName));
        var loaded = CalibrationStatistics.TryLoad(path, "model=abc;data=def;pre=ghi");
        Assert.NotNull(loaded);
        Assert.True(stats.ContentEquals(loaded));
        Assert.Equal(File.ReadAllBytes(path), loaded.ToBytes());
        Assert.Equal(Sample("model=abc;data=def;pre=ghi").ToBytes(), stats.ToBytes()); // deterministic
        Assert.Equal(1, loaded["b"].NonFinite);
        Assert.Null(loaded["b"].RangeExponent);
        Assert.Equal(new[] { "a", "b", "ü-ñame" }, loaded.Tensors.Select(t => t.Name));
        // Overwrite in place.
        Sample("other").Save(path);
        Assert.Null(CalibrationStatistics.TryLoad(path, "model=abc;data=def;pre=ghi"));
        Assert.NotNull(CalibrationStatistics.TryLoad(path, "other"));
    }

    [Fact]
    public void MissingCorruptOrTruncatedFilesAreCacheMisses()
    {
        var dir = TestAssets.TempDir("calib-bad");
        Assert.Null(CalibrationStatistics.TryLoad(Path.Combine(dir, "none.calib"), "k"));
        var bytes = Sample("k").ToBytes();
        Assert.NotNull(CalibrationStatistics.TryParse(bytes));
        for (int i = 0; i < bytes.Length; i += 97)
        {
            var bad = (byte[])bytes.Clone();
            bad[i] ^= 0x10;
            Assert.Null(CalibrationStatistics.TryParse(bad));
        }
        Assert.Null(CalibrationStatistics.TryParse(bytes[..^1]));
        Assert.Null(CalibrationStatistics.TryParse(bytes[..20]));
        Assert.Null(CalibrationStatistics.TryParse([]));
    }
}
