using Quant.Core.Calibration;
using Quant.Core.Config;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Tests.Calibration;

public class ScaleDerivationTests
{
    private static (TensorStatistics Stats, float[] Data) GaussianWithOutliers()
    {
        var x = HistogramTests.Gaussian(1_000_000, 11);
        // Two far outliers: clipping them costs less squared error than the coarser step of not clipping.
        x[0] = 100f;
        x[1000] = -100f;
        var c = new CalibrationCollector();
        c.Add("x", Tensor.From(x, x.Length));
        return (c.Tensors[0], x);
    }

    /// <summary>The true mean squared error of symmetric fake quantization at threshold t.</summary>
    private static double QuantMse(float[] x, double t, int qmax)
    {
        double s = t / qmax, sum = 0;
        foreach (var v in x)
        {
            double q = Math.Clamp(Math.Round(v / s, MidpointRounding.ToEven), -qmax - 1, qmax) * s;
            sum += (v - q) * (v - q);
        }
        return sum / x.Length;
    }

    [Fact]
    public void GaussianWithOutliersKlAndMseClipWellBelowAbsMaxPercentileInBetween()
    {
        var (s, x) = GaussianWithOutliers();
        Assert.Equal(100f, s.AbsMax);
        double max = ActivationScales.Threshold(s, CalibrationMethod.Max, QType.Int8);
        double pct = ActivationScales.Threshold(s, CalibrationMethod.Percentile, QType.Int8, 0.99995);
        double kl = ActivationScales.Threshold(s, CalibrationMethod.Kl, QType.Int8);
        double mse = ActivationScales.Threshold(s, CalibrationMethod.Mse, QType.Int8);
        Assert.Equal(100, max);
        var abs = x.Select(MathF.Abs).Order().ToArray();
        double exactPct = abs[(int)Math.Ceiling(0.99995 * abs.Length) - 1];
        Assert.InRange(pct, exactPct - s.BinWidth, exactPct + s.BinWidth);
        // The bulk spans fewer than 128 bins, so KL keeps the smallest candidate: 128 bins (8 sigma here).
        Assert.InRange(kl, 3.0, 128 * s.BinWidth);
        Assert.InRange(mse, 10.0, 40.0); // clips the outliers, keeps a step fine enough for the bulk
        Assert.True(pct < max && pct > 3.5);

        // MSE's pick is (close to) the best threshold by the real quantization error.
        double best = double.PositiveInfinity;
        for (double t = 1; t <= 100; t *= 1.05) best = Math.Min(best, QuantMse(x, t, 127));
        double atMse = QuantMse(x, mse, 127);
        Assert.True(atMse <= best * 1.05, $"mse threshold {mse}: {atMse} vs best on grid {best}");
        Assert.True(atMse < QuantMse(x, max, 127) / 2);
        Assert.True(atMse <= QuantMse(x, pct, 127) * 1.001);
    }

    [Fact]
    public void UniformDataIsNotClipped()
    {
        var rng = new Random(5);
        var x = new float[200_000];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 6 - 3);
        var c = new CalibrationCollector();
        c.Add("u", Tensor.From(x, x.Length));
        var s = c.Tensors[0];
        Assert.InRange(ActivationScales.Threshold(s, CalibrationMethod.Kl, QType.Int8), 2.8, 3.0);
        Assert.InRange(ActivationScales.Threshold(s, CalibrationMethod.Mse, QType.Int8), 2.8, 3.0);
    }

    /// <summary>The entropy search written out directly: build P and Q per candidate, sum p log(p/q).</summary>
    internal static int NaiveKl(long[] hist, int levels, Action<int, double>? trace = null)
    {
        int used = Array.FindLastIndex(hist, c => c != 0) + 1;
        if (used <= levels) return used;
        double bestKl = double.PositiveInfinity;
        int best = used;
        for (int i = levels; i <= used; i++)
        {
            var p = new double[i];
            for (int j = 0; j < i; j++) p[j] = hist[j];
            for (int j = i; j < used; j++) p[i - 1] += hist[j];
            var q = new double[i];
            for (int g = 0; g < levels; g++)
            {
                var members = Enumerable.Range(0, i).Where(j => (long)j * levels / i == g).ToList();
                double m = members.Sum(j => (double)hist[j]);
                int nz = members.Count(j => p[j] != 0);
                foreach (var j in members) q[j] = p[j] != 0 ? m / nz : 0;
            }
            if (p[i - 1] != 0 && q[i - 1] == 0) q[i - 1] = HistogramMath.EmptyGroupPseudoCount;
            double sp = p.Sum(), sq = q.Sum(), kl = 0;
            bool inf = false;
            for (int j = 0; j < i; j++)
            {
                if (p[j] == 0) continue;
                if (q[j] == 0) { inf = true; break; }
                kl += p[j] / sp * Math.Log(p[j] / sp / (q[j] / sq));
            }
            trace?.Invoke(i, inf ? double.PositiveInfinity : kl);
            if (inf) continue;
            if (kl < bestKl - 1e-12) { bestKl = kl; best = i; }
        }
        return best;
    }

    [Theory]
    [InlineData(1, 8)]
    [InlineData(2, 16)]
    [InlineData(3, 5)]
    public void KlSearchEqualsTheDirectDefinition(int seed, int levels)
    {
        var rng = new Random(seed);
        var hist = new long[120];
        for (int j = 0; j < 90; j++) hist[j] = (long)(1000 * Math.Exp(-j / 12.0) * rng.NextDouble()) * (rng.Next(6) == 0 ? 0 : 1);
        hist[110] = 3; // outliers beyond a gap: candidates in the gap use the pseudo-count
        Assert.Equal(NaiveKl(hist, levels), HistogramMath.KlBins(hist, levels));
    }

    [Fact]
    public void SymmetricAndAsymmetricParametersUseTheTypeRange()
    {
        var rng = new Random(9);
        var x = new float[10_000];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 6); // Relu6-like: [0, 6)
        x[0] = 0; x[1] = 6f;
        var c = new CalibrationCollector();
        c.Add("r", Tensor.From(x, x.Length));
        var s = c.Tensors[0];
        var sym8 = ActivationScales.Derive(s, QType.Int8, new ActivationOptions());
        Assert.Equal(6f / 127, sym8.Scales[0]);
        Assert.Equal(0, sym8.ZeroPoints[0]);
        Assert.Null(sym8.Axis);
        Assert.Equal("max", sym8.Method);
        var sym16 = ActivationScales.Derive(s, QType.Int16, new ActivationOptions());
        Assert.Equal(6f / 32767, sym16.Scales[0]);
        var asym = ActivationScales.Derive(s, QType.Int8, new ActivationOptions { Asymmetric = true });
        Assert.Equal(6f / 255, asym.Scales[0]);
        Assert.Equal(-128, asym.ZeroPoints[0]); // 0 maps to qmin: the whole range is used for [0, 6]
        var asym16 = ActivationScales.Derive(s, QType.Int16, new ActivationOptions { Asymmetric = true });
        Assert.Equal(-32768, asym16.ZeroPoints[0]);

        // A range that straddles 0: dequantize(qmin) ~ lo and dequantize(qmax) ~ hi.
        var y = new float[] { -1f, 3f, 0.5f, 2f };
        var c2 = new CalibrationCollector();
        c2.Add("y", Tensor.From(y, y.Length));
        var a = ActivationScales.Derive(c2.Tensors[0], QType.Int8, new ActivationOptions { Asymmetric = true });
        Assert.InRange((-128 - a.ZeroPoints[0]) * a.Scales[0], -1 - a.Scales[0], -1 + a.Scales[0]);
        Assert.InRange((127 - a.ZeroPoints[0]) * a.Scales[0], 3 - a.Scales[0], 3 + a.Scales[0]);
        Assert.Throws<ArgumentException>(() => ActivationScales.Derive(c2.Tensors[0], QType.Float16, new ActivationOptions()));
    }

    [Fact]
    public void PerChannelActivationsClipEachChannelAtMostAtTheTensorThreshold()
    {
        var x = new float[2 * 3 * 4];
        float[] channelScale = [0.5f, 2f, 100f];
        for (int i = 0; i < x.Length; i++) x[i] = ((i % 4) - 1.5f) * channelScale[i / 4 % 3];
        var c = new CalibrationCollector(numBins: 64, perChannel: true);
        c.Add("x", Tensor.From(x, 2, 3, 4));
        var s = c.Tensors[0];
        var q = ActivationScales.Derive(s, QType.Int8, new ActivationOptions { PerChannel = true });
        Assert.Equal(1, q.Axis);
        Assert.Equal([0.75f / 127, 3f / 127, 150f / 127], q.Scales);
        var pct = ActivationScales.Derive(s, QType.Int8, new ActivationOptions { PerChannel = true, Method = CalibrationMethod.Percentile, MaxPercentile = 0.5 });
        double tensorT = ActivationScales.Threshold(s, CalibrationMethod.Percentile, QType.Int8, 0.5);
        Assert.Equal(0.75f / 127, pct.Scales[0]);
        Assert.Equal((float)(tensorT / 127), pct.Scales[2]);
        // Without channel statistics: per-tensor.
        var c2 = new CalibrationCollector(numBins: 64);
        c2.Add("x", Tensor.From(x, 2, 3, 4));
        Assert.Null(ActivationScales.Derive(c2.Tensors[0], QType.Int8, new ActivationOptions { PerChannel = true }).Axis);
    }

    [Fact]
    public void FixedAndCandidates()
    {
        var f = ActivationScales.Fixed(QType.Int8, null, 12.7f);
        Assert.Equal(0.1f, f.Scales[0]);
        Assert.Equal(0.5f, ActivationScales.Fixed(QType.Int16, 0.5f, 3f).Scales[0]);
        Assert.Throws<ArgumentException>(() => ActivationScales.Fixed(QType.Int8, 0f, null));
        Assert.Throws<ArgumentException>(() => ActivationScales.Fixed(QType.Int8, null, null));

        var (s, _) = GaussianWithOutliers();
        var stats = new CalibrationStatistics("k", s.NumBins, [s]);
        var tensors = new Dictionary<string, QType> { ["x"] = QType.Int8 };
        var none = new Dictionary<string, QuantParams>();
        var candidates = CalibrationCandidates.Of(new ActivationConfig { MaxPercentiles = [0.9999, 0.99995] });
        Assert.Equal(["max", "percentile(0.9999)", "percentile(0.99995)", "kl", "mse"], candidates.Select(c => c.Label));
        Assert.Equal(100f / 127, candidates[0].Derive(stats, tensors, none)["x"].Scales[0]);
        Assert.True(candidates[3].Derive(stats, tensors, none)["x"].Scales[0] < candidates[0].Derive(stats, tensors, none)["x"].Scales[0] / 4);
        var pinned = new Dictionary<string, QuantParams> { ["x"] = f };
        Assert.All(candidates, c => Assert.Same(f, c.Derive(stats, tensors, pinned)["x"]));
        Assert.Throws<KeyNotFoundException>(() => ActivationScales.DeriveAll(stats, new Dictionary<string, QType> { ["nope"] = QType.Int8 }, new ActivationOptions()));
    }

    [Fact]
    public void WeightsArePerOutputChannelAndAZeroChannelGetsATinyPositiveScale()
    {
        var w = new float[4 * 2 * 3 * 3];
        var rng = new Random(12);
        for (int i = 0; i < w.Length; i++) w[i] = i / 18 == 2 ? 0 : (float)(rng.NextDouble() * 2 - 1) * (i / 18 + 1);
        var t = Tensor.From(w, 4, 2, 3, 3);
        var q = WeightQuantizer.Params(t, 0, QType.Int8);
        Assert.Equal(0, q.Axis);
        for (int o = 0; o < 4; o++)
        {
            float absMax = w.Skip(o * 18).Take(18).Max(MathF.Abs);
            if (o == 2) Assert.Equal(ActivationScales.MinScale, q.Scales[o]);
            else Assert.Equal(absMax / 127, q.Scales[o]);
        }
        Assert.All(q.ZeroPoints, z => Assert.Equal(0, z));

        // MatMul B [K, N]: channels along axis 1.
        var b = Tensor.From(new float[] { 1, -8, 3, 2, 4, -6 }, 2, 3);
        var qb = WeightQuantizer.Params(b, 1, QType.Int16);
        Assert.Equal([2f / 32767, 8f / 32767, 6f / 32767], qb.Scales);
        Assert.Equal(8f / 127, WeightQuantizer.PerTensor(b, QType.Int8).Scales[0]);

        Assert.Equal(0, WeightQuantizer.OutputChannelAxis(new Node("c", "Conv", "", ["x", "w"], ["y"]), 1, 4));
        Assert.Equal(1, WeightQuantizer.OutputChannelAxis(new Node("ct", "ConvTranspose", "", ["x", "w"], ["y"]), 1, 4));
        Assert.Equal(1, WeightQuantizer.OutputChannelAxis(new Node("m", "MatMul", "", ["x", "w"], ["y"]), 1, 2));
        var gemm = new Node("g", "Gemm", "", ["x", "w"], ["y"]);
        Assert.Equal(1, WeightQuantizer.OutputChannelAxis(gemm, 1, 2));
        gemm.Set(AttributeValue.Of("transB", 1));
        Assert.Equal(0, WeightQuantizer.OutputChannelAxis(gemm, 1, 2));
        Assert.Null(WeightQuantizer.OutputChannelAxis(gemm, 0, 2));
    }
}
