using System.Diagnostics;
using System.Globalization;
using System.Text;
using Quant.Core.Compilation;
using Quant.Engine;
using Quant.Runtime;
using Quant.TestSupport;

/// <summary>
/// Fits the compile stage's cost model on this machine (<c>costmodel</c>) and compares the committed model's estimate
/// with measured latency (<c>estimate</c>). Both build the real PaddleOCR det, rec and cls models under the performance
/// and base presets (export with max calibration on the committed samples → convert → compile at the sample's shape),
/// then run each compiled model in Quant.Runtime: per op, the fastest of <see cref="Passes"/> timed runs at 1 thread
/// after warm-up (the fastest, because other jobs share the cores: the constants describe the kernels, not the
/// neighbours), and the whole run, the fastest of as many untimed runs at 1 and at 2 threads.
/// <c>costmodel</c> fits per op family µs = a + b·MACs + c·bytes (least squares with a, b, c ≥ 0) on the 1-thread op
/// timings of all models, writes src/Quant.Core/Compile/CostModelConstants.cs, and prints the fit per family, the
/// estimate vs measured per model, and a hold-out estimate per model from a fit on the other models only.
/// Usage: dotnet run -c Release --project benchmarks/Quant.Engine.Benchmarks -- costmodel [--models det,rec,cls] [--presets performance,base] [--keep DIR]
///        dotnet run -c Release --project benchmarks/Quant.Engine.Benchmarks -- estimate [--models ...] [--presets ...] [--keep DIR]
/// </summary>
internal static class CostModelCalibration
{
    private const int Passes = 5;

    /// <summary>One compiled model measured: per op the fastest 1-thread time, and the fastest whole run at 1 and 2 threads.</summary>
    private sealed record Measurement(string Model, string Preset, QbmFile File, double[] OpMicroseconds, double Milliseconds1, double Milliseconds2)
    {
        public string Label => $"{Model} {Preset}";
    }

    public static int Fit(string[] args) => Run(args, fit: true);

    public static int Estimate(string[] args) => Run(args, fit: false);

    private static int Run(string[] args, bool fit)
    {
        var models = new[] { "det", "rec", "cls" };
        var presets = new[] { "performance", "base" };
        string? keep = null;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--models" && i + 1 < args.Length) models = args[++i].Split(',');
            else if (args[i] == "--presets" && i + 1 < args.Length) presets = args[++i].Split(',');
            else if (args[i] == "--keep" && i + 1 < args.Length) keep = Path.GetFullPath(args[++i]);
            else { Console.Error.WriteLine($"unknown argument {args[i]}; usage: {(fit ? "costmodel" : "estimate")} [--models det,rec,cls] [--presets performance,base] [--keep DIR]"); return 2; }
        }
        var work = keep ?? TestAssets.TempDir("costmodel");
        Directory.CreateDirectory(work);
        try
        {
            var measured = new List<Measurement>();
            foreach (var name in models)
                foreach (var preset in presets)
                    measured.Add(MeasureModel(CompiledBench.Describe(name), preset, work));
            Console.WriteLine($"{Environment.ProcessorCount} cores, AVX-512F {System.Runtime.Intrinsics.X86.Avx512F.IsSupported}, AVX-VNNI {System.Runtime.Intrinsics.X86.AvxVnni.IsSupported}; " +
                              $"every time the fastest of {Passes} runs after warm-up");
            if (!fit)
            {
                Table(measured, m => m.File.Cost.TotalMicroseconds / 1000, null);
                ByFamily(measured);
                return 0;
            }
            var all = CostModel.Build(FitFamilies(Samples(measured), print: true));
            var holdOut = measured.Select(m => m.Model).Distinct().ToDictionary(name => name,
                name => CostModel.Build(FitFamilies(Samples(measured.Where(x => x.Model != name)), print: false)));
            Table(measured, m => EstimateMs(m, all), m => holdOut.Count > 1 ? EstimateMs(m, holdOut[m.Model]) : double.NaN);

            var path = Path.Combine(TestAssets.RepoRoot, "src", "Quant.Core", "Compile", "CostModelConstants.cs");
            File.WriteAllText(path, ConstantsSource(all, Samples(measured), models, presets));
            Console.WriteLine($"wrote {path}; rebuild, then `estimate` checks the committed constants through real compiles");
            return 0;
        }
        finally
        {
            if (keep is null) try { Directory.Delete(work, true); } catch (IOException) { }
        }
    }

    private static Measurement MeasureModel(CompiledBench.Model m, string preset, string work)
    {
        var (_, _, qbm) = CompiledBench.Build(m, work, preset);
        var feeds = new Dictionary<string, Tensor> { ["x"] = m.Input };
        var one = QbmModel.Load(qbm, new QbmRunOptions { Threads = 1 });
        var ops = one.File.Ops;
        var index = ops.Select((op, i) => (op.Name, i)).ToDictionary(x => x.Name, x => x.i, StringComparer.Ordinal);
        var best = Enumerable.Repeat(double.PositiveInfinity, ops.Count).ToArray();
        WarmUp(one, feeds);
        double ms1 = double.PositiveInfinity;
        for (int pass = 0; pass < Passes; pass++)
        {
            ms1 = Math.Min(ms1, Time(() => one.Run(feeds)));
            var timings = new NodeTimings();
            one.Run(feeds, timings);
            var thisPass = new double[ops.Count];
            foreach (var (node, ms, _) in timings.ByNode())
            {
                // A fused float elementwise chain is one pass over its members: its time is split evenly among them.
                var members = node.Name.StartsWith("fused[", StringComparison.Ordinal) ? node.Name[6..^1].Split(',') : [node.Name];
                foreach (var member in members) thisPass[index[member]] += ms * 1000 / members.Length;
            }
            for (int i = 0; i < ops.Count; i++) best[i] = Math.Min(best[i], thisPass[i]);
        }
        var two = QbmModel.Load(qbm, new QbmRunOptions { Threads = 2 });
        WarmUp(two, feeds);
        double ms2 = double.PositiveInfinity;
        for (int pass = 0; pass < Passes; pass++) ms2 = Math.Min(ms2, Time(() => two.Run(feeds)));
        Console.WriteLine($"  measured {m.Name} {preset}: {ops.Count} ops, 1 thread {ms1:F1} ms (ops timed one by one: {best.Sum() / 1000:F1} ms), 2 threads {ms2:F1} ms");
        return new Measurement(m.Name, preset, one.File, best, ms1, ms2);
    }

    /// <summary>At least 1.5 s and 2 runs: .NET recompiles the hot kernels after their first calls.</summary>
    private static void WarmUp(QbmModel model, IReadOnlyDictionary<string, Tensor> feeds)
    {
        double spent = 0;
        for (int i = 0; i < 2 || spent < 1500; i++) spent += Time(() => model.Run(feeds));
    }

    private static double Time(Action run)
    {
        long t0 = Stopwatch.GetTimestamp();
        run();
        return Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
    }

    private sealed record Sample(string Family, double Macs, double Bytes, double Microseconds);

    private static List<Sample> Samples(IEnumerable<Measurement> measured) =>
        measured.SelectMany(m => m.File.Cost.Ops.Select((c, i) => new Sample(CostModel.Families[c.Family], c.Macs, c.BytesRead + c.BytesWritten, m.OpMicroseconds[i]))).ToList();

    private static double EstimateMs(Measurement m, QbmCostModel model) =>
        m.File.Cost.Ops.Sum(c => CostModel.Microseconds(model.Families[c.Family], c.Macs, c.BytesRead + c.BytesWritten)) / 1000;

    /// <summary>Per family with samples a non-negative least-squares fit, and <see cref="CostModel.Other"/> on all samples pooled.</summary>
    private static List<QbmCostFamily> FitFamilies(List<Sample> samples, bool print)
    {
        var result = new List<QbmCostFamily>();
        if (print) Console.WriteLine($"{"family",-24} {"ops",5} {"a µs",9} {"b µs/MMAC",10} {"c µs/MB",9} {"measured ms",12} {"fitted ms",10} {"R²",6}");
        foreach (var family in CostModel.Families)
        {
            var set = family == CostModel.Other ? samples : samples.Where(s => s.Family == family).ToList();
            if (set.Count == 0) continue;
            var (a, b, c) = NonNegativeLeastSquares(set);
            result.Add(new QbmCostFamily(family, a, b, c));
            if (!print) continue;
            double measured = set.Sum(s => s.Microseconds), fitted = set.Sum(s => a + b * s.Macs + c * s.Bytes);
            double mean = measured / set.Count;
            double ssTot = set.Sum(s => (s.Microseconds - mean) * (s.Microseconds - mean));
            double ssRes = set.Sum(s => Math.Pow(s.Microseconds - (a + b * s.Macs + c * s.Bytes), 2));
            Console.WriteLine($"{family,-24} {set.Count,5} {a,9:F2} {b * 1e6,10:F1} {c * 1e6,9:F1} {measured / 1000,12:F2} {fitted / 1000,10:F2} {(ssTot > 0 ? 1 - ssRes / ssTot : 1),6:F3}");
        }
        return result;
    }

    /// <summary>
    /// min Σ (y − a − b·MACs − c·bytes)² with a, b, c ≥ 0, exactly: the optimum is the unconstrained least-squares fit of
    /// one subset of the three terms that comes out non-negative, so every subset is solved and the best feasible one kept.
    /// Columns are scaled to unit maximum first, so that MACs (~1e9) and bytes (~1e7) are solved at comparable magnitudes.
    /// </summary>
    private static (double A, double B, double C) NonNegativeLeastSquares(List<Sample> set)
    {
        double[][] x = [set.Select(_ => 1.0).ToArray(), set.Select(s => s.Macs).ToArray(), set.Select(s => s.Bytes).ToArray()];
        var scale = x.Select(col => Math.Max(col.Max(v => Math.Abs(v)), 1e-300)).ToArray();
        var y = set.Select(s => s.Microseconds).ToArray();

        double bestError = double.PositiveInfinity;
        var best = new double[3];
        for (int mask = 1; mask < 8; mask++)
        {
            var cols = Enumerable.Range(0, 3).Where(k => (mask >> k & 1) != 0 && scale[k] > 1e-300 && x[k].Any(v => v != 0)).ToArray();
            if (cols.Length == 0) continue;
            var coef = Solve(cols.Select(k => x[k].Select(v => v / scale[k]).ToArray()).ToArray(), y);
            if (coef is null || coef.Any(v => v < 0)) continue;
            var full = new double[3];
            for (int j = 0; j < cols.Length; j++) full[cols[j]] = coef[j] / scale[cols[j]];
            double error = 0;
            for (int i = 0; i < y.Length; i++)
            {
                double r = y[i] - full[0] - full[1] * x[1][i] - full[2] * x[2][i];
                error += r * r;
            }
            if (error < bestError) (bestError, best) = (error, full);
        }
        return (best[0], best[1], best[2]);
    }

    /// <summary>Least squares through the normal equations (at most 3 unknowns), Gaussian elimination with pivoting; null if singular.</summary>
    private static double[]? Solve(double[][] cols, double[] y)
    {
        int n = cols.Length;
        var m = new double[n, n + 1];
        for (int r = 0; r < n; r++)
        {
            for (int c = 0; c < n; c++) m[r, c] = Dot(cols[r], cols[c]);
            m[r, n] = Dot(cols[r], y);
        }
        for (int p = 0; p < n; p++)
        {
            int pivot = p;
            for (int r = p + 1; r < n; r++) if (Math.Abs(m[r, p]) > Math.Abs(m[pivot, p])) pivot = r;
            if (Math.Abs(m[pivot, p]) < 1e-12) return null;
            for (int c = 0; c <= n; c++) (m[p, c], m[pivot, c]) = (m[pivot, c], m[p, c]);
            for (int r = 0; r < n; r++)
            {
                if (r == p) continue;
                double f = m[r, p] / m[p, p];
                for (int c = p; c <= n; c++) m[r, c] -= f * m[p, c];
            }
        }
        return Enumerable.Range(0, n).Select(r => m[r, n] / m[r, r]).ToArray();
    }

    private static double Dot(double[] a, double[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }

    /// <summary>Estimate vs measured per model, as a markdown table (docs/artifact-format.md keeps one).</summary>
    private static void Table(List<Measurement> measured, Func<Measurement, double> estimate, Func<Measurement, double>? holdOut)
    {
        Console.WriteLine();
        Console.WriteLine(holdOut is null
            ? "| model | preset | ops | estimate ms | measured 1 thread ms | estimate / measured | Σ per-op fastest ms | measured 2 threads ms | estimate / measured |"
            : "| model | preset | ops | estimate ms (fit on all) | measured 1 thread ms | estimate / measured | hold-out estimate ms (fit without this model) | hold-out / measured | Σ per-op fastest ms | measured 2 threads ms |");
        Console.WriteLine(holdOut is null ? "|---|---|---:|---:|---:|---:|---:|---:|---:|" : "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var m in measured)
        {
            double e = estimate(m);
            Console.WriteLine(holdOut is null
                ? $"| {m.Model} | {m.Preset} | {m.File.Ops.Count} | {e:F1} | {m.Milliseconds1:F1} | {e / m.Milliseconds1:F2} | {m.OpMicroseconds.Sum() / 1000:F1} | {m.Milliseconds2:F1} | {e / m.Milliseconds2:F2} |"
                : $"| {m.Model} | {m.Preset} | {m.File.Ops.Count} | {e:F1} | {m.Milliseconds1:F1} | {e / m.Milliseconds1:F2} | {holdOut(m):F1} | {holdOut(m) / m.Milliseconds1:F2} | {m.OpMicroseconds.Sum() / 1000:F1} | {m.Milliseconds2:F1} |");
        }
        Console.WriteLine();
    }

    /// <summary>Where the estimate misses: per model, estimate / Σ per-op fastest ms of its largest families.</summary>
    private static void ByFamily(List<Measurement> measured)
    {
        foreach (var m in measured)
        {
            var rows = m.File.Cost.Ops.Select((c, i) => (Family: CostModel.Families[c.Family], Estimate: c.Microseconds, Measured: m.OpMicroseconds[i]))
                .GroupBy(x => x.Family).Select(g => (g.Key, Estimate: g.Sum(x => x.Estimate) / 1000, Measured: g.Sum(x => x.Measured) / 1000))
                .OrderByDescending(x => x.Measured).Take(6);
            Console.WriteLine($"{m.Label} by family (estimate / Σ per-op fastest ms): " + string.Join(", ", rows.Select(r => $"{r.Key} {r.Estimate:F1}/{r.Measured:F1}")));
        }
    }

    private static string ConstantsSource(QbmCostModel model, List<Sample> samples, string[] models, string[] presets)
    {
        static string R(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        var fitted = model.Families.Where(f => f.Name == CostModel.Other || samples.Any(s => s.Family == f.Name)).ToList();
        var sb = new StringBuilder();
        sb.Append("// Generated by `dotnet run -c Release --project benchmarks/Quant.Engine.Benchmarks -- costmodel` (CostModelCalibration.cs).\n");
        sb.Append("// Do not edit by hand: re-run the command, which fits these on per-op timings of real compiled models.\n");
        sb.Append($"// Fitted on {string.Join(", ", models)} under the {string.Join(" and ", presets)} presets, Quant.Runtime at 1 thread, the fastest of {Passes} runs per op;\n");
        sb.Append($"// {Environment.ProcessorCount} cores, AVX-512F {System.Runtime.Intrinsics.X86.Avx512F.IsSupported}, AVX-VNNI {System.Runtime.Intrinsics.X86.AvxVnni.IsSupported}.\n");
        sb.Append("namespace Quant.Core.Compilation;\n\ninternal static class CostModelConstants\n{\n");
        sb.Append("    /// <summary>Per family: µs = Microseconds + MicrosecondsPerMac · MACs + MicrosecondsPerByte · bytes (Samples: ops fitted on).</summary>\n");
        sb.Append("    public static readonly (string Family, double Microseconds, double MicrosecondsPerMac, double MicrosecondsPerByte, int Samples)[] Fitted =\n    [\n");
        foreach (var f in fitted)
        {
            int n = f.Name == CostModel.Other ? samples.Count : samples.Count(s => s.Family == f.Name);
            sb.Append($"        (\"{f.Name}\", {R(f.Microseconds)}, {R(f.MicrosecondsPerMac)}, {R(f.MicrosecondsPerByte)}, {n}),\n");
        }
        sb.Append("    ];\n}\n");
        return sb.ToString();
    }
}
