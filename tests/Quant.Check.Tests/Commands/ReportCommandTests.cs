using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Quant.Core.Checks;
using Quant.Core.Reports.Html;
using Quant.Core.Stages;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Check.Tests.Commands;

/// <summary>
/// <c>quant-check report</c> on a real export and check of the PaddleOCR cls model, opened in headless Chromium:
/// every section present, no console error, the clipping ranges those of the exported QDQ model, and a screenshot
/// kept next to the test binaries (its path is printed in the test output).
/// </summary>
public class ReportCommandTests(ITestOutputHelper output)
{
    private static readonly string Tool = Path.Combine(AppContext.BaseDirectory, "quant-check.dll");

    private static (int Code, string Stdout, string Stderr) QuantCheck(params string[] args) =>
        TestAssets.Run("dotnet", [Tool, .. args], TimeSpan.FromMinutes(5));

    private const string Config = """
        quant_config:
          model_config:
            all_node_type: int8
            activation:
              calibration_type: max
          op_config:
            Softmax: {qtype: float16}
        inputs:
          x:
            data: "DATA"
            scale: 1/255
            mean: 0.5
            std: 0.5
        calibration:
          batch_size: 2
        checks:
          direction:
            stage: qat_vs_float
            output: "*"
            cosine: {min: 0.99}
        """;

    /// <summary>Export and check of the real cls model into a fresh folder, as the CLI commands would leave it.</summary>
    private static (string Dir, string Config) ExportAndCheck()
    {
        var dir = TestAssets.TempDir("report-cls");
        var config = Path.Combine(dir, "cls.quant.yaml");
        File.WriteAllText(config, Config.Replace("DATA", Path.Combine(TestAssets.Data("ppocr-cls"), "cls_*.npy").Replace('\\', '/')));
        var export = ExportStage.Run(new ExportRequest { ModelPath = TestAssets.ClsModel, ConfigPath = config, OutputDirectory = dir, Name = "cls", Threads = 2 });
        CheckStage.Run(new CheckRequest
        {
            ModelPath = TestAssets.ClsModel, QatModelPath = export.QatModelPath, ConfigPath = config, OutputDirectory = dir, Name = "cls",
            Threads = 2, StepSummaryPath = null,
        });
        return (dir, config);
    }

    [Fact]
    public void Report_of_a_real_export_has_every_section_and_loads_in_headless_chromium_without_console_errors()
    {
        var (dir, config) = ExportAndCheck();
        WriteDebuggingFiles(dir, config);
        var (code, stdout, stderr) = QuantCheck("report", "--dir", dir, "--name", "cls");
        Assert.True(code == 0, stderr);
        var page = Path.Combine(dir, "cls.report.html");
        Assert.Contains($"report:   {page}", stdout);
        var html = File.ReadAllText(page);
        long size = new FileInfo(page).Length;

        // Deterministic: the same files give the same bytes.
        var again = Path.Combine(dir, "again.html");
        Assert.Equal(0, QuantCheck("report", "--dir", dir, "--name", "cls", "--out", again).Code);
        Assert.Equal(File.ReadAllBytes(page), File.ReadAllBytes(again));

        // Self-contained: no file, script, style or font is fetched from anywhere (the only URL is SVG's namespace name).
        Assert.DoesNotContain("<link", html);
        Assert.DoesNotContain(" src=", html);
        Assert.DoesNotContain("url(", html);
        Assert.DoesNotContain(Regex.Matches(html, "https?://"), m => !html.AsSpan(m.Index).StartsWith("http://www.w3.org/2000/svg"));

        foreach (var id in ReportPage.SectionIds)
        {
            var body = Section(html, id);
            Assert.DoesNotContain("class=\"not-run\"", body);
        }

        // Precision map: one row per node of the model check, and the yaml's op_config on the Softmax node says why it is float16.
        var modelCheck = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "cls.model_check.json"))).RootElement;
        var precision = Section(html, "precision");
        Assert.Equal(modelCheck.GetProperty("layers").GetArrayLength(), Regex.Matches(precision, "<tr>|<tr class=").Count - 1);
        Assert.Matches(@"Softmax</td><td><span class=""q q-float16"">float16</span>.*op_config Softmax", precision);

        // Histograms: the kept range of each shown tensor is the exported QDQ model's scale x [-128, 127] (its QuantizeLinear).
        var qat = OnnxModelReader.Load(Path.Combine(dir, "cls.qat.onnx"));
        var histograms = Section(html, "histograms");
        var captions = Regex.Matches(histograms, "<figcaption>(.*?)</figcaption>").Select(m => System.Net.WebUtility.HtmlDecode(m.Groups[1].Value)).ToList();
        Assert.Equal(Math.Min(HistogramSection.MaxTensors, modelCheck.GetProperty("activations").GetArrayLength()), captions.Count);
        foreach (var caption in captions.Take(5))
        {
            var tensor = caption[..caption.IndexOf(": ", StringComparison.Ordinal)];
            var q = qat.Graph.Nodes.FirstOrDefault(n => n.OpType == "QuantizeLinear" && n.Inputs[0] == tensor);
            Assert.True(q is not null, $"{tensor}: no QuantizeLinear; {string.Join(", ", qat.Graph.Nodes.Where(n => n.OpType == "QuantizeLinear").Take(8).Select(n => n.Inputs[0]))}");
            float scale = Tensor.FromData(qat.Graph.Initializers[q.Inputs[1]]).ReadOnlySpan<float>()[0];
            int zp = Tensor.FromData(qat.Graph.Initializers[q.Inputs[2]]).ReadOnlySpan<sbyte>()[0];
            string expected = $"keeps [{((double)scale * (-128 - zp)).ToString("G6", CultureInfo.InvariantCulture)}, {((double)scale * (127 - zp)).ToString("G6", CultureInfo.InvariantCulture)}]";
            Assert.Contains(expected, caption);
        }

        // Checks: every check of the check report, each with its verdict.
        var checks = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "cls.check.json"))).RootElement.GetProperty("checks");
        Assert.Equal(checks.GetArrayLength(), Regex.Matches(Section(html, "checks"), "<tr class=\"(pass|fail)\">").Count);

        // In a browser: the page loads with no console message at all, every section is in the DOM, and the picker's
        // script ran (all histograms but the first hidden).
        var shot = Path.Combine(AppContext.BaseDirectory, "report-screenshot.png");
        File.Delete(shot);
        var loaded = HeadlessChromium.Load(page, shot);
        Assert.True(loaded.ConsoleMessages.Count == 0, "console: " + string.Join("\n", loaded.ConsoleMessages));
        foreach (var id in ReportPage.SectionIds) Assert.Contains($"<section id=\"{id}\">", loaded.Dom);
        Assert.Equal(captions.Count - 1, Regex.Matches(loaded.Dom, "<figure class=\"hist\" id=\"hist-\\d+\" style=\"display: none;\">").Count);
        var png = File.ReadAllBytes(shot);
        Assert.True(png.Length > 20_000 && png.AsSpan(0, 8).SequenceEqual(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }), "a PNG screenshot");
        File.Copy(page, Path.Combine(AppContext.BaseDirectory, "report-cls.html"), overwrite: true);
        output.WriteLine($"report: {size} bytes; screenshot: {shot}; page copy: {Path.Combine(AppContext.BaseDirectory, "report-cls.html")}");
    }

    [Fact]
    public void A_browser_console_error_is_seen_by_the_headless_check()
    {
        // The check above asserts no console message: it must see one when there is one (an uncaught error, a blocked fetch).
        var dir = TestAssets.TempDir("report-console");
        var page = Path.Combine(dir, "bad.html");
        File.WriteAllText(page, "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'\"></head>" +
                                "<body><img src=\"http://192.0.2.1/x.png\"><script>notDefined();</script></body></html>");
        var loaded = HeadlessChromium.Load(page);
        Assert.Contains(loaded.ConsoleMessages, m => m.Contains("Uncaught ReferenceError: notDefined", StringComparison.Ordinal));
        Assert.Contains(loaded.ConsoleMessages, m => m.Contains("Content Security Policy", StringComparison.Ordinal));
    }

    [Fact]
    public void Names_with_markup_characters_are_text_in_the_page_never_markup()
    {
        const string evil = "<img src=x onerror=\"alert(1)\">&amp;'x'";
        var dir = TestAssets.TempDir("report-escape");
        WriteMinimalModelCheck(dir, "m", evil);
        File.WriteAllText(Path.Combine(dir, "m.compare.json"), Json(new
        {
            format = "quant-compare/1", model = "m.onnx", reference = "float", actual = "qat", samples = 1,
            tensors = new[] { new { tensor = evil, node = evil, op_type = "Conv", qtype = "int8", cosine = 0.5, sqnr = 3.0, scale = (double?)null, clipped = (double?)null, flags = new[] { "range_mismatch" } } },
            first_nonfinite = new { stage = "qat", node = evil, tensor = evil, kind = "nan" },
            findings = new[] { new { flag = "range_mismatch", node = evil, tensor = evil, message = evil } },
        }));
        var (code, _, stderr) = QuantCheck("report", "--dir", dir, "--name", "m");
        Assert.True(code == 0, stderr);
        var html = File.ReadAllText(Path.Combine(dir, "m.report.html"));
        Assert.DoesNotContain("<img", html);
        Assert.Contains("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;amp;&#39;x&#39;", html);
        var loaded = HeadlessChromium.Load(Path.Combine(dir, "m.report.html"));
        Assert.Empty(loaded.ConsoleMessages);
        Assert.DoesNotContain("<img", loaded.Dom);
        Assert.Contains("&lt;img src=x onerror=\"alert(1)\"&gt;&amp;amp;'x'", loaded.Dom); // the name, as text
        // Sections without data say how to get them.
        Assert.Contains("not run: run <code>quant-check sensitivity</code>", html);
        Assert.Contains("not run: run <code>quant-check tune</code>", html);
        Assert.Contains("not run: run <code>quant-check check</code>", html);
        Assert.Contains("not run: no m.calibration.qcs", html);
    }

    [Fact]
    public void Bad_inputs_are_one_error_naming_the_file_and_key_and_leave_the_previous_page_alone()
    {
        var dir = TestAssets.TempDir("report-errors");
        var missing = QuantCheck("report", "--dir", dir, "--name", "m");
        Assert.Equal(1, missing.Code);
        Assert.Matches(@"^\S*report-errors\S*: error QB8061: the folder has no m\.model_check\.json; run quant-check export", missing.Stderr);
        Assert.DoesNotContain("   at ", missing.Stderr);

        WriteMinimalModelCheck(dir, "m", "conv_out");
        Assert.Equal(0, QuantCheck("report", "--dir", dir, "--name", "m").Code);
        var page = Path.Combine(dir, "m.report.html");
        var before = File.ReadAllBytes(page);

        void Expect(string file, string text, string pattern)
        {
            File.WriteAllText(Path.Combine(dir, file), text);
            var (code, _, stderr) = QuantCheck("report", "--dir", dir, "--name", "m");
            Assert.Equal(1, code);
            Assert.Matches(pattern, stderr.Trim());
            Assert.Single(stderr.Trim().Split('\n'));
            Assert.Equal(before, File.ReadAllBytes(page));
            File.Delete(Path.Combine(dir, file));
        }
        Expect("m.compare.json", "{\n  \"format\": \"quant-compare/1\",\n  \"tensors\": [ {\"tensor\": \"a\",", @"m\.compare\.json\(3,\d+\): error QB8062: not valid JSON");
        Expect("m.sensitivity.json", Json(new { format = "quant-sensitivity/2" }),
            @"m\.sensitivity\.json: error QB8063: key 'format' is 'quant-sensitivity/2', this report reads 'quant-sensitivity/1'; re-run quant-check sensitivity");
        Expect("m.compare.json", Json(new { format = "quant-compare/1", model = "m.onnx", reference = "float", actual = "qat", samples = 1,
                tensors = new[] { new { tensor = "a", node = "n", op_type = "Conv", qtype = "int8", cosine = "high" } } }),
            @"m\.compare\.json: error QB8062: key 'tensors\[0\]\.cosine' is not a number");
        Expect("m.tune.json", Json(new { format = "quant-tune/1", targets = Array.Empty<object>(), met = true, cost_model = "macs",
                baseline = new { cost = 1.0, values = new { } }, best = new { cost = 1.0, values = new { } }, visited = new[] { new { step = 0 } } }),
            @"m\.tune\.json: error QB8062: key 'visited\[0\]\.cost' is missing");
        Expect("m.check.json", "[1, 2]", @"m\.check\.json: error QB8062: the file holds a array, not a JSON object");
        Expect("m.calibration.qcs", "QBCALST1 truncated", @"m\.calibration\.qcs: error QB8064: not a calibration statistics file");
    }

    private static string Section(string html, string id)
    {
        int start = html.IndexOf($"<section id=\"{id}\">", StringComparison.Ordinal);
        Assert.True(start >= 0, $"section {id}");
        int end = html.IndexOf("</section>", start, StringComparison.Ordinal);
        return html[start..end];
    }

    private static string Json(object o) => JsonSerializer.Serialize(o, new JsonSerializerOptions { WriteIndented = true });

    /// <summary>The keys of NAME.model_check.json the report reads, for one Conv node named <paramref name="node"/>.</summary>
    private static void WriteMinimalModelCheck(string dir, string name, string node) =>
        File.WriteAllText(Path.Combine(dir, name + ".model_check.json"), Json(new
        {
            model = name,
            calibration_method = "max",
            precision_counts = new Dictionary<string, int> { ["int8"] = 1, ["float32"] = 0 },
            layers = new[] { new { node, op_type = "Conv", compute = "int8", inputs = new[] { "int8", "int8(w)", "float32(b)" }, output = "int8",
                scales = "0.1", method = "max", weight_axis = "0", source = "node_config", output_tensor = node } },
            change_log = new[] { new { node, op_type = "Conv", where = "output0 'y'", from = "int8", to = "int16", reason = node } },
            activations = new[] { new { tensor = node, qtype = "int8", scale = 0.1, zero_point = 0, channels = 1, method = "max", clip_min = -12.8, clip_max = 12.7 } },
            similarity = new[] { new { output = node, cosine = new { min = 0.9, avg = 0.95, max = 1.0 } } },
        }));

    /// <summary>The debugging commands' files for the report, written by the commands themselves on the same export.</summary>
    private static void WriteDebuggingFiles(string dir, string config)
    {
        var compare = QuantCheck("compare", TestAssets.ClsModel, Path.Combine(dir, "cls.qat.onnx"), "--config", config, "-d", "2",
            "--out", dir, "--name", "cls", "--threads", "2");
        Assert.True(compare.Code == 0, compare.Stderr);
        var sensitivity = QuantCheck("sensitivity", TestAssets.ClsModel, "--config", config, "-d", "2", "--out", dir, "--name", "cls", "--threads", "2");
        Assert.True(sensitivity.Code == 0, sensitivity.Stderr);
        // tune: an SQNR int8 cls does not reach (its cosine is already 1), so the search visits several points (the Pareto chart's input);
        // met (exit 0) or not (exit 1, QB8026), it writes its report.
        var tuneConfig = Path.Combine(dir, "cls.tune.yaml");
        File.WriteAllText(tuneConfig, File.ReadAllText(config).TrimEnd() + "\n" +
            "tune:\n  targets:\n    softmax:\n      output: \"*\"\n      sqnr: {min: 1000}\n");
        var tune = QuantCheck("tune", TestAssets.ClsModel, "--config", tuneConfig, "--out", dir, "--name", "cls", "--candidates", "int16",
            "--budget", "15s", "--threads", "2");
        Assert.True(tune.Code is 0 or 1 && File.Exists(Path.Combine(dir, "cls.tune.json")), tune.Stdout + tune.Stderr);
        using var report = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "cls.tune.json")));
        Assert.True(report.RootElement.GetProperty("visited").GetArrayLength() >= 2, "the tuning chart needs more than the baseline");
    }
}
