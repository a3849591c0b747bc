namespace Quant.Core.Calibration;

/// <summary>
/// Threshold searches over a histogram of |x| (bins of equal width <c>w</c> starting at 0; bin i
/// holds [i*w, (i+1)*w)). All results are magnitudes (a clipping threshold T &gt;= 0).
/// </summary>
public static class HistogramMath
{
    /// <summary>
    /// The <paramref name="p"/>-quantile of |x|: the smallest t with (count of |x| &lt;= t) &gt;= p * total,
    /// found in its bin and linearly interpolated inside it (elements assumed uniform within a bin).
    /// Within one bin width of the exact order statistic.
    /// </summary>
    public static double Quantile(ReadOnlySpan<long> hist, double binWidth, double p)
    {
        if (!(p > 0 && p <= 1)) throw new ArgumentOutOfRangeException(nameof(p), p, "a percentile must be in (0, 1]");
        long total = 0;
        foreach (var c in hist) total += c;
        if (total == 0) return 0;
        double target = p * total;
        double cum = 0;
        int last = LastNonZero(hist);
        for (int i = 0; i <= last; i++)
        {
            long c = hist[i];
            if (c == 0) continue;
            if (cum + c >= target || i == last)
            {
                double frac = Math.Clamp((target - cum) / c, 0, 1);
                return (i + frac) * binWidth;
            }
            cum += c;
        }
        return 0;
    }

    /// <summary>
    /// Entropy calibration (the TensorRT method, as published in "8-bit Inference with TensorRT",
    /// GTC 2017): for every candidate i from <paramref name="levels"/> to the last non-zero bin + 1,
    /// P = bins [0, i) with every count at or beyond i added to bin i-1; Q = the same bins (without
    /// the outliers) merged into <paramref name="levels"/> groups (bin j goes to group
    /// floor(j * levels / i)), each group's mass spread evenly over its bins that are non-zero in P.
    /// Returns the i minimising KL(P || Q) (the first on ties); the threshold is i bin widths (the
    /// right edge of the last kept bin).
    /// Histograms with no more than <paramref name="levels"/> used bins return that used count (no clipping).
    /// </summary>
    /// <remarks>
    /// Each candidate is evaluated in O(levels) from prefix sums: within a group, Q is constant
    /// (mass / non-zero bins), so sum_j P_j log Q_j is log(Q) times the group's P mass, and
    /// sum_j P_j log P_j is a prefix sum. When the outliers land in a last group whose own bins are
    /// all empty, Q would be 0 where P is not (infinite KL: no threshold inside a gap of the histogram
    /// could ever win, so a few far outliers would force the threshold up to them); that bin gets a
    /// pseudo-count of <see cref="EmptyGroupPseudoCount"/> instead, so clipping a handful of outliers
    /// costs little and clipping real mass costs a lot.
    /// </remarks>
    public const double EmptyGroupPseudoCount = 0.5;

    public static int KlBins(ReadOnlySpan<long> hist, int levels)
    {
        if (levels < 2) throw new ArgumentOutOfRangeException(nameof(levels));
        int used = LastNonZero(hist) + 1;
        if (used <= levels) return used;
        int n = used;
        var mass = new double[n + 1];      // prefix sums of counts
        var plogp = new double[n + 1];     // prefix sums of c log c
        var nonZero = new int[n + 1];      // prefix counts of non-zero bins
        for (int j = 0; j < n; j++)
        {
            double c = hist[j];
            mass[j + 1] = mass[j] + c;
            plogp[j + 1] = plogp[j] + (c > 0 ? c * Math.Log(c) : 0);
            nonZero[j + 1] = nonZero[j] + (c > 0 ? 1 : 0);
        }
        double total = mass[n];
        int best = n;
        double bestKl = double.PositiveInfinity;
        for (int i = levels; i <= n; i++)
        {
            double outliers = total - mass[i];
            double last = hist[i - 1];
            double lastP = last + outliers;
            // sum P log P over [0, i), with bin i-1 replaced by lastP.
            double sumPLogP = plogp[i - 1] + (lastP > 0 ? lastP * Math.Log(lastP) : 0);
            double sumQ = mass[i]; // Q's unnormalised total (outliers excluded)
            double sumPLogQ = 0;
            for (int g = 0; g < levels; g++)
            {
                // bins j with floor(j*levels/i) == g are exactly [ceil(g*i/levels), ceil((g+1)*i/levels))
                int a = (int)(((long)g * i + levels - 1) / levels);
                int b = (int)((((long)g + 1) * i + levels - 1) / levels);
                if (a >= b) continue;
                double groupMass = mass[b] - mass[a];
                int nz = nonZero[b] - nonZero[a];
                double groupP = groupMass;
                if (b == i)
                {
                    groupP += outliers;
                    if (last == 0 && lastP > 0) nz++; // bin i-1 is non-zero in P only through the outliers
                }
                if (groupP == 0) continue;
                if (groupMass == 0)
                {
                    // Only the last group can get here: P's only non-zero bin in it is i-1.
                    sumQ += EmptyGroupPseudoCount;
                    sumPLogQ += groupP * Math.Log(EmptyGroupPseudoCount);
                    continue;
                }
                sumPLogQ += groupP * Math.Log(groupMass / nz);
            }
            // KL = sum p log(p/q) with p = P/total, q = Q/sumQ.
            double kl = (sumPLogP - sumPLogQ) / total - Math.Log(total) + Math.Log(sumQ);
            if (kl < bestKl - 1e-12) { bestKl = kl; best = i; }
        }
        return best;
    }

    /// <summary>
    /// The threshold T (a bin edge i*w, i = 1..used bins) minimising the expected squared error of
    /// symmetric quantization with step s = T / <paramref name="qmax"/>: elements of bins below T
    /// contribute rounding noise s²/12 (bin 0, which holds the exact zeros, at most its own mean
    /// square w²/3); elements of bins beyond T are clipped to T and contribute (c - T)² + w²/12 for
    /// bin centre c (uniform within the bin). Evaluated for all edges in O(bins) via prefix sums.
    /// </summary>
    public static double MseThreshold(ReadOnlySpan<long> hist, double binWidth, int qmax)
    {
        int n = LastNonZero(hist) + 1;
        if (n == 0) return 0;
        double w = binWidth;
        // Suffix sums over bins >= i of count, count*c, count*c².
        var sc = new double[n + 1];
        var sx = new double[n + 1];
        var sxx = new double[n + 1];
        for (int j = n - 1; j >= 0; j--)
        {
            double c = hist[j], centre = (j + 0.5) * w;
            sc[j] = sc[j + 1] + c;
            sx[j] = sx[j + 1] + c * centre;
            sxx[j] = sxx[j + 1] + c * centre * centre;
        }
        double best = double.PositiveInfinity;
        int bestI = n;
        for (int i = 1; i <= n; i++)
        {
            double t = i * w;
            double s = t / qmax;
            double rounding = s * s / 12;
            double inRange = (sc[0] - sc[i] - hist[0]) * rounding + hist[0] * Math.Min(rounding, w * w / 3);
            double clipped = sxx[i] - 2 * t * sx[i] + t * t * sc[i] + sc[i] * w * w / 12;
            double err = inRange + clipped;
            if (err < best * (1 - 1e-12)) { best = err; bestI = i; }
        }
        return bestI * w;
    }

    internal static int LastNonZero(ReadOnlySpan<long> h)
    {
        for (int i = h.Length - 1; i >= 0; i--) if (h[i] != 0) return i;
        return -1;
    }
}
