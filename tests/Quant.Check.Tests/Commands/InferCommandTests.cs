using Quant.Engine;
using Quant.TestSupport;

namespace Quant.Check.Tests.Commands;

/// <summary>
/// <c>quant-check infer</c> run as a user runs it (a separate process): real model in, .npy files out,
/// equal to ONNX Runtime; and each kind of bad input gives one clear error line and exit code 1.
/// </summary>
public class InferCommandTests
{
    private static readonly string Tool = Path.Combine(AppContext.BaseDirectory, "quant-check.dll");
    private static readonly string SampleModel = Path.Combine(TestAssets.RepoRoot, "samples", "ppocr-cls", "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx");
    private static readonly string SampleInput = Path.Combine(TestAssets.RepoRoot, "samples", "ppocr-cls", "inputs", "cls_0003.x.npy");
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    private static (int Code, string Stdout, string Stderr) QuantCheck(params string[] args) =>
        TestAssets.Run("dotnet", [Tool, .. args], TimeSpan.FromMinutes(2));

    [Fact]
    public void Infer_writes_outputs_equal_to_onnx_runtime_and_reports_latency()
    {
        var dir = TestAssets.TempDir("infer");
        var (code, stdout, stderr) = QuantCheck("infer", SampleModel, "--input", $"x={SampleInput}", "--out", dir, "--repeat", "3", "--threads", "1");
        Assert.True(code == 0, stderr);
        Assert.Matches(@"latency: median \d+\.\d+ ms, min \d+\.\d+ ms over 3 run\(s\), 1 thread\(s\)", stdout);

        var ours = Npy.Read(Path.Combine(dir, "softmax_0.tmp_0.npy"));
        var reference = OrtOracle.Run(SampleModel, new Dictionary<string, Tensor> { ["x"] = Npy.Read(SampleInput) }).Outputs["softmax_0.tmp_0"];
        Assert.Equal(reference.Shape, ours.Shape);
        Assert.True(TensorAssert.MaxAbsDiff(reference, ours) <= 1e-5);
        // cls_0003 is a line rotated by 180 degrees (labels.tsv: 1): class 1 must win.
        var p = ours.ReadOnlySpan<float>();
        Assert.True(p[1] > p[0], $"rotated line scored {p[1]} rotated vs {p[0]} upright");
    }

    [Fact]
    public void Both_runtimes_write_the_same_outputs_within_tolerance()
    {
        var engineDir = TestAssets.TempDir("infer-engine");
        var ortDir = TestAssets.TempDir("infer-ort");
        var engine = QuantCheck("infer", SampleModel, "--input", $"x={SampleInput}", "--out", engineDir, "--threads", "1");
        var ort = QuantCheck("infer", SampleModel, "--input", $"x={SampleInput}", "--out", ortDir, "--threads", "1", "--runtime", "onnxruntime", "--optimization", "disabled");
        Assert.True(engine.Code == 0, engine.Stderr);
        Assert.True(ort.Code == 0, ort.Stderr);
        Assert.Contains("Quant.Build engine", engine.Stdout);
        Assert.Matches(@"ONNX Runtime 1\.32\.\d+, optimizations disabled", ort.Stdout);
        // Same files, same names: the output format does not depend on the runtime.
        Assert.Equal(Directory.GetFiles(engineDir).Select(Path.GetFileName).Order(), Directory.GetFiles(ortDir).Select(Path.GetFileName).Order());
        var ours = Npy.Read(Path.Combine(engineDir, "softmax_0.tmp_0.npy"));
        var theirs = Npy.Read(Path.Combine(ortDir, "softmax_0.tmp_0.npy"));
        Assert.Equal(theirs.Shape, ours.Shape);
        Assert.True(TensorAssert.MaxAbsDiff(theirs, ours) <= 1e-5, $"engine vs ONNX Runtime differ by {TensorAssert.MaxAbsDiff(theirs, ours)}");
        // And the deployment default (all optimizations) classifies the rotated line the same way.
        var all = QuantCheck("infer", SampleModel, "--input", $"x={SampleInput}", "--out", ortDir, "--runtime", "onnxruntime");
        Assert.True(all.Code == 0, all.Stderr);
        var p = Npy.Read(Path.Combine(ortDir, "softmax_0.tmp_0.npy")).ReadOnlySpan<float>();
        Assert.True(p[1] > p[0]);
    }

    [Theory]
    [InlineData("--runtime", "tensorrt", "--runtime 'tensorrt'", "engine", "onnxruntime")]
    [InlineData("--optimization", "max", "--optimization 'max'", "disabled, basic, extended or all", "")]
    public void Unknown_runtime_or_optimization_is_one_clear_error(string option, string value, string quoted, string expected1, string expected2)
    {
        var dir = TestAssets.TempDir("bad");
        var args = new List<string> { "infer", SampleModel, "--input", SampleInput, "--out", dir, option, value };
        if (option == "--optimization") args.AddRange(["--runtime", "onnxruntime"]);
        AssertOneError(QuantCheck([.. args]), quoted, expected1, expected2);
        Assert.Empty(Directory.GetFiles(dir));
    }

    [Fact]
    public void Optimization_without_onnx_runtime_is_refused()
    {
        var dir = TestAssets.TempDir("bad");
        AssertOneError(QuantCheck("infer", SampleModel, "--input", SampleInput, "--out", dir, "--optimization", "basic"), "--optimization", "--runtime onnxruntime");
    }

    [Fact]
    public void Onnx_runtime_failure_names_the_model_and_input()
    {
        var dir = TestAssets.TempDir("bad");
        var x = Path.Combine(dir, "x.npy");
        Npy.Write(x, Tensor.From(new float[4 * 48 * 192], 1, 4, 48, 192));
        var (code, _, stderr) = QuantCheck("infer", SampleModel, "--input", $"x={x}", "--out", dir, "--runtime", "onnxruntime");
        Assert.Equal(1, code);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, stderr);
        Assert.Contains("ch_ppocr_mobile_v2.0_cls_infer.onnx", lines[0]);
        Assert.Contains("QB3003", lines[0]);
    }

    [Fact]
    public void Missing_onnx_runtime_library_is_one_clear_error_and_the_engine_still_runs()
    {
        // The tool without its runtimes/ folder: what a platform the packages carry no native library for sees.
        var app = TestAssets.TempDir("no-ort");
        foreach (var f in Directory.GetFiles(AppContext.BaseDirectory)) File.Copy(f, Path.Combine(app, Path.GetFileName(f)));
        var dir = TestAssets.TempDir("no-ort-out");
        var r = TestAssets.Run("dotnet", [Path.Combine(app, "quant-check.dll"), "infer", SampleModel, "--input", SampleInput, "--out", dir, "--runtime", "onnxruntime"], TimeSpan.FromMinutes(2));
        Assert.Equal(1, r.Code);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, r.Stderr);
        Assert.Contains("error QB3004: ONNX Runtime cannot be loaded on this platform", lines[0]);
        Assert.Contains("linux-x64, linux-arm64, win-x64 and osx-arm64", lines[0]);
        Assert.Empty(Directory.GetFiles(dir));
        var engine = TestAssets.Run("dotnet", [Path.Combine(app, "quant-check.dll"), "infer", SampleModel, "--input", SampleInput, "--out", dir], TimeSpan.FromMinutes(2));
        Assert.True(engine.Code == 0, engine.Stderr);
    }

    [Fact]
    public void Single_input_model_accepts_a_bare_file()
    {
        var dir = TestAssets.TempDir("infer");
        var (code, _, stderr) = QuantCheck("infer", SampleModel, "--input", SampleInput, "--out", dir);
        Assert.True(code == 0, stderr);
        Assert.True(File.Exists(Path.Combine(dir, "softmax_0.tmp_0.npy")));
    }

    [Fact]
    public void Truncated_model_is_one_clear_error()
    {
        var dir = TestAssets.TempDir("bad");
        var bytes = File.ReadAllBytes(SampleModel);
        var cut = Path.Combine(dir, "cut.onnx");
        File.WriteAllBytes(cut, bytes[..(bytes.Length / 3)]);
        AssertOneError(QuantCheck("infer", cut, "--input", SampleInput, "--out", dir), "cut.onnx", "truncated");
    }

    [Fact]
    public void Garbage_model_is_one_clear_error()
    {
        var dir = TestAssets.TempDir("bad");
        var junk = Path.Combine(dir, "junk.onnx");
        File.WriteAllBytes(junk, Enumerable.Range(0, 5000).Select(i => (byte)(i * 7919 % 251)).ToArray());
        AssertOneError(QuantCheck("infer", junk, "--input", SampleInput, "--out", dir), "junk.onnx", "not");
    }

    [Fact]
    public void Unknown_op_names_node_op_domain_and_opset()
    {
        var dir = TestAssets.TempDir("bad");
        var x = Path.Combine(dir, "x.npy");
        Npy.Write(x, Tensor.From(new float[4], 1, 4));
        var r = QuantCheck("infer", Fixture("unknown_op.onnx"), "--input", $"x={x}", "--out", dir);
        AssertOneError(r, "frob_1", "FrobnicateLinear", "ai.onnx", "opset 13");
    }

    [Fact]
    public void Shape_mismatch_at_run_time_names_the_input()
    {
        var dir = TestAssets.TempDir("bad");
        var x = Path.Combine(dir, "x.npy");
        Npy.Write(x, Tensor.From(new float[4 * 48 * 192], 1, 4, 48, 192));
        AssertOneError(QuantCheck("infer", SampleModel, "--input", $"x={x}", "--out", dir), "'x'", "[1,4,48,192]");
    }

    [Fact]
    public void External_data_outside_the_model_folder_is_refused()
    {
        var dir = TestAssets.TempDir("bad");
        var x = Path.Combine(dir, "x.npy");
        Npy.Write(x, Tensor.From(new float[4], 4));
        AssertOneError(QuantCheck("infer", Fixture("external_escape.onnx"), "--input", $"x={x}", "--out", dir), "outside the model's folder", "'w'");
    }

    [Theory]
    [InlineData("not numpy at all")]
    [InlineData("\u0093NUMPY\u0001\u0000\u0010\u0000{'descr': '<f4'")]
    public void Malformed_npy_is_one_clear_error(string content)
    {
        var dir = TestAssets.TempDir("bad");
        var x = Path.Combine(dir, "bad.npy");
        File.WriteAllBytes(x, System.Text.Encoding.Latin1.GetBytes(content));
        AssertOneError(QuantCheck("infer", SampleModel, "--input", $"x={x}", "--out", dir), "bad.npy");
    }

    [Fact]
    public void Npy_whose_data_is_shorter_than_its_shape_is_refused()
    {
        var dir = TestAssets.TempDir("bad");
        var x = Path.Combine(dir, "short.npy");
        var full = new MemoryStream();
        Npy.Write(full, Tensor.From(new float[3 * 48 * 192], 1, 3, 48, 192));
        File.WriteAllBytes(x, full.ToArray()[..1000]);
        AssertOneError(QuantCheck("infer", SampleModel, "--input", $"x={x}", "--out", dir), "short.npy", "truncated");
    }

    private static void AssertOneError((int Code, string Stdout, string Stderr) r, params string[] mustMention)
    {
        Assert.Equal(1, r.Code);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one error line, got:\n{r.Stderr}");
        Assert.StartsWith("quant-check: error: ", lines[0]);
        foreach (var m in mustMention) Assert.Contains(m, lines[0]);
    }
}
