using System.Diagnostics;
using System.Globalization;
using Quant.Core.Analysis.Sensitivity;
using Quant.Core.Config;
using Quant.Core.Precision;
using Quant.Core.Stages;
using Quant.TestSupport;

/// <summary>
/// Node sensitivity, downstream-only re-runs against the naive way (export every variant and run it whole), in one run on
/// the same calibrated model and samples: seconds per candidate both ways, the ratio, the time to the first complete
/// result, and that both ways give the same scores. Usage (build/bench-sensitivity.sh):
/// <c>sensitivity rec|det CALIB_DIR [--samples 8] [--full K] [--candidates K] [--mode alone|restore] [--preset performance] [--threads N]</c>.
/// </summary>
internal static class SensitivityBench
{
    public static int Run(string[] args)
    {
        if (args.Length < 2) { Console.Error.WriteLine("usage: sensitivity rec|det CALIB_DIR [--samples 8] [--full K] [--mode alone|restore] [--preset P] [--threads N]"); return 2; }
        string which = args[0], dir = Path.GetFullPath(args[1]);
        int samples = 8, full = 10, limit = int.MaxValue, threads = Environment.ProcessorCount;
        string mode = "alone", preset = "performance";
        for (int i = 2; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--samples": samples = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--full": full = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--candidates": limit = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--mode": mode = args[++i]; break;
                case "--preset": preset = args[++i]; break;
                case "--threads": threads = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine($"unknown argument {args[i]}"); return 2;
            }
        }
        var (model, pre) = which switch
        {
            "rec" => (TestAssets.RecModel, PresetTable.RecPreprocessing),
            "det" => (TestAssets.DetModel, PresetTable.DetPreprocessing),
            _ => throw new ArgumentException($"unknown model {which}"),
        };
        var work = TestAssets.TempDir("sensitivity-bench");
        try
        {
            var data = Path.Combine(dir, "*.npy").Replace('\\', '/');
            var config = Path.Combine(work, "q.yaml");
            File.WriteAllText(config, $"preset: {preset}\nmodel_config:\n  activation:\n    calibration_type: max\ncalibration: {{samples: {samples}}}\ninputs:\n  x:\n    data: \"{data}\"\n{pre}");
            var request = new ExportRequest { ModelPath = model, ConfigPath = config, OutputDirectory = work, Name = which, Threads = threads };
            var clock = Stopwatch.StartNew();
            var (cal, q, _) = NodeSensitivity.Prepare(request, null, default);
            Console.WriteLine($"{which}, preset {preset}, {samples} samples, mode {mode}, {threads} thread(s): calibration + plan {clock.Elapsed.TotalSeconds:F1} s");
            var m = SensitivityOptions.ModeOf(mode) ?? throw new ArgumentException($"unknown mode {mode}");
            // CPU time too: on a shared machine the wall clock says more about the other jobs than about this one.
            var process = Process.GetCurrentProcess();
            TimeSpan Cpu() { process.Refresh(); return process.TotalProcessorTime; }
            var cpu0 = Cpu();
            // --candidates K: every n-th candidate in graph order (det has many and runs long on a shared machine).
            var names = q.Plan.Nodes.Where(n => !n.ShapeOnly && n.FusedInto is null && n.Compute != QType.Float32).Select(n => n.Name).ToList();
            List<string>? subset = null;
            if (limit < names.Count)
            {
                int every = Math.Max(1, names.Count / limit);
                subset = names.Where((_, k) => k % every == 0).Take(limit).ToList();
            }
            var fast = NodeSensitivity.Run(cal, q, new SensitivityOptions { Mode = m, Samples = samples, Nodes = subset });
            double fastCpu = (Cpu() - cpu0).TotalSeconds;
            Console.WriteLine($"downstream-only: {fast.Candidates.Count} candidates, base runs {fast.SecondsForBaseRuns:F2} s, first result after {fast.SecondsToFirstResult:F3} s, " +
                $"{fast.SecondsPerCandidate:F4} s per candidate (building small models {fast.SecondsBuildingVariants:F1} s, re-running {fast.SecondsRerunning:F1} s in all)");
            var probe = cal.Data.Samples().First();
            var t = Stopwatch.StartNew();
            cal.FloatSession.Run(probe);
            double plain = t.Elapsed.TotalSeconds;
            t.Restart();
            cal.FloatSession.Run(probe, new Quant.Engine.RunOptions { KeepValues = new Quant.Engine.ValueCache() });
            Console.WriteLine($"one float run: {plain:F3} s, keeping every value {t.Elapsed.TotalSeconds:F3} s; input [{string.Join(",", probe["x"].Shape)}]");
            // The naive way on K candidates spread over the graph (every n-th in graph order), the same ones downstream-only.
            var order = fast.Candidates.Select(c => c.Name).ToList();
            var graphOrder = q.Plan.Nodes.Select(n => n.Name).Where(order.Contains).ToList();
            int step = Math.Max(1, graphOrder.Count / Math.Max(1, full));
            var picks = graphOrder.Where((_, k) => k % step == 0).Take(full).ToList();
            var cpu1 = Cpu();
            var slow = NodeSensitivity.Run(cal, q, new SensitivityOptions { Mode = m, Samples = samples, Nodes = picks, Strategy = SensitivityStrategy.FullExport });
            var cpu2 = Cpu();
            var again = NodeSensitivity.Run(cal, q, new SensitivityOptions { Mode = m, Samples = samples, Nodes = picks });
            var cpu3 = Cpu();
            int same = slow.Candidates.Count(s => again.Candidates.First(f => f.Name == s.Name).Worst(CheckMetric.Cosine).Equals(s.Worst(CheckMetric.Cosine)));
            Console.WriteLine($"full re-runs:    {slow.Candidates.Count} candidates, {slow.SecondsPerCandidate:F4} s per candidate; downstream-only on the same ones " +
                $"{again.SecondsPerCandidate:F4} s per candidate");
            Console.WriteLine($"ratio full / downstream-only: {slow.SecondsPerCandidate / again.SecondsPerCandidate:F1}x; identical cosine on {same}/{slow.Candidates.Count}");
            Console.WriteLine($"CPU seconds (process, incl. base runs): all candidates downstream-only {fastCpu:F1} s ({fastCpu / fast.Candidates.Count:F4} per candidate); " +
                $"on the {picks.Count}: full {(cpu2 - cpu1).TotalSeconds / picks.Count:F4}, downstream-only {(cpu3 - cpu2).TotalSeconds / picks.Count:F4} per candidate; " +
                $"load average {(File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(" ")[0] : "n/a")}");
            Console.WriteLine("most sensitive (first 10): " + string.Join(", ", fast.Candidates.Take(10).Select(c => $"{c.Name} {c.Worst(CheckMetric.Cosine):F6}")));
            return same == slow.Candidates.Count ? 0 : 1;
        }
        finally
        {
            try { Directory.Delete(work, true); } catch (IOException) { }
        }
    }
}
