using Quant.Core.Compilation;
using Quant.Core.Conversion;
using Quant.Core.Stages;
using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Check.Tests.Commands;

/// <summary>
/// Same inputs, same bytes: the real cls model exported, converted and compiled with 1, 2 and the default number of
/// threads, each in its own quant-check process, and in this process through the stages themselves, gives
/// byte-identical artifacts (qat model, calibration cache, quantized model, program) and reports.
/// </summary>
public class DeterminismTests(ITestOutputHelper output)
{
    private static readonly string Tool = Path.Combine(AppContext.BaseDirectory, "quant-check.dll");
    private static readonly string ClsModel = Path.Combine(TestAssets.RepoRoot, "samples", "ppocr-cls", "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx");

    /// <summary>Every artifact the three stages write; the calibration cache is compared as the file the next export reads.</summary>
    private static readonly string[] Artifacts =
    [
        "cls.qat.onnx", "cls.calibration.qcs", "cls.model_check.json", "cls.model_check.txt", "cls.qconfig_changelogs.txt",
        "cls.quantized.onnx", "cls.convert.json", "cls.qbm", "cls.compile.json",
    ];

    internal static string WriteConfig(string dir)
    {
        var path = Path.Combine(dir, "cls.quant.yaml");
        var data = Path.Combine(TestAssets.Data("ppocr-cls"), "cls_*.npy").Replace('\\', '/');
        // Two calibration candidates and a percentile: the histogram, the candidate scoring and the float-vs-qat
        // comparison all run, each reduced over threads.
        File.WriteAllText(path, $$"""
            quant_config:
              model_config:
                all_node_type: int8
                activation:
                  calibration_type: [max, percentile]
                  max_percentile: 0.99995
              op_config:
                Softmax: {qtype: float16}
            inputs:
              x:
                data: "{{data}}"
                scale: 1/255
                mean: 0.5
                std: 0.5
            calibration:
              batch_size: 2
            """);
        return path;
    }

    private static void Tool_(params string[] args)
    {
        var (code, stdout, stderr) = TestAssets.Run("dotnet", [Tool, .. args], TimeSpan.FromMinutes(5));
        Assert.True(code == 0, $"quant-check {string.Join(' ', args)}\n{stdout}\n{stderr}");
    }

    [Fact]
    public void Export_convert_and_compile_give_the_same_bytes_for_any_thread_count_in_or_out_of_process()
    {
        var root = TestAssets.TempDir("determinism");
        var config = WriteConfig(root);
        var runs = new List<(string Label, string Dir)>();

        // Separate processes: --threads 1, 2, and none (the tool's default, all cores).
        foreach (var threads in new int?[] { 1, 2, null })
        {
            var label = threads is { } t ? $"process, {t} threads" : $"process, default threads ({Environment.ProcessorCount})";
            var dir = Path.Combine(root, threads is { } n ? $"p{n}" : "pdefault");
            Tool_(["export", ClsModel, "--config", config, "--out", dir, "--name", "cls", .. threads is { } k ? new[] { "--threads", k.ToString() } : []]);
            Tool_("convert", Path.Combine(dir, "cls.qat.onnx"));
            Tool_("compile", Path.Combine(dir, "cls.quantized.onnx"));
            runs.Add((label, dir));
        }

        // In this process, through the stages: 3 threads (more than the cores of a small machine) and the default.
        foreach (var threads in new[] { 3, Environment.ProcessorCount })
        {
            var dir = Path.Combine(root, $"i{threads}");
            ExportStage.Run(new ExportRequest { ModelPath = ClsModel, ConfigPath = config, OutputDirectory = dir, Name = "cls", Threads = threads });
            ConvertStage.Run(Path.Combine(dir, "cls.qat.onnx"), Path.Combine(dir, "cls.quantized.onnx"));
            CompileStage.Run(Path.Combine(dir, "cls.quantized.onnx"), Path.Combine(dir, "cls.qbm"));
            runs.Add(($"in process, {threads} threads", dir));
        }

        var (firstLabel, first) = runs[0];
        foreach (var artifact in Artifacts)
        {
            var expected = File.ReadAllBytes(Path.Combine(first, artifact));
            Assert.True(expected.Length > 0, artifact);
            foreach (var (label, dir) in runs.Skip(1))
            {
                var actual = File.ReadAllBytes(Path.Combine(dir, artifact));
                Assert.True(expected.AsSpan().SequenceEqual(actual), $"{artifact}: {label} differs from {firstLabel} (first difference at byte {FirstDifference(expected, actual)})");
            }
            output.WriteLine($"{artifact}: {expected.Length} bytes, identical in {runs.Count} runs");
        }
    }

    private static int FirstDifference(byte[] a, byte[] b)
    {
        int n = Math.Min(a.Length, b.Length);
        for (int i = 0; i < n; i++) if (a[i] != b[i]) return i;
        return n;
    }
}
