using Quant.Core.Compilation;
using Quant.Core.Conversion;
using Quant.Core.Stages;
using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Check.Tests.Commands;

/// <summary>
/// Same inputs, same bytes: the real cls and rec models exported, converted and compiled with 1, 2 and the default
/// number of threads, each in its own quant-check process, and in this process through the stages themselves, give
/// byte-identical artifacts (qat model, calibration cache, quantized model, program) and reports.
/// </summary>
public class DeterminismTests(ITestOutputHelper output)
{
    private static readonly string Tool = Path.Combine(AppContext.BaseDirectory, "quant-check.dll");
    private static readonly string ClsModel = Path.Combine(TestAssets.RepoRoot, "samples", "ppocr-cls", "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx");

    /// <summary>Every artifact the three stages write; the calibration cache is compared as the file the next export reads.</summary>
    private static readonly string[] Suffixes =
    [
        ".qat.onnx", ".calibration.qcs", ".model_check.json", ".model_check.txt", ".qconfig_changelogs.txt",
        ".quantized.onnx", ".convert.json", ".qbm", ".compile.json",
    ];

    /// <summary>
    /// Two calibration candidates and a percentile: the histograms, the candidate scoring and the float-vs-qat
    /// comparison all run, each reduced over threads.
    /// </summary>
    internal static string WriteConfig(string dir) => ExportCommandTests.WriteConfig(dir, ExportCommandTests.GoodConfig);

    /// <summary>rec, the larger recognition model (attention blocks: MatMul, Softmax): the same config on its own samples.</summary>
    private static string WriteRecConfig(string dir)
    {
        var path = Path.Combine(dir, "rec.quant.yaml");
        var data = Path.Combine(TestAssets.Data("ppocr-rec"), "calib_*.npy").Replace('\\', '/');
        File.WriteAllText(path, ExportCommandTests.GoodConfig.Replace("DATA", data));
        return path;
    }

    private static void Tool_(params string[] args)
    {
        var (code, stdout, stderr) = TestAssets.Run("dotnet", [Tool, .. args], TimeSpan.FromMinutes(5));
        Assert.True(code == 0, $"quant-check {string.Join(' ', args)}\n{stdout}\n{stderr}");
    }

    [Theory]
    [InlineData("cls")]
    [InlineData("rec")]
    public void Export_convert_and_compile_give_the_same_bytes_for_any_thread_count_in_or_out_of_process(string name)
    {
        var root = TestAssets.TempDir("determinism-" + name);
        var (model, config) = name == "cls" ? (ClsModel, WriteConfig(root)) : (TestAssets.RecModel, WriteRecConfig(root));
        var runs = new List<(string Label, string Dir)>();

        // Separate processes: --threads 1, 2, and none (the tool's default, all cores).
        foreach (var threads in new int?[] { 1, 2, null })
        {
            var label = threads is { } t ? $"process, {t} threads" : $"process, default threads ({Environment.ProcessorCount})";
            var dir = Path.Combine(root, threads is { } n ? $"p{n}" : "pdefault");
            Tool_(["export", model, "--config", config, "--out", dir, "--name", name, .. threads is { } k ? new[] { "--threads", k.ToString() } : []]);
            Tool_("convert", Path.Combine(dir, name + ".qat.onnx"));
            Tool_("compile", Path.Combine(dir, name + ".quantized.onnx"));
            runs.Add((label, dir));
        }

        // In this process, through the stages: 3 threads (more than the cores of a small machine) and the default.
        foreach (var threads in new[] { 3, Environment.ProcessorCount })
        {
            var dir = Path.Combine(root, $"i{threads}");
            ExportStage.Run(new ExportRequest { ModelPath = model, ConfigPath = config, OutputDirectory = dir, Name = name, Threads = threads });
            ConvertStage.Run(Path.Combine(dir, name + ".qat.onnx"), Path.Combine(dir, name + ".quantized.onnx"));
            CompileStage.Run(Path.Combine(dir, name + ".quantized.onnx"), Path.Combine(dir, name + ".qbm"));
            runs.Add(($"in process, {threads} threads", dir));
        }

        var (firstLabel, first) = runs[0];
        foreach (var artifact in Suffixes.Select(s => name + s))
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
