using System.Diagnostics;
using Google.Protobuf;
using Quant.Onnx.Proto;
using Quant.TestSupport;

namespace Quant.Onnx.Tests;

/// <summary>
/// Broken inputs must give an <see cref="OnnxFormatException"/> that names the file and the problem —
/// never another exception type, a hang, or a huge allocation.
/// </summary>
public class ReaderRobustnessTests
{
    private static OnnxFormatException LoadFails(string path)
    {
        var sw = Stopwatch.StartNew();
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Record.Exception(() => OnnxModelReader.Load(path));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), $"reading took {sw.Elapsed}");
        Assert.True(allocated < 200L << 20, $"reading allocated {allocated} bytes");
        var f = Assert.IsType<OnnxFormatException>(e);
        Assert.Contains(path, f.Message);
        return f;
    }

    private static string Write(string dir, string name, byte[] bytes)
    {
        var p = Path.Combine(dir, name);
        File.WriteAllBytes(p, bytes);
        return p;
    }

    [Fact]
    public void TruncatedRealModelsAreRefused()
    {
        var dir = TestAssets.TempDir("onnx-trunc");
        var bytes = File.ReadAllBytes(TestAssets.ClsModel);
        // Cut at the very start, inside the header, inside tensors and just before the end.
        var cuts = new[] { 1, 2, 7, 100, 1000, bytes.Length / 3, bytes.Length / 2, bytes.Length - 1000, bytes.Length - 10, bytes.Length - 1 };
        foreach (var cut in cuts)
        {
            var p = Write(dir, $"cut{cut}.onnx", bytes[..cut]);
            var e = LoadFails(p);
            Assert.Matches("truncated|not a valid|no graph|ir_version", e.Message);
        }
    }

    [Fact]
    public void RandomGarbageIsRefused()
    {
        var dir = TestAssets.TempDir("onnx-garbage");
        var rng = new Random(1234);
        foreach (var len in new[] { 1, 3, 16, 100, 4096, 100_000 })
        {
            for (int k = 0; k < 5; k++)
            {
                var b = new byte[len];
                rng.NextBytes(b);
                LoadFails(Write(dir, $"g{len}-{k}.onnx", b));
            }
        }
        LoadFails(Write(dir, "text.onnx", "this is not a model\n"u8.ToArray()));
    }

    [Fact]
    public void ZeroLengthFileIsRefused()
    {
        var dir = TestAssets.TempDir("onnx-empty");
        var e = LoadFails(Write(dir, "empty.onnx", []));
        Assert.Contains("no graph", e.Message);
    }

    [Fact]
    public void MissingFileAndFolderAreRefused()
    {
        var dir = TestAssets.TempDir("onnx-missing");
        Assert.Contains("not found", LoadFails(Path.Combine(dir, "nope.onnx")).Message);
        Assert.Contains("not found", LoadFails(dir).Message);
    }

    private static ModelProto ModelWith(TensorProto initializer)
    {
        var p = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = "g" } };
        p.OpsetImport.Add(new OperatorSetIdProto { Version = 13 });
        p.Graph.Initializer.Add(initializer);
        p.Graph.Output.Add(RoundTripTests.Vi(initializer.Name, initializer.DataType, null, null));
        return p;
    }

    [Theory]
    [InlineData(new long[] { 1L << 20 }, "holds 16 bytes")]           // large dims, a few raw bytes
    [InlineData(new long[] { 1L << 40 }, "more elements than a tensor")]
    [InlineData(new long[] { 1L << 31, 1L << 31, 1L << 31 }, "more elements than a tensor")] // product overflows long
    [InlineData(new long[] { long.MaxValue, 2 }, "more elements than a tensor")]
    [InlineData(new long[] { 1L << 28, 2 }, "more than 2 GiB")]       // fits in an array count but not in bytes
    [InlineData(new long[] { 3, -2 }, "negative dimension")]
    public void BadDimsWithLittleDataAreRefused(long[] dims, string expected)
    {
        var dir = TestAssets.TempDir("onnx-dims");
        var t = new TensorProto { Name = "w", DataType = 1, RawData = ByteString.CopyFrom(new byte[16]) };
        t.Dims.AddRange(dims);
        var e = LoadFails(Write(dir, "m.onnx", ModelWith(t).ToByteArray()));
        Assert.Contains(expected, e.Message);
        Assert.Contains("'w'", e.Message);
    }

    [Fact]
    public void HugeDimsOverTypedFieldsDoNotAllocate()
    {
        var dir = TestAssets.TempDir("onnx-typed");
        var t = new TensorProto { Name = "w", DataType = 1, Dims = { 1L << 28 } };
        t.FloatData.Add(1f);
        var e = LoadFails(Write(dir, "m.onnx", ModelWith(t).ToByteArray()));
        Assert.Contains("declares 268435456 elements but stores 1", e.Message);
        var s = new TensorProto { Name = "s", DataType = 8, Dims = { 1L << 28 } };
        s.StringData.Add(ByteString.CopyFromUtf8("x"));
        Assert.Contains("strings", LoadFails(Write(dir, "s.onnx", ModelWith(s).ToByteArray())).Message);
    }

    [Fact]
    public void UnknownElementTypeIsRefused()
    {
        var dir = TestAssets.TempDir("onnx-type");
        var t = new TensorProto { Name = "w", DataType = 999, Dims = { 2 }, RawData = ByteString.CopyFrom(new byte[8]) };
        Assert.Contains("element type 999", LoadFails(Write(dir, "m.onnx", ModelWith(t).ToByteArray())).Message);
    }

    private static TensorProto External(string location, long? offset, long? length, long elements = 4)
    {
        var t = new TensorProto { Name = "w", DataType = 1, Dims = { elements }, DataLocation = TensorProto.Types.DataLocation.External };
        t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        if (offset is { } o) t.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = o.ToString() });
        if (length is { } l) t.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = l.ToString() });
        return t;
    }

    [Fact]
    public void ExternalDataInsideTheFolderIsRead()
    {
        var dir = TestAssets.TempDir("onnx-ext-ok");
        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        var data = new byte[64];
        BitConverter.GetBytes(2.5f).CopyTo(data, 32);
        File.WriteAllBytes(Path.Combine(dir, "sub", "w.bin"), data);
        var model = OnnxModelReader.Load(Write(dir, "m.onnx", ModelWith(External("sub/w.bin", 32, 16)).ToByteArray()));
        Assert.Equal(2.5f, model.Graph.Initializers["w"].As<float>()[0]);
    }

    [Theory]
    [InlineData("../outside.bin")]
    [InlineData("sub/../../outside.bin")]
    [InlineData("/etc/passwd")]
    [InlineData("")]
    public void ExternalDataOutsideTheFolderIsRefused(string location)
    {
        var root = TestAssets.TempDir("onnx-ext-escape");
        var dir = Path.Combine(root, "model");
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(root, "outside.bin"), new byte[16]);
        var e = LoadFails(Write(dir, "m.onnx", ModelWith(External(location, 0, 16)).ToByteArray()));
        Assert.Matches("outside the model's folder|no 'location'", e.Message);
    }

    [Fact]
    public void SymlinksPointingOutOfTheFolderAreRefused()
    {
        var root = TestAssets.TempDir("onnx-ext-link");
        var dir = Path.Combine(root, "model");
        Directory.CreateDirectory(dir);
        var secretDir = Path.Combine(root, "secret");
        Directory.CreateDirectory(secretDir);
        File.WriteAllBytes(Path.Combine(secretDir, "s.bin"), new byte[16]);
        File.CreateSymbolicLink(Path.Combine(dir, "link.bin"), Path.Combine(secretDir, "s.bin"));
        Directory.CreateSymbolicLink(Path.Combine(dir, "linkdir"), secretDir);
        File.CreateSymbolicLink(Path.Combine(dir, "rel.bin"), "../secret/s.bin");

        foreach (var loc in new[] { "link.bin", "linkdir/s.bin", "rel.bin" })
            Assert.Contains("outside the model's folder", LoadFails(Write(dir, "m.onnx", ModelWith(External(loc, 0, 16)).ToByteArray())).Message);

        // A link that stays inside the folder is fine, and so is reaching the model folder itself through a link.
        File.WriteAllBytes(Path.Combine(dir, "real.bin"), new byte[16]);
        File.CreateSymbolicLink(Path.Combine(dir, "inside.bin"), "real.bin");
        OnnxModelReader.Load(Write(dir, "ok.onnx", ModelWith(External("inside.bin", 0, 16)).ToByteArray()));
        var viaLink = Path.Combine(root, "modellink");
        Directory.CreateSymbolicLink(viaLink, dir);
        OnnxModelReader.Load(Path.Combine(viaLink, "ok.onnx"));

        // A link loop must not hang.
        File.CreateSymbolicLink(Path.Combine(dir, "loopA"), "loopB");
        File.CreateSymbolicLink(Path.Combine(dir, "loopB"), "loopA");
        LoadFails(Write(dir, "loop.onnx", ModelWith(External("loopA", 0, 16)).ToByteArray()));
    }

    [Fact]
    public void MissingExternalFileIsRefused()
    {
        var dir = TestAssets.TempDir("onnx-ext-missing");
        var e = LoadFails(Write(dir, "m.onnx", ModelWith(External("weights.bin", 0, 16)).ToByteArray()));
        Assert.Contains("does not exist", e.Message);
        Assert.Contains("weights.bin", e.Message);
    }

    [Theory]
    [InlineData(0L, 16L, 8, "truncated")]                  // file shorter than the tensor
    [InlineData(100L, 16L, 64, "truncated")]               // offset past the end
    [InlineData(long.MaxValue - 4, 16L, 64, "truncated")]  // offset + length overflows
    [InlineData(0L, 12L, 64, "does not match")]            // length disagrees with dims
    [InlineData(-5L, 16L, 64, "not a non-negative")]       // negative offset
    public void ExternalRangeBeyondTheFileIsRefused(long offset, long length, int fileBytes, string expected)
    {
        var dir = TestAssets.TempDir("onnx-ext-range");
        File.WriteAllBytes(Path.Combine(dir, "w.bin"), new byte[fileBytes]);
        var e = LoadFails(Write(dir, "m.onnx", ModelWith(External("w.bin", offset, length)).ToByteArray()));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void HugeExternalTensorWithSmallFileDoesNotAllocate()
    {
        var dir = TestAssets.TempDir("onnx-ext-huge");
        File.WriteAllBytes(Path.Combine(dir, "w.bin"), new byte[64]);
        LoadFails(Write(dir, "m.onnx", ModelWith(External("w.bin", 0, null, elements: 1L << 28)).ToByteArray()));
    }

    [Fact]
    public void BadIrVersionIsRefused()
    {
        var dir = TestAssets.TempDir("onnx-ir");
        var p = ModelWith(new TensorProto { Name = "w", DataType = 1, Dims = { 1 }, RawData = ByteString.CopyFrom(new byte[4]) });
        p.IrVersion = 99;
        Assert.Contains("ir_version 99", LoadFails(Write(dir, "m.onnx", p.ToByteArray())).Message);
    }
}
