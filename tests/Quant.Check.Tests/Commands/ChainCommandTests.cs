using Quant.Engine;
using Quant.TestSupport;

namespace Quant.Check.Tests.Commands;

/// <summary>
/// <c>quant-check convert</c>, <c>compile</c>, <c>check --quantized --compiled</c> and <c>infer</c> on a .qbm, as a user
/// runs them on the real cls model; and their refusals, one line each.
/// </summary>
public class ChainCommandTests
{
    private static readonly string Tool = Path.Combine(AppContext.BaseDirectory, "quant-check.dll");
    private static readonly string SampleInput = Path.Combine(TestAssets.RepoRoot, "samples", "ppocr-cls", "inputs", "cls_0003.x.npy");
    private const string Output = "softmax_0.tmp_0";

    private static (int Code, string Stdout, string Stderr) QuantCheck(params string[] args) =>
        TestAssets.Run("dotnet", [Tool, .. args], TimeSpan.FromMinutes(5));

    /// <summary>Lines 1-9 configure the export; checks: starts at line 10.</summary>
    private static string Config(string dir)
    {
        var path = Path.Combine(dir, "cls.quant.yaml");
        File.WriteAllText(path,
            "model_config:\n  activation:\n    calibration_type: max\n" +
            $"inputs:\n  x:\n    data: \"{Path.Combine(TestAssets.Data("ppocr-cls"), "cls_*.npy").Replace('\\', '/')}\"\n" +
            "    scale: 1/255\n    mean: 0.5\n    std: 0.5\n" +
            "checks:\n  softmax:\n    cosine: {min: 0.9}\n");
        return path;
    }

    [Fact]
    public void Convert_compile_check_and_infer_run_the_whole_chain()
    {
        var dir = TestAssets.TempDir("chain-cli");
        var cfg = Config(dir);
        var outDir = Path.Combine(dir, "out");
        var r = QuantCheck("export", TestAssets.ClsModel, "--config", cfg, "--out", outDir, "--name", "cls");
        Assert.True(r.Code == 0, r.Stderr);
        var qat = Path.Combine(outDir, "cls.qat.onnx");

        // Default names: NAME.quantized.onnx beside the qat model, NAME.qbm beside the quantized one.
        r = QuantCheck("convert", qat);
        Assert.True(r.Code == 0, r.Stderr);
        var quantized = Path.Combine(outDir, "cls.quantized.onnx");
        Assert.Contains($"quantized model: {quantized}", r.Stdout);
        Assert.True(File.Exists(quantized));
        r = QuantCheck("compile", quantized);
        Assert.True(r.Code == 0, r.Stderr);
        var qbm = Path.Combine(outDir, "cls.qbm");
        Assert.Contains($"program:        {qbm}", r.Stdout);
        Assert.True(File.Exists(Path.Combine(outDir, "cls.compile.json")));

        // -o names the file; the same input gives the same bytes.
        var again = Path.Combine(dir, "again.qbm");
        Assert.Equal(0, QuantCheck("compile", quantized, "-o", again).Code);
        Assert.Equal(File.ReadAllBytes(qbm), File.ReadAllBytes(again));

        r = QuantCheck("check", TestAssets.ClsModel, "--config", cfg, "--qat", qat, "--quantized", quantized, "--compiled", qbm, "--out", outDir, "--name", "cls");
        Assert.True(r.Code == 0, r.Stderr + r.Stdout);
        Assert.Contains($"ok  cls: compiled_vs_quantized output '{Output}' is bit-exact", r.Stdout);
        Assert.Contains($"ok  cls: quantized_vs_qat output '{Output}' cosine min", r.Stdout);

        // infer runs the .qbm in Quant.Runtime; it must give the quantized model's bytes (the engine's run of it).
        var fromQbm = Path.Combine(dir, "qbm-out");
        var fromQuantized = Path.Combine(dir, "quantized-out");
        r = QuantCheck("infer", qbm, "--input", $"x={SampleInput}", "--out", fromQbm);
        Assert.True(r.Code == 0, r.Stderr);
        Assert.Contains("Quant.Runtime (compiled program)", r.Stdout);
        Assert.Equal(0, QuantCheck("infer", quantized, "--input", $"x={SampleInput}", "--out", fromQuantized).Code);
        var a = Npy.Read(Path.Combine(fromQbm, Output + ".npy"));
        var b = Npy.Read(Path.Combine(fromQuantized, Output + ".npy"));
        Assert.True(a.Bytes().SequenceEqual(b.Bytes()), "infer on the .qbm and on the quantized model agree bit for bit");
    }

    [Fact]
    public void Compile_plans_for_the_given_input_shape_and_infer_runs_the_program_as_the_engine_runs_its_model()
    {
        // compile takes any graph the engine runs; here the qat model itself, so this runs without convert.
        var dir = TestAssets.TempDir("compile-cli");
        var cfg = Config(dir);
        Assert.Equal(0, QuantCheck("export", TestAssets.ClsModel, "--config", cfg, "--out", dir, "--name", "cls").Code);
        var qat = Path.Combine(dir, "cls.qat.onnx");
        var (one, two) = (Path.Combine(dir, "one.qbm"), Path.Combine(dir, "two.qbm"));
        var r = QuantCheck("compile", qat, "-o", one);
        Assert.True(r.Code == 0, r.Stderr);
        Assert.Contains($"program:        {one}", r.Stdout);
        Assert.Contains("compile report: " + Path.Combine(dir, "one.compile.json"), r.Stdout);
        r = QuantCheck("compile", qat, "-o", two, "--input-shape", "x=2x3x48x192");
        Assert.True(r.Code == 0, r.Stderr);
        Assert.NotEqual(File.ReadAllBytes(one), File.ReadAllBytes(two));
        Assert.Matches(@"""x"": \[\s*2,\s*3,\s*48,\s*192\s*\]", File.ReadAllText(Path.Combine(dir, "two.compile.json")));

        var (fromQbm, fromQat) = (Path.Combine(dir, "qbm-out"), Path.Combine(dir, "qat-out"));
        r = QuantCheck("infer", one, "--input", SampleInput, "--out", fromQbm);
        Assert.True(r.Code == 0, r.Stderr);
        Assert.Contains("Quant.Runtime (compiled program)", r.Stdout);
        Assert.Equal(0, QuantCheck("infer", qat, "--input", SampleInput, "--out", fromQat).Code);
        Assert.Equal(File.ReadAllBytes(Path.Combine(fromQat, Output + ".npy")), File.ReadAllBytes(Path.Combine(fromQbm, Output + ".npy")));

        AssertOneLine(QuantCheck("compile", qat, "-o", two, "--input-shape", "x=2x3"), "error QB7119", "does not fit the declared");
        AssertOneLine(QuantCheck("compile", qat, "-o", two, "--input-shape", "x=2,3,48,192"), "quant-check: error: --input-shape 'x=2,3,48,192': expected NAME=D1xD2x...");
    }

    [Fact]
    public void Stage_commands_refuse_bad_input_with_one_line()
    {
        var dir = TestAssets.TempDir("chain-cli-bad");
        var missing = Path.Combine(dir, "nothing.qat.onnx");
        AssertOneLine(QuantCheck("convert", missing), $"{missing}: error QB3001: the qat model does not exist");
        AssertOneLine(QuantCheck("compile", Path.Combine(dir, "nothing.quantized.onnx")), "error QB3001: the quantized model does not exist");

        var qat = Path.Combine(dir, "cls.qat.onnx");
        File.Copy(TestAssets.ClsModel, qat);
        AssertOneLine(QuantCheck("convert", qat, "-o", qat), "quant-check: error: --out", "is the input file itself");

        // A compiled program runs only in Quant.Runtime.
        var qbm = Path.Combine(dir, "cls.qbm");
        File.WriteAllBytes(qbm, [1, 2, 3]);
        AssertOneLine(QuantCheck("infer", qbm, "--input", $"x={SampleInput}", "--out", dir, "--runtime", "onnxruntime"),
            "quant-check: error: --runtime onnxruntime: 'cls.qbm' is a compiled program, which only Quant.Runtime runs");
    }

    [Fact]
    public void A_broken_qbm_is_one_positioned_line_with_its_QB71xx_code()
    {
        var dir = TestAssets.TempDir("chain-cli-qbm");
        var qbm = Path.Combine(dir, "broken.qbm");
        File.WriteAllBytes(qbm, "not a compiled program at all"u8.ToArray());
        var r = QuantCheck("infer", qbm, "--input", $"x={SampleInput}", "--out", dir);
        Assert.Equal(1, r.Code);
        var line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Matches(@"^" + System.Text.RegularExpressions.Regex.Escape(qbm) + @": error QB71(0[1-9]|1\d|20): ", line);
    }

    private static void AssertOneLine((int Code, string Stdout, string Stderr) r, params string[] mustMention)
    {
        Assert.Equal(1, r.Code);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one error line, got:\n{r.Stderr}");
        foreach (var m in mustMention) Assert.Contains(m, lines[0]);
    }
}
