using System.IO.Compression;
using System.Text;
using Quant.Core.Checks;
using Quant.Core.Compilation;
using Quant.Core.Config;
using Quant.Core.Data;
using Quant.Core.Diagnostics;
using Quant.Engine;
using Quant.Onnx;
using Quant.Runtime;

namespace Quant.Fuzz;

/// <summary>
/// One loader under test: how a byte string reaches it (the same public entry point the toolchain uses), which
/// exceptions it documents (anything else escaping is a finding), how much it may allocate for an input, and the real
/// files its corpus starts from. Shared by the fuzz harness and the regression tests that replay tests/data/fuzz.
/// </summary>
public abstract class FuzzTarget
{
    public const long MiB = 1 << 20;

    /// <summary>The folder name under tests/data/fuzz and the name build/fuzz.sh takes.</summary>
    public abstract string Name { get; }

    /// <summary>Scratch folder: fixed side files (external data, configs) and the file each input is written to.</summary>
    protected string Work { get; private set; } = "";

    /// <summary>Creates the side files in <paramref name="work"/> (called once before any run).</summary>
    public void Prepare(string work)
    {
        Work = work;
        Directory.CreateDirectory(work);
        OnPrepare();
    }

    protected virtual void OnPrepare() { }

    /// <summary>Feeds one input to the loader; returns normally or throws.</summary>
    public abstract void Run(byte[] input);

    /// <summary>The error types the loader documents for a bad file.</summary>
    public abstract bool IsDocumented(Exception e);

    /// <summary>
    /// The most a run may allocate on its thread for an input of this size: a loader must refuse a header that claims
    /// more than the file can back before allocating for it, so the bound is proportional to the input (docs/limits.md).
    /// </summary>
    public virtual long AllocationBound(int inputLength) => 64 * MiB + 64L * inputLength;

    /// <summary>The real files the corpus starts from (repository files and files made from them in <see cref="Work"/>).</summary>
    public abstract IEnumerable<byte[]> Seeds(string repoRoot);

    /// <summary>Tokens the mutator inserts (keys, syntax).</summary>
    public virtual IReadOnlyList<byte[]> Tokens => [];

    /// <summary>Repairs what a mutation breaks that the loader checks first (a length field, a content hash), so mutations reach deeper.</summary>
    public virtual byte[] FixUp(byte[] input) => input;

    public static IReadOnlyList<FuzzTarget> All() =>
        [new OnnxTarget(), new ConfigTarget(), new NpyTarget(), new NpzTarget(), new RawTarget(), new ImageTarget(), new QbmTarget(),
         new BaselineTarget(), new PackageSpecTarget()];

    public static FuzzTarget Get(string name) =>
        All().FirstOrDefault(t => t.Name == name) ?? throw new ArgumentException($"unknown fuzz target '{name}' (known: {string.Join(", ", All().Select(t => t.Name))})");

    protected static byte[][] Utf8(params string[] s) => s.Select(Encoding.UTF8.GetBytes).ToArray();

    protected static IEnumerable<byte[]> Files(string dir, params string[] patterns) =>
        Directory.Exists(dir) ? patterns.SelectMany(p => Directory.GetFiles(dir, p)).Order(StringComparer.Ordinal).Select(File.ReadAllBytes) : [];
}

/// <summary>A tiny real model (Conv, Relu, Add, a Constant node) built in code: the ONNX and .qbm seeds.</summary>
internal static class TinyModel
{
    public static OnnxModel Build()
    {
        var g = new Graph { Name = "tiny" };
        g.Inputs.Add(new ValueInfo("x", ElementType.Float, [Dim.Known(1), Dim.Known(2), Dim.Known(5), Dim.Known(5)]));
        g.Outputs.Add(new ValueInfo("y", ElementType.Float, [Dim.Known(1), Dim.Known(3), Dim.Known(3), Dim.Known(3)]));
        g.Initializers["w"] = Floats("w", [3, 2, 3, 3], i => (i % 7 - 3) * 0.125f);
        g.Initializers["b"] = Floats("b", [3], i => i * 0.5f);
        g.Nodes.Add(new Node("conv", "Conv", "", ["x", "w", "b"], ["c"]));
        g.Nodes.Add(new Node("relu", "Relu", "", ["c"], ["r"]));
        var k = new Node("k", "Constant", "", [], ["kv"]);
        k.Attributes["value"] = new AttributeValue("value", AttributeKind.Tensor) { Tensor = Floats("kv", [1, 3, 1, 1], i => 1 + i) };
        g.Nodes.Add(k);
        g.Nodes.Add(new Node("add", "Add", "", ["r", "kv"], ["y"]));
        var m = new OnnxModel(g) { IrVersion = 8, ProducerName = "quant-fuzz" };
        m.Opsets[""] = 13;
        return m;
    }

    private static TensorData Floats(string name, long[] dims, Func<int, float> value)
    {
        int n = (int)dims.Aggregate(1L, (a, d) => a * d);
        var raw = new byte[n * 4];
        for (int i = 0; i < n; i++) BitConverter.TryWriteBytes(raw.AsSpan(i * 4), value(i));
        return new TensorData(name, ElementType.Float, dims, raw);
    }
}

/// <summary>ONNX protobuf (OnnxModelReader.Parse), with external data resolved in the work folder.</summary>
public sealed class OnnxTarget : FuzzTarget
{
    public override string Name => "onnx";

    protected override void OnPrepare()
    {
        // external.onnx's weights live in external.onnx.data next to it: mutated references read (or refuse) that file.
        OnnxModelWriter.Save(TinyModel.Build(), Path.Combine(Work, "external.onnx"), new OnnxWriteOptions { ExternalData = true, ExternalDataThreshold = 16 });
    }

    public override void Run(byte[] input) => OnnxModelReader.Parse(input, "fuzz.onnx", Work);

    public override bool IsDocumented(Exception e) => e is OnnxFormatException;

    public override IEnumerable<byte[]> Seeds(string repoRoot)
    {
        yield return File.ReadAllBytes(Path.Combine(Work, "external.onnx"));
        yield return OnnxModelWriter.ToBytes(TinyModel.Build());
        foreach (var f in new[] { "bad-qoperator.onnx", "ort-static.onnx", "bad-asymmetric-weight.onnx" })
            yield return File.ReadAllBytes(Path.Combine(repoRoot, "tests/data/foreign-qdq", f));
    }

    public override IReadOnlyList<byte[]> Tokens => Utf8("location", "offset", "length", "external.onnx.data", "../x", "/etc/passwd", "ai.onnx", "Conv", "If", "Loop");
}

/// <summary>The quantization config, yaml or json (QuantConfigLoader.Parse: YamlReader, the checks and image readers).</summary>
public sealed class ConfigTarget : FuzzTarget
{
    public override string Name => "config";

    public override void Run(byte[] input) => QuantConfigLoader.Parse(Encoding.UTF8.GetString(input), Path.Combine(Work, "fuzz.quant.yaml"));

    public override bool IsDocumented(Exception e) => e is QuantException;

    public override IEnumerable<byte[]> Seeds(string repoRoot)
    {
        yield return File.ReadAllBytes(Path.Combine(repoRoot, "samples/ppocr-cls/models/cls.quant.yaml"));
        // Every yaml example of the config reference: the documented keys with real values.
        foreach (var doc in new[] { "docs/config-reference.md", "docs/export.md", "docs/getting-started.md" })
        {
            var path = Path.Combine(repoRoot, doc);
            if (!File.Exists(path)) continue;
            var text = File.ReadAllText(path);
            foreach (var block in Blocks(text, "```yaml")) yield return Encoding.UTF8.GetBytes(block);
            foreach (var block in Blocks(text, "```json")) yield return Encoding.UTF8.GetBytes(block);
        }
        yield return Encoding.UTF8.GetBytes("""
            {"preset": "base", "inputs": {"x": {"data": ["calib/*.npy"], "mean": [0.5, 0.5, 0.5], "std": 0.5, "scale": "1/255"}},
             "calibration": {"samples": 8, "batch_size": 2},
             "model_config": {"activation": {"calibration_type": ["kl", "max"], "num_bin": 1024}, "weight": {"bias_correction": {"metric": "cosine"}}},
             "node_config": {"conv1": {"qtype": "int16", "input0": "ec"}},
             "checks": {"qat_vs_float": {"cosine": {"min": 0.99}}}}
            """);
    }

    private static IEnumerable<string> Blocks(string text, string fence)
    {
        int at = 0;
        while ((at = text.IndexOf(fence, at, StringComparison.Ordinal)) >= 0)
        {
            int start = text.IndexOf('\n', at) + 1;
            int end = text.IndexOf("```", start, StringComparison.Ordinal);
            if (start <= 0 || end < 0) yield break;
            yield return text[start..end];
            at = end + 3;
        }
    }

    public override IReadOnlyList<byte[]> Tokens => Utf8(
        "preset: ", "inputs:", "calibration:", "checks:", "quant_config:", "model_config:", "op_config:", "node_config:", "subgraph_config:",
        "activation:", "weight:", "calibration_type: ", "max_percentile: ", "per_channel: ", "asymmetric: ", "num_bin: ", "bias_correction:",
        "layerwise_search:", "qtype: ", "input0: ", "data: ", "dtype: ", "shape: ", "layout: ", "scale: ", "mean: ", "std: ", "channel_order: ",
        "color: ", "resize: ", "crop: ", "pad: ", "interpolation: ", "samples: ", "batch_size: ", "qat_vs_float:", "runtime_vs_qat:", "cosine:",
        "min: ", "baseline_tolerance: ", "&a ", "*a", "<<: ", "? ", "!!str ", "!!binary ", "---\n", "...\n", "{", "}", "[", "]", ", ", "- ",
        "\n  ", "\t", "'", "\"", "\\u0000", "|\n", ">\n", "#", "1e309", "-1", "2147483648", ".nan", "1/0", "%YAML 1.2\n", "%TAG ! tag:x,2000:\n");
}

/// <summary>.npy, the one reader (Npy.Read), from a seekable file and from a stream that cannot seek (an .npz entry).</summary>
public sealed class NpyTarget : FuzzTarget
{
    public override string Name => "npy";

    public override void Run(byte[] input)
    {
        // Both ways always run: a file the seekable read refuses (short data) is exactly what the forward-only read must also refuse cheaply.
        NpyFormatException? seekable = null;
        try { Npy.Read(new MemoryStream(input, writable: false), "fuzz.npy"); }
        catch (NpyFormatException e) { seekable = e; }
        Npy.Read(new ForwardOnlyStream(new MemoryStream(input, writable: false)), "fuzz.npz/x.npy");
        if (seekable is not null) throw seekable;
    }

    public override bool IsDocumented(Exception e) => e is NpyFormatException;

    public override IEnumerable<byte[]> Seeds(string repoRoot) => NpySeeds(repoRoot);

    internal static IEnumerable<byte[]> NpySeeds(string repoRoot)
    {
        foreach (var f in new[] { "cv2_photo_jpg_gray.npy", "cv2_photo_png.npy" }) yield return File.ReadAllBytes(Path.Combine(repoRoot, "tests/data/images", f));
        yield return File.ReadAllBytes(Path.Combine(repoRoot, "tests/data/opencv-resize/gray_23x31_linear.npy"));
        foreach (var (type, shape) in new (ElementType, int[])[] { (ElementType.Float, [1, 3, 2, 2]), (ElementType.Int64, [3]), (ElementType.Bool, [2, 2]), (ElementType.Float16, []) })
        {
            var ms = new MemoryStream();
            Npy.Write(ms, Tensor.Zeros(type, shape));
            yield return ms.ToArray();
        }
    }

    public override IReadOnlyList<byte[]> Tokens => Utf8("'descr': ", "'<f4'", "'|u1'", "'>f8'", "'fortran_order': ", "False", "True", "'shape': ",
        "(2147483647, 2147483647)", "(100000000,)", "()", "(,)", "-1", "L", "}", "{");
}

/// <summary>A stream that reads forward only, as an .npz entry's decompressing stream does.</summary>
public sealed class ForwardOnlyStream(Stream inner) : Stream
{
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>
/// Calibration samples as the export reads them (CalibrationDataSet: plan, then every batch) from one file of the
/// target's format written into the work folder; errors must be QB1xxx/QB2xxx QuantExceptions.
/// </summary>
public abstract class DataSetTarget : FuzzTarget
{
    private QuantConfig? _config;

    protected abstract string FileName { get; }
    protected abstract string InputYaml { get; }
    protected virtual ValueInfo ModelInput => new("x", ElementType.Float, null);

    protected override void OnPrepare()
    {
        Directory.CreateDirectory(Path.Combine(Work, "data"));
        _config = QuantConfigLoader.Parse($"inputs:\n  x:\n    data: data/{FileName}\n{InputYaml}", Path.Combine(Work, "fuzz.quant.yaml"));
    }

    public override void Run(byte[] input)
    {
        File.WriteAllBytes(Path.Combine(Work, "data", FileName), input);
        var set = CalibrationDataSet.Create(_config!, [ModelInput]);
        foreach (var _ in set.Batches()) { }
    }

    public override bool IsDocumented(Exception e) => e is QuantException;
}

/// <summary>.npz archives (zip of .npy), stored and deflated.</summary>
public sealed class NpzTarget : DataSetTarget
{
    public override string Name => "npz";
    protected override string FileName => "sample.npz";
    protected override string InputYaml => "";

    public override IEnumerable<byte[]> Seeds(string repoRoot)
    {
        var arrays = NpyTarget.NpySeeds(repoRoot).ToList();
        foreach (var level in new[] { CompressionLevel.NoCompression, CompressionLevel.Optimal })
            foreach (var (a, i) in arrays.Select((a, i) => (a, i)))
                yield return Zip(level, ("x.npy", a), i % 2 == 0 ? ("other.npy", arrays[0]) : null);
    }

    private static byte[] Zip(CompressionLevel level, params (string Name, byte[] Data)?[] entries)
    {
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var e in entries)
            {
                if (e is not { } entry) continue;
                var z = zip.CreateEntry(entry.Name, level);
                z.LastWriteTime = new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero);
                using var s = z.Open();
                s.Write(entry.Data);
            }
        return ms.ToArray();
    }

    public override IReadOnlyList<byte[]> Tokens => Utf8("x.npy", "PK\u0003\u0004", "PK\u0001\u0002", "PK\u0005\u0006", "'shape': (100000000,)");
}

/// <summary>Raw .bin samples with the config's dtype and shape.</summary>
public sealed class RawTarget : DataSetTarget
{
    public override string Name => "raw";
    protected override string FileName => "sample.bin";
    protected override string InputYaml => "    dtype: float32\n    shape: [1, 3, 4, 4]\n";

    public override IEnumerable<byte[]> Seeds(string repoRoot)
    {
        yield return new byte[1 * 3 * 4 * 4 * 4];
        yield return Enumerable.Range(0, 192).Select(i => (byte)i).ToArray();
    }
}

/// <summary>Image files (JPEG, PNG, BMP, WebP through SkiaSharp): every decoder failure must come out as our QB2004/QB2002.</summary>
public sealed class ImageTarget : DataSetTarget
{
    public override string Name => "image";
    protected override string FileName => "sample.png";
    protected override string InputYaml => "    color: bgr\n";

    /// <summary>
    /// An image header may claim up to ImageFiles.MaxPixels (50 M) pixels, which are decoded as RGBA (4 bytes each) and
    /// then kept as 3-byte BGR (twice with an EXIF rotation): the documented cap, not proportional to the file.
    /// </summary>
    public override long AllocationBound(int inputLength) => 50_000_000L * 10 + 64 * MiB + 64L * inputLength;

    public override IEnumerable<byte[]> Seeds(string repoRoot) =>
        Files(Path.Combine(repoRoot, "tests/data/images"), "*.png", "*.jpg", "*.bmp", "*.webp", "*.gif", "*.tiff");

    public override IReadOnlyList<byte[]> Tokens => [
        [0x89, (byte)'P', (byte)'N', (byte)'G'], Encoding.ASCII.GetBytes("IHDR"), Encoding.ASCII.GetBytes("IDAT"), Encoding.ASCII.GetBytes("PLTE"),
        Encoding.ASCII.GetBytes("IEND"), Encoding.ASCII.GetBytes("eXIf"), [0xFF, 0xD8, 0xFF], [0xFF, 0xC0], [0xFF, 0xE1], Encoding.ASCII.GetBytes("Exif\0\0MM\0*"),
        Encoding.ASCII.GetBytes("RIFF"), Encoding.ASCII.GetBytes("WEBPVP8 "), Encoding.ASCII.GetBytes("BM"), [0x00, 0x00, 0x7F, 0xFF]];
}

/// <summary>Compiled models (QbmModel.Load: reader, validator, session); the content hash and length are repaired after mutating.</summary>
public sealed class QbmTarget : FuzzTarget
{
    public override string Name => "qbm";

    protected override void OnPrepare()
    {
        var onnx = Path.Combine(Work, "tiny.onnx");
        OnnxModelWriter.Save(TinyModel.Build(), onnx);
        CompileStage.Run(onnx, Path.Combine(Work, "tiny.qbm"));
    }

    public override void Run(byte[] input) => QbmModel.Load(input, "fuzz.qbm", new QbmRunOptions { Threads = 1 });

    public override bool IsDocumented(Exception e) => e is QbmFormatException;

    public override IEnumerable<byte[]> Seeds(string repoRoot)
    {
        yield return File.ReadAllBytes(Path.Combine(Work, "tiny.qbm"));
    }

    public override byte[] FixUp(byte[] input)
    {
        if (input.Length >= QbmLayout.HeaderBytes)
        {
            BitConverter.TryWriteBytes(input.AsSpan(16), (ulong)input.LongLength);
            QbmWriter.Rehash(input);
        }
        return input;
    }
}

/// <summary>Committed baselines and check reports read as baselines (Baseline.Load).</summary>
public sealed class BaselineTarget : FuzzTarget
{
    public override string Name => "baseline";

    public override void Run(byte[] input)
    {
        var path = Path.Combine(Work, "fuzz.baseline.json");
        File.WriteAllBytes(path, input);
        Baseline.Load(path);
    }

    public override bool IsDocumented(Exception e) => e is QuantException;

    public override IEnumerable<byte[]> Seeds(string repoRoot)
    {
        var b = new Baseline();
        var s = b.Stage(CheckStagePair.QatVsFloat);
        s.Outputs["y"] = new SortedDictionary<string, double>(StringComparer.Ordinal) { ["cosine.min"] = 0.9991, ["sqnr.min"] = double.PositiveInfinity };
        s.Evaluators["accuracy"] = 0.97;
        b.Stage(CheckStagePair.RuntimeVsQat).Outputs["y"] = new SortedDictionary<string, double>(StringComparer.Ordinal) { ["l1.max"] = 0.5 };
        yield return Encoding.UTF8.GetBytes(b.Render());
        var metrics = string.Join(", ", CheckNames.Metrics.Select(m => $"\"{m.Name}\": {{\"min\": 0.5, \"avg\": 0.6, \"max\": 0.7}}"));
        yield return Encoding.UTF8.GetBytes(
            "{\"format\": \"quant-build-check/1\",\n" +
            " \"checks\": [{\"kind\": \"threshold\", \"stage\": \"qat_vs_float\", \"output\": \"y\", \"metric\": \"cosine\", \"over\": \"avg\", \"bound\": 0.9}],\n" +
            " \"metrics\": {\"qat_vs_float\": {\"outputs\": {\"y\": {" + metrics + "}}, \"evaluators\": {\"accuracy\": \"NaN\"}}}}\n");
    }

    public override IReadOnlyList<byte[]> Tokens => Utf8("\"format\"", "\"quant-build-baseline/1\"", "\"quant-build-check/1\"", "\"stages\"", "\"outputs\"",
        "\"evaluators\"", "\"metrics\"", "\"checks\"", "\"kind\"", "\"threshold\"", "\"stage\"", "\"output\"", "\"metric\"", "\"over\"", "\"qat_vs_float\"",
        "\"cosine.min\"", "\"Infinity\"", "\"NaN\"", "1e999", "-0", "{", "}", "[", "]", ":", ",", "null", "true", "\"\\ud800\"");
}

/// <summary>The <c>package:ID[@VERSION]</c> baseline spec a project file gives (PackageBaselineSpec.Parse; resolving needs a feed and is not fuzzed).</summary>
public sealed class PackageSpecTarget : FuzzTarget
{
    public override string Name => "package-spec";

    public override void Run(byte[] input) => PackageBaselineSpec.Parse(Encoding.UTF8.GetString(input), SourcePosition.InFile("fuzz.csproj"));

    public override bool IsDocumented(Exception e) => e is QuantException;

    public override IEnumerable<byte[]> Seeds(string repoRoot) =>
        Utf8("package:Contoso.Models.Ocr", "package:Contoso.Models.Ocr@1.2.0", "package:Contoso.Models.Ocr@[1.0,2.0)", "package:A@1.0.0-beta.1+build");

    public override IReadOnlyList<byte[]> Tokens => Utf8("package:", "@", ".", "-", "+", "[", "(", ",", " ", "9999999999");
}
