using System.Globalization;
using System.Text.Json;
using PaddleOcr;
using Quant.Engine;

// The PP-OCR rec evaluator: reads an evaluator folder (QUANT_OUTPUTS: index.json + NNNN/OUTPUT.npy, written by
// quant-check check/tune), decodes each line's [1,T,C] probabilities greedily (CTC) and compares with labels.tsv
// (file<TAB>text, matched by the sample's file name). Prints {"line_accuracy": x, "char_accuracy": y, "samples": n}:
// line accuracy is the exact-match share with spaces ignored, character accuracy 1 - sum(edit distance) / sum(label
// length), as ppocr-rec/dev/README.md defines them.
// Usage: ppocr-rec-eval --labels LABELS.tsv [--keys ppocr_keys_v1.txt] [--output NAME] [OUTPUTS_DIR]
//        keys default: $QUANT_ASSETS/ocr-models/ppocr_keys_v1.txt; OUTPUTS_DIR default: $QUANT_OUTPUTS.
return Evaluator.Evaluate(args);

internal static class Evaluator
{
    public static int Evaluate(string[] args)
    {
        string? labels = null, keys = null, output = null, folder = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--labels" when i + 1 < args.Length: labels = args[++i]; break;
                case "--keys" when i + 1 < args.Length: keys = args[++i]; break;
                case "--output" when i + 1 < args.Length: output = args[++i]; break;
                default:
                    if (args[i].StartsWith("--", StringComparison.Ordinal) || folder is not null) return Usage($"unexpected argument '{args[i]}'");
                    folder = args[i];
                    break;
            }
        }
        folder ??= Environment.GetEnvironmentVariable("QUANT_OUTPUTS");
        if (folder is null) return Usage("no outputs folder: give one or set QUANT_OUTPUTS");
        if (labels is null) return Usage("--labels LABELS.tsv is required");
        keys ??= Environment.GetEnvironmentVariable("QUANT_ASSETS") is { } assets ? Path.Combine(assets, "ocr-models", "ppocr_keys_v1.txt") : null;
        if (keys is null) return Usage("--keys is required when QUANT_ASSETS is not set");
        foreach (var f in new[] { labels, keys, Path.Combine(folder, "index.json") })
            if (!File.Exists(f)) return Fail($"'{f}' does not exist");

        var keyList = File.ReadAllLines(keys);
        var truth = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in File.ReadAllLines(labels).Where(l => l.Length > 0))
        {
            var parts = line.Split('\t', 2);
            if (parts.Length != 2) return Fail($"{labels}: line '{line}' is not file<TAB>text");
            truth[parts[0]] = parts[1];
        }

        using var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "index.json")));
        int exact = 0, count = 0;
        long distance = 0, length = 0;
        foreach (var sample in index.RootElement.GetProperty("samples").EnumerateArray())
        {
            var source = sample.GetProperty("source").GetString() ?? "";
            if (!truth.TryGetValue(Path.GetFileName(source), out var label)) return Fail($"{labels} has no label for '{Path.GetFileName(source)}'");
            var outputs = sample.GetProperty("outputs");
            var file = output is null
                ? outputs.EnumerateObject().FirstOrDefault().Value.GetString()
                : outputs.TryGetProperty(output, out var o) ? o.GetString() : null;
            if (file is null) return Fail($"sample '{source}' has no output{(output is null ? "" : $" '{output}'")}");
            var text = OcrText.CtcGreedy(Npy.Read(Path.Combine(folder, file)), keyList).Replace(" ", "");
            var want = label.Replace(" ", "");
            if (text == want) exact++;
            distance += OcrText.EditDistance(text, want);
            length += OcrText.Length(want);
            count++;
        }
        if (count == 0) return Fail("index.json lists no samples");
        double lineAccuracy = (double)exact / count, chars = length == 0 ? 1 : 1 - (double)distance / length;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{{\"line_accuracy\": {lineAccuracy:R}, \"char_accuracy\": {chars:R}, \"samples\": {count}}}"));
        return 0;
    }

    private static int Usage(string why)
    {
        Console.Error.WriteLine($"ppocr-rec-eval: {why}\nusage: ppocr-rec-eval --labels LABELS.tsv [--keys ppocr_keys_v1.txt] [--output NAME] [OUTPUTS_DIR]");
        return 2;
    }

    private static int Fail(string why)
    {
        Console.Error.WriteLine($"ppocr-rec-eval: error: {why}");
        return 1;
    }
}
