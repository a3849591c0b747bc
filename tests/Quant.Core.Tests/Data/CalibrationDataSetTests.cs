using System.IO.Compression;
using Quant.Core.Config;
using Quant.Core.Data;
using Quant.Core.Diagnostics;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.CalibrationData;

public sealed class CalibrationDataSetTests : IDisposable
{
    private readonly string _dir = TestAssets.TempDir("calib-data");

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static readonly Lazy<ValueInfo[]> RecInputs = new(() => OnnxModelReader.Load(TestAssets.RecModel).Graph.RuntimeInputs.ToArray());
    private static readonly Lazy<ValueInfo[]> DetInputs = new(() => OnnxModelReader.Load(TestAssets.DetModel).Graph.RuntimeInputs.ToArray());
    private static readonly Lazy<ValueInfo[]> ClsInputs = new(() => OnnxModelReader.Load(TestAssets.ClsModel).Graph.RuntimeInputs.ToArray());

    /// <summary>A glob for a committed data folder, relative to the temp config folder (so it climbs with ..).</summary>
    private string DataGlob(string folder, string pattern = "*.npy") =>
        Path.GetRelativePath(_dir, TestAssets.Data(folder)).Replace('\\', '/') + "/" + pattern;

    private QuantConfig Config(string yaml)
    {
        var path = Path.Combine(_dir, "q.yaml");
        File.WriteAllText(path, yaml.ReplaceLineEndings("\n"));
        return QuantConfigLoader.Load(path);
    }

    private static void Exact(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.Type, actual.Type);
        Assert.True(expected.Shape.SequenceEqual(actual.Shape), $"{what}: shape [{string.Join(",", actual.Shape)}] != [{string.Join(",", expected.Shape)}]");
        Assert.True(expected.ReadOnlySpan<float>().SequenceEqual(actual.ReadOnlySpan<float>()), $"{what}: values differ");
    }

    private static QuantException Fails(Action a, ErrorCode code, int line, int column, params string[] fragments)
        => PositionedError.Expect(a, code, line, column, fragments);

    private string RecYaml(string extra = "", string? glob = null) => $"""
        inputs:
          x:
            data: "{glob ?? DataGlob("ppocr-rec")}"
            dtype: uint8
            scale: 1/255
            mean: 0.5
            std: 0.5
        {extra}
        """;

    [Fact]
    public void RecSamplesEqualTheReadmePreprocessing()
    {
        var set = CalibrationDataSet.Create(Config(RecYaml()), RecInputs.Value);
        Assert.Equal(["x"], set.InputNames);
        Assert.Equal(4, set.SampleCount);
        Assert.Equal(OcrSamples.RecFiles.Select(f => Path.GetFullPath(TestAssets.Data("ppocr-rec", f))), set.Files);
        var batches = set.Batches().ToList();
        Assert.Equal(4, batches.Count);
        for (int i = 0; i < 4; i++) Exact(OcrSamples.Rec(OcrSamples.RecFiles[i]), batches[i]["x"], OcrSamples.RecFiles[i]);
        Assert.Equal("calib_0002.npy", Path.GetFileName(set.SampleLabel(2)));
    }

    [Fact]
    public void BatchesConcatenateSamplesAndTheSampleLimitApplies()
    {
        var set = CalibrationDataSet.Create(Config(RecYaml("calibration: {samples: 3, batch_size: 2}")), RecInputs.Value);
        Assert.Equal(3, set.SampleCount);
        Assert.Equal([[0, 1], [2]], set.BatchSamples.Select(b => b.ToArray()));
        Assert.Equal(3, set.Files.Count);
        var batches = set.Batches().ToList();
        var r = OcrSamples.RecFiles.Select(OcrSamples.Rec).ToArray();
        Exact(OcrSamples.Batch(r[0], r[1]), batches[0]["x"], "batch 0");
        Exact(r[2], batches[1]["x"], "batch 1");
        var samples = set.Samples().ToList();
        Assert.Equal(3, samples.Count);
        Exact(r[1], samples[1]["x"], "sample 1");
    }

    [Fact]
    public void DetSamplesUsePerChannelMeanAndStd()
    {
        var set = CalibrationDataSet.Create(Config($"""
            inputs:
              x: {"{"}data: "{DataGlob("ppocr-det")}", scale: 1/255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]{"}"}
            calibration: {"{"}batch_size: 2{"}"}
            """), DetInputs.Value);
        var batch = Assert.Single(set.Batches());
        Exact(OcrSamples.Batch(OcrSamples.DetFiles.Select(f => OcrSamples.Det(f)).ToArray()), batch["x"], "det batch");
    }

    [Fact]
    public void ClsSamplesWithDecimalScaleAreClose()
    {
        // 0.00392157 is not 1/255 exactly: the result is within float rounding of the README's x / 255.
        var set = CalibrationDataSet.Create(Config($"""
            inputs:
              x: {"{"}data: "{DataGlob("ppocr-cls")}", scale: 0.00392157, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]{"}"}
            """), ClsInputs.Value);
        var batches = set.Batches().ToList();
        Assert.Equal(4, batches.Count);
        for (int i = 0; i < 4; i++) TensorAssert.Close(OcrSamples.Cls(OcrSamples.ClsFiles[i]), batches[i]["x"], 0, 2e-6, OcrSamples.ClsFiles[i]);
    }

    [Fact]
    public void SamplesOfDifferentSizesAreBatchedOnlyWithEqualShapes()
    {
        // Real det content at two sizes, interleaved: a 640x640, b 320x640 crop, c 640x640, d 320x640 crop.
        var full = Npy.Read(TestAssets.Data("ppocr-det", OcrSamples.DetFiles[0]));
        Npy.Write(Path.Combine(_dir, "a.npy"), full);
        Npy.Write(Path.Combine(_dir, "b.npy"), CropU8(full, 320));
        Npy.Write(Path.Combine(_dir, "c.npy"), Npy.Read(TestAssets.Data("ppocr-det", OcrSamples.DetFiles[1])));
        Npy.Write(Path.Combine(_dir, "d.npy"), CropU8(Npy.Read(TestAssets.Data("ppocr-det", OcrSamples.DetFiles[1])), 320));
        var set = CalibrationDataSet.Create(Config("""
            inputs:
              x: {data: "*.npy", scale: 1/255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
            calibration: {batch_size: 2}
            """), DetInputs.Value);
        Assert.Equal([[0, 2], [1, 3]], set.BatchSamples.Select(b => b.ToArray()));
        var batches = set.Batches().ToList();
        Exact(OcrSamples.Batch(OcrSamples.Det(OcrSamples.DetFiles[0]), OcrSamples.Det(OcrSamples.DetFiles[1])), batches[0]["x"], "640 batch");
        Exact(OcrSamples.Batch(OcrSamples.Det(OcrSamples.DetFiles[0], 320, 640), OcrSamples.Det(OcrSamples.DetFiles[1], 320, 640)), batches[1]["x"], "320 batch");
    }

    private static Tensor CropU8(Tensor u8, int height)
    {
        int c = u8.Shape[1], h = u8.Shape[2], w = u8.Shape[3];
        var dst = new byte[c * height * w];
        for (int ch = 0; ch < c; ch++)
            u8.ReadOnlySpan<byte>().Slice(ch * h * w, height * w).CopyTo(dst.AsSpan(ch * height * w));
        return Tensor.From(dst, 1, c, height, w);
    }

    [Fact]
    public void NhwcRgbDataIsReorderedAndTransposed()
    {
        // The rec samples rewritten as NHWC RGB without the batch axis: [48,320,3].
        foreach (var f in OcrSamples.RecFiles)
        {
            var bgr = Npy.Read(TestAssets.Data("ppocr-rec", f));
            int h = bgr.Shape[2], w = bgr.Shape[3];
            var src = bgr.ReadOnlySpan<byte>();
            var hwc = new byte[h * w * 3];
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int c = 0; c < 3; c++)
                        hwc[(y * w + x) * 3 + c] = src[((2 - c) * h + y) * w + x];
            Npy.Write(Path.Combine(_dir, f), Tensor.From(hwc, h, w, 3));
        }
        var set = CalibrationDataSet.Create(Config("""
            inputs:
              x: {data: "*.npy", layout: NHWC, channel_order: rgb_to_bgr, scale: 1/255, mean: 0.5, std: 0.5}
            """), RecInputs.Value);
        var batches = set.Batches().ToList();
        for (int i = 0; i < 4; i++) Exact(OcrSamples.Rec(OcrSamples.RecFiles[i]), batches[i]["x"], OcrSamples.RecFiles[i]);
    }

    [Fact]
    public void NpzArchivesAreReadByInputNameOrTheOnlyArray()
    {
        var raw = OcrSamples.RecFiles.Select(f => Npy.Read(TestAssets.Data("ppocr-rec", f))).ToArray();
        WriteNpz("s0.npz", CompressionLevel.Optimal, ("x", raw[0]), ("other", raw[3]));
        WriteNpz("s1.npz", CompressionLevel.NoCompression, ("arr_0", raw[1]));
        var set = CalibrationDataSet.Create(Config(RecYaml(glob: "*.npz")), RecInputs.Value);
        var batches = set.Batches().ToList();
        Exact(OcrSamples.Rec(OcrSamples.RecFiles[0]), batches[0]["x"], "named array");
        Exact(OcrSamples.Rec(OcrSamples.RecFiles[1]), batches[1]["x"], "only array");

        WriteNpz("s2.npz", CompressionLevel.Optimal, ("a", raw[0]), ("b", raw[1]));
        Fails(() => CalibrationDataSet.Create(Config(RecYaml(glob: "*.npz")), RecInputs.Value), ErrorCode.DataUnreadable, 3, 11,
            "s2.npz", "holds arrays a, b but none named 'x'");
    }

    private void WriteNpz(string name, CompressionLevel level, params (string Name, Tensor T)[] arrays)
    {
        using var zip = ZipFile.Open(Path.Combine(_dir, name), ZipArchiveMode.Create);
        foreach (var (n, t) in arrays)
        {
            using var s = zip.CreateEntry(n + ".npy", level).Open();
            Npy.Write(s, t);
        }
    }

    [Fact]
    public void RawBinFilesUseTheDeclaredDtypeAndShape()
    {
        foreach (var f in OcrSamples.RecFiles)
            File.WriteAllBytes(Path.Combine(_dir, Path.ChangeExtension(f, ".bin")), Npy.Read(TestAssets.Data("ppocr-rec", f)).Bytes().ToArray());
        var yaml = RecYaml(glob: "*.bin").Replace("    dtype: uint8", "    dtype: uint8\n    shape: [3, 48, 320]");
        var set = CalibrationDataSet.Create(Config(yaml), RecInputs.Value);
        var batches = set.Batches().ToList();
        for (int i = 0; i < 4; i++) Exact(OcrSamples.Rec(OcrSamples.RecFiles[i]), batches[i]["x"], OcrSamples.RecFiles[i]);

        File.WriteAllBytes(Path.Combine(_dir, "calib_0004.bin"), new byte[100]);
        Fails(() => CalibrationDataSet.Create(Config(yaml), RecInputs.Value), ErrorCode.DataShapeMismatch, 3, 11,
            "calib_0004.bin", "has 100 bytes but shape [3,48,320] of uint8 needs 46080");
        Fails(() => CalibrationDataSet.Create(Config(RecYaml(glob: "*.bin")), RecInputs.Value), ErrorCode.ConfigInvalidValue, 3, 11,
            "give inputs.x.dtype and inputs.x.shape");
    }

    [Fact]
    public void GlobMatchingNothingIsPositionedAtTheGlob()
    {
        var config = Config("""
            inputs:
              x:
                data: ["*.npy", "calib/none_*.npy"]
            """);
        File.WriteAllBytes(Path.Combine(_dir, "a.npy"), []);
        Fails(() => CalibrationDataSet.Create(config, RecInputs.Value), ErrorCode.DataGlobMatchesNothing, 3, 21,
            "inputs.x.data: 'calib/none_*.npy' matches no file");
    }

    [Fact]
    public void SampleShapeMismatchNamesFileExpectedAndActual()
    {
        // Det images fed to the rec model ([?,3,48,?]).
        var e = Fails(() => CalibrationDataSet.Create(Config(RecYaml(glob: DataGlob("ppocr-det"))), RecInputs.Value), ErrorCode.DataShapeMismatch, 3, 11,
            "000_imageTextN.npy' holds uint8 [1,3,640,640], which does not fit model input 'x' [", ",3,48,", "dim 2 is 640, expected 48");
        Assert.EndsWith("(3,11): error QB2002: " + e.Message, e.ToDiagnostic());
        // Rank mismatch.
        Npy.Write(Path.Combine(_dir, "flat.npy"), Tensor.From(new byte[48 * 320], 48 * 320));
        Fails(() => CalibrationDataSet.Create(Config(RecYaml(glob: "flat.npy")), RecInputs.Value), ErrorCode.DataShapeMismatch, 3, 11,
            "flat.npy' holds uint8 [15360]", "rank 1, expected 4");
    }

    [Fact]
    public void StoredTypeMustMatchTheDeclaredDtype()
    {
        var yaml = RecYaml().Replace("dtype: uint8", "dtype: float32");
        Fails(() => CalibrationDataSet.Create(Config(yaml), RecInputs.Value), ErrorCode.DataTypeMismatch, 3, 11,
            "calib_0000.npy' stores uint8 but inputs.x.dtype says float32");
    }

    [Fact]
    public void InputNamesAreCheckedAgainstTheModel()
    {
        Fails(() => CalibrationDataSet.Create(Config(RecYaml().Replace("  x:", "  xx:")), RecInputs.Value), ErrorCode.ConfigUnknownInput, 2, 3,
            "the model has no input 'xx'; did you mean 'x'?");
        var two = new[] { new ValueInfo("x", ElementType.Float, [Dim.Unknown, 3, 48, Dim.Unknown]), new ValueInfo("y", ElementType.Float, [1]) };
        Fails(() => CalibrationDataSet.Create(Config(RecYaml()), two), ErrorCode.ConfigMissingInput, 0, 0, "model input 'y'", "has no calibration data");
    }

    [Fact]
    public void FixedBatchModelInputsRejectLargerBatches()
    {
        var fixedBatch = new[] { new ValueInfo("x", ElementType.Float, [1, 3, 48, 320]) };
        Assert.Equal(4, CalibrationDataSet.Create(Config(RecYaml()), fixedBatch).BatchSamples.Count);
        Fails(() => CalibrationDataSet.Create(Config(RecYaml("calibration:\n  batch_size: 2")), fixedBatch), ErrorCode.DataShapeMismatch, 9, 15,
            "model input 'x' has a fixed batch of 1", "stacks to 2");
    }

    [Fact]
    public void NonFloatInputsPassThroughAndRejectPreprocessing()
    {
        var ids = new[] { new ValueInfo("ids", ElementType.Int64, [Dim.Named("batch"), 5]) };
        Npy.Write(Path.Combine(_dir, "ids.npy"), Tensor.From(new long[] { 1, 2, 3, 4, long.MaxValue }, 5));
        var set = CalibrationDataSet.Create(Config("inputs: {ids: {data: ids.npy}}"), ids);
        var t = Assert.Single(set.Batches())["ids"];
        Assert.Equal([1, 5], t.Shape);
        Assert.Equal([1L, 2, 3, 4, long.MaxValue], t.ReadOnlySpan<long>().ToArray());
        Fails(() => CalibrationDataSet.Create(Config("inputs: {ids: {data: ids.npy, scale: 2}}"), ids), ErrorCode.ConfigInvalidValue, 1, 38,
            "model input 'ids' is int64");
        Npy.Write(Path.Combine(_dir, "ids.npy"), Tensor.From(new int[] { 1, 2, 3, 4, 5 }, 5));
        Fails(() => CalibrationDataSet.Create(Config("inputs: {ids: {data: ids.npy}}"), ids), ErrorCode.DataTypeMismatch, 1, 22,
            "'ids.npy' stores int32 but model input 'ids' is int64");
    }

    [Fact]
    public void Float16InputsReceiveThePreprocessedValuesRounded()
    {
        var half = new[] { new ValueInfo("x", ElementType.Float16, [Dim.Unknown, 3, 48, Dim.Unknown]) };
        var t = CalibrationDataSet.Create(Config(RecYaml()), half).Batches().First()["x"];
        var expected = OcrSamples.Rec(OcrSamples.RecFiles[0]).ReadOnlySpan<float>().ToArray().Select(v => (Half)v).ToArray();
        Assert.Equal(expected, t.ReadOnlySpan<Half>().ToArray());
    }

    [Fact]
    public void MeanLengthMustMatchChannels()
    {
        var yaml = RecYaml().Replace("mean: 0.5", "mean: [0.5, 0.5]");
        Fails(() => CalibrationDataSet.Create(Config(yaml), RecInputs.Value), ErrorCode.ConfigInvalidValue, 6, 11,
            "inputs.x.mean has 2 values but 'calib_0000.npy' has 3 channels");
    }

    [Fact]
    public void FingerprintCoversFilesContentsAndPreprocessing()
    {
        foreach (var f in OcrSamples.RecFiles) File.Copy(TestAssets.Data("ppocr-rec", f), Path.Combine(_dir, f));
        string Print(string yaml) => CalibrationDataSet.Create(Config(yaml), RecInputs.Value).Fingerprint();
        var baseline = Print(RecYaml(glob: "*.npy"));
        Assert.Matches("^[0-9a-f]{64}$", baseline);
        Assert.Equal(baseline, Print(RecYaml(glob: "*.npy")));
        Assert.Equal(baseline, Print(RecYaml("calibration: {batch_size: 2}", "*.npy")));
        Assert.NotEqual(baseline, Print(RecYaml(glob: "*.npy").Replace("mean: 0.5", "mean: 0.25")));
        Assert.NotEqual(baseline, Print(RecYaml("calibration: {samples: 3}", "*.npy")));
        Assert.NotEqual(baseline, Print(RecYaml(glob: "*.npy").Replace("scale: 1/255", "scale: 0.00392157")));

        // The same bytes under another name, then one changed byte.
        File.Move(Path.Combine(_dir, "calib_0003.npy"), Path.Combine(_dir, "calib_0009.npy"));
        var renamed = Print(RecYaml(glob: "*.npy"));
        Assert.NotEqual(baseline, renamed);
        using (var fs = new FileStream(Path.Combine(_dir, "calib_0009.npy"), FileMode.Open)) { fs.Seek(-1, SeekOrigin.End); fs.WriteByte(7); }
        Assert.NotEqual(renamed, Print(RecYaml(glob: "*.npy")));
    }

    [Fact]
    public void FilesAreReadWhenBatchesAreEnumerated()
    {
        foreach (var f in OcrSamples.RecFiles) File.Copy(TestAssets.Data("ppocr-rec", f), Path.Combine(_dir, f));
        var set = CalibrationDataSet.Create(Config(RecYaml(glob: "*.npy")), RecInputs.Value);
        // Replace sample 3 after planning: the stream must see the new contents, so nothing was held in memory.
        File.Copy(TestAssets.Data("ppocr-rec", OcrSamples.RecFiles[0]), Path.Combine(_dir, OcrSamples.RecFiles[3]), overwrite: true);
        using var e = set.Batches().GetEnumerator();
        for (int i = 0; i < 4; i++) Assert.True(e.MoveNext());
        Exact(OcrSamples.Rec(OcrSamples.RecFiles[0]), e.Current["x"], "replaced sample");
    }
}
