using Quant.Core.Calibration;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Calibration;

public class HistogramTests
{
    internal static float[] Gaussian(int n, int seed, float sigma = 1f)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
            x[i] = (float)(sigma * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return x;
    }

    private static TensorStatistics Collect(float[] data, int bins = 2048, params int[] batchSizes)
    {
        var c = new CalibrationCollector(numBins: bins);
        int offset = 0;
        foreach (var b in batchSizes.Length == 0 ? [data.Length] : batchSizes)
        {
            c.Add("x", Tensor.From(data[offset..(offset + b)], b));
            offset += b;
        }
        return c.Tensors[0];
    }

    private static (long[] Positive, long[] Negative) Sums(int[] scratch, int bins)
    {
        var pos = new long[bins];
        var neg = new long[bins];
        HistogramKernels.Drain((int[])scratch.Clone(), bins, pos, neg, bins, bins, 0);
        return (pos, neg);
    }

    [Fact]
    public void VectorBinningMatchesScalarForEveryLengthAndTail()
    {
        var rng = new Random(7);
        for (int len = 0; len <= 200; len++)
        {
            var x = new float[len];
            for (int i = 0; i < len; i++) x[i] = i % 5 == 0 ? 0f : (float)(rng.NextDouble() * 8 - 4);
            const int bins = 16;
            float factor = bins / 4f;
            var scratch = new int[HistogramKernels.ScratchLength(bins)];
            var (min, max) = HistogramKernels.Bin(x, factor, bins, scratch);
            Assert.Equal(len == 0 ? float.PositiveInfinity : x.Min(), min);
            Assert.Equal(len == 0 ? float.NegativeInfinity : x.Max(), max);
            // NaN anywhere (vector body or tail) shows in min and max; infinities stay in bounds.
            foreach (var at in len == 0 ? [] : new[] { 0, len / 2, len - 1 })
            {
                var bad = (float[])x.Clone();
                bad[at] = float.NaN;
                if (len > 1) bad[at == 0 ? len - 1 : 0] = float.NegativeInfinity;
                var (nmin, nmax) = HistogramKernels.Bin(bad, factor, bins, new int[HistogramKernels.ScratchLength(bins)]);
                Assert.True(float.IsNaN(nmin) && float.IsNaN(nmax), $"length {len}, NaN at {at}");
            }
            var pos = new long[bins];
            var neg = new long[bins];
            HistogramKernels.BinScalar(x, factor, bins, pos, neg);
            var (vpos, vneg) = Sums(scratch, bins);
            Assert.Equal(pos, vpos);
            Assert.Equal(neg, vneg);
            // One copy, drained over the bins the data reaches, and a take-back: the same counts, an all-zero scratch after.
            var one = new int[HistogramKernels.ScratchLength(bins)];
            HistogramKernels.BinOneCopy(x, factor, bins, one);
            HistogramKernels.Unbin(x, factor, bins, scratch);
            Assert.All(scratch, c => Assert.Equal(0, c));
            var (opos, oneg) = (new long[bins], new long[bins]);
            var (reachPositive, reachNegative) = HistogramKernels.Reach(min, max, factor, bins);
            HistogramKernels.Drain(one, bins, opos, oneg, reachPositive, reachNegative, 0, copies: 1);
            Assert.Equal(pos, opos);
            Assert.Equal(neg, oneg);
            Assert.All(one, c => Assert.Equal(0, c));
        }
    }

    /// <summary>
    /// The vector binning against the scalar reference on every activation of a real rec run,
    /// each binned into the range a collector would give it and, a second time, into a quarter of that range (so lanes
    /// are clamped to the last bin as when a batch outgrows the range), at several offsets so the vector body and the
    /// tail split differently; min and max must be the exact ones, -0 ordered below +0.
    /// </summary>
    [Fact]
    public void VectorBinningMatchesScalarOnEveryActivationOfARealRecRun()
    {
        var session = new InferenceSession(OnnxModelReader.Load(TestAssets.RecModel), new SessionOptions { Threads = 1 });
        var kept = new ValueCache();
        session.Run(new Dictionary<string, Tensor> { ["x"] = OcrSamples.Rec(OcrSamples.RecFiles[1]) }, new RunOptions { KeepValues = kept });
        const int bins = 2048;
        int checkedValues = 0;
        foreach (var name in kept.Names.Order(StringComparer.Ordinal))
        {
            var t = kept[name];
            if (t.Type != ElementType.Float || t.Length == 0) continue;
            var all = t.ReadOnlySpan<float>();
            float absMax = 0;
            foreach (var v in all) absMax = MathF.Max(absMax, MathF.Abs(v));
            if (!(absMax > 0)) continue;
            int e = Math.Max(TensorStatistics.MinRangeExponent, float.ILogB(absMax) + 1);
            foreach (int shrink in new[] { 0, 2 })
                foreach (int offset in new[] { 0, 5 })
                {
                    if (offset >= all.Length) continue;
                    var x = all[offset..];
                    float factor = (float)Math.ScaleB(bins, -(e - shrink));
                    var scratch = new int[HistogramKernels.ScratchLength(bins)];
                    var (min, max) = HistogramKernels.Bin(x, factor, bins, scratch);
                    float emin = float.PositiveInfinity, emax = float.NegativeInfinity;
                    foreach (var v in x) { emin = MathF.Min(emin, v); emax = MathF.Max(emax, v); }
                    Assert.Equal(BitConverter.SingleToInt32Bits(emin), BitConverter.SingleToInt32Bits(min));
                    Assert.Equal(BitConverter.SingleToInt32Bits(emax), BitConverter.SingleToInt32Bits(max));
                    var pos = new long[bins];
                    var neg = new long[bins];
                    HistogramKernels.BinScalar(x, factor, bins, pos, neg);
                    var (vpos, vneg) = Sums(scratch, bins);
                    for (int b = 0; b < bins; b++)
                    {
                        Assert.True(pos[b] == vpos[b], $"{name}: positive bin {b} (range 2^{e - shrink}, offset {offset})");
                        Assert.True(neg[b] == vneg[b], $"{name}: negative bin {b} (range 2^{e - shrink}, offset {offset})");
                    }
                }
            checkedValues++;
        }
        Assert.True(checkedValues > 300, $"only {checkedValues} activations checked");
    }

    [Fact]
    public void MinMaxAreExactAndHistogramCountsEveryElement()
    {
        var x = Gaussian(100_003, 1);
        var s = Collect(x);
        Assert.Equal(x.Min(), s.Min);
        Assert.Equal(x.Max(), s.Max);
        Assert.Equal(x.Length, s.Count);
        Assert.Equal(x.Length, s.AbsHistogram().Sum());
        Assert.Equal(x.Count(v => v < 0), s.NegativeHistogram.ToArray().Sum());
        // The range is the smallest power of two above the absmax.
        Assert.True(s.Range > s.AbsMax && s.Range / 2 <= s.AbsMax);
        // Every element is in the bin that its magnitude names.
        var expected = new long[s.NumBins];
        foreach (var v in x) expected[(int)Math.Floor(Math.Abs((double)v) / s.BinWidth)]++;
        Assert.Equal(expected, s.AbsHistogram());
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.9)]
    [InlineData(0.99)]
    [InlineData(0.9999)]
    [InlineData(0.99995)]
    public void PercentileIsWithinOneBinOfTheSortedAnswer(double p)
    {
        var x = Gaussian(200_000, 2);
        var s = Collect(x);
        var abs = x.Select(MathF.Abs).Order().ToArray();
        double exact = abs[(int)Math.Ceiling(p * abs.Length) - 1];
        double got = HistogramMath.Quantile(s.AbsHistogram(), s.BinWidth, p);
        Assert.InRange(got, exact - s.BinWidth, exact + s.BinWidth);

        var signed = x.Order().ToArray();
        double hi = signed[(int)Math.Ceiling(p * signed.Length) - 1];
        double lo = signed[(int)Math.Ceiling((1 - p) * signed.Length) - 1];
        Assert.InRange(ActivationScales.SignedQuantile(s, p), hi - s.BinWidth, hi + s.BinWidth);
        Assert.InRange(ActivationScales.SignedQuantile(s, 1 - p), lo - s.BinWidth, lo + s.BinWidth);
    }

    [Fact]
    public void StatisticsDoNotDependOnBatchingEvenWhenTheRangeGrows()
    {
        // Four "samples" whose magnitudes grow by 1000x: the histogram must widen twice over.
        var rng = new Random(3);
        var data = new float[4 * 3 * 50];
        for (int i = 0; i < data.Length; i++)
        {
            int sample = i / 150;
            data[i] = (float)((rng.NextDouble() * 2 - 1.2) * Math.Pow(10, sample));
        }
        CalibrationStatistics Run(params int[] batches)
        {
            var c = new CalibrationCollector(numBins: 2048, perChannel: true);
            int offset = 0;
            foreach (var b in batches)
            {
                c.Add("x", Tensor.From(data[(offset * 150)..((offset + b) * 150)], b, 3, 50));
                offset += b;
            }
            return c.ToStatistics("k");
        }
        var oneByFour = Run(4);
        var fourByOne = Run(1, 1, 1, 1);
        var twoByTwo = Run(2, 2);
        var uneven = Run(1, 3);
        Assert.True(oneByFour.ContentEquals(fourByOne));
        Assert.True(oneByFour.ContentEquals(twoByTwo));
        Assert.True(oneByFour.ContentEquals(uneven));
        Assert.Equal(oneByFour.ToBytes(), fourByOne.ToBytes());
        var s = oneByFour["x"];
        Assert.Equal(data.Min(), s.Min);
        Assert.Equal(data.Max(), s.Max);
        for (int ch = 0; ch < 3; ch++)
        {
            var values = Enumerable.Range(0, 4).SelectMany(n => data.Skip(n * 150 + ch * 50).Take(50)).ToArray();
            Assert.Equal(values.Min(), s.ChannelMin![ch]);
            Assert.Equal(values.Max(), s.ChannelMax![ch]);
        }
    }

    [Fact]
    public void ParallelBinningOfLargeTensorsEqualsOneThread()
    {
        var x = Gaussian(1 << 19, 4);
        for (int i = 0; i < x.Length; i += 3) x[i] = 0; // Relu-like runs of zeros
        var one = new CalibrationCollector(threads: 1);
        var many = new CalibrationCollector(threads: 4);
        one.Add("x", Tensor.From(x, x.Length));
        many.Add("x", Tensor.From(x, x.Length));
        Assert.True(one.Tensors[0].ContentEquals(many.Tensors[0]));
    }

    [Fact]
    public void NonFiniteValuesAreCountedAndLeftOut()
    {
        var x = new float[] { 1f, float.NaN, -2f, float.PositiveInfinity, 0.5f, float.NegativeInfinity, 0f, -0.25f, 3f };
        var c = new CalibrationCollector(numBins: 8, perChannel: true);
        c.Add("x", Tensor.From(x, 1, 9));
        var s = c.Tensors[0];
        Assert.Equal(3, s.NonFinite);
        Assert.Equal(6, s.Count);
        Assert.Equal(-2f, s.Min);
        Assert.Equal(3f, s.Max);
        Assert.Equal(6, s.AbsHistogram().Sum());
        Assert.Equal(2, s.RangeExponent); // 4 > 3
    }

    [Fact]
    public void NonFiniteValuesInALaterBatchAreCountedAndLeftOut()
    {
        var c = new CalibrationCollector(numBins: 64);
        var first = HistogramTests.Gaussian(1000, 5);
        c.Add("x", Tensor.From(first, first.Length));
        var second = HistogramTests.Gaussian(100, 6);
        second[10] = float.NaN;
        second[99] = float.NegativeInfinity;
        second[50] = 1000f; // also grows the range
        c.Add("x", Tensor.From(second, second.Length));
        var s = c.Tensors[0];
        Assert.Equal(2, s.NonFinite);
        Assert.Equal(1098, s.Count);
        Assert.Equal(1000f, s.Max);
        Assert.Equal(1098, s.AbsHistogram().Sum());
        var direct = new CalibrationCollector(numBins: 64);
        direct.Add("x", Tensor.From(first.Concat(second.Where(float.IsFinite)).ToArray(), 1098));
        Assert.Equal(direct.Tensors[0].AbsHistogram(), s.AbsHistogram());
    }

    [Fact]
    public void AllZeroTensorHasNoRangeAndGetsATinyPositiveScale()
    {
        var c = new CalibrationCollector(numBins: 16);
        c.Add("z", Tensor.From(new float[40], 40));
        var s = c.Tensors[0];
        Assert.Null(s.RangeExponent);
        Assert.Equal(40, s.PositiveHistogram[0]);
        foreach (var m in new[] { Config.CalibrationMethod.Max, Config.CalibrationMethod.Percentile, Config.CalibrationMethod.Kl, Config.CalibrationMethod.Mse })
        {
            var q = ActivationScales.Derive(s, Config.QType.Int8, new ActivationOptions { Method = m });
            Assert.Equal(ActivationScales.MinScale, q.Scales[0]);
            var a = ActivationScales.Derive(s, Config.QType.Int8, new ActivationOptions { Method = m, Asymmetric = true });
            Assert.True(a.Scales[0] > 0 && float.IsFinite(a.Scales[0]));
        }
        // Later non-zero data keeps the zeros in bin 0.
        c.Add("z", Tensor.From(new float[] { 1f, -1f }, 2));
        Assert.Equal(1, s.RangeExponent);
        Assert.Equal(1, s.PositiveHistogram[8]);
        Assert.Equal(1, s.NegativeHistogram[8]);
        Assert.Equal(42, s.AbsHistogram().Sum());
        Assert.Equal(40, s.PositiveHistogram[0]);
    }
}
