using System.Buffers.Binary;
using Quant.Engine;
using Quant.Onnx;
using Quant.Runtime;
using static Quant.Runtime.QbmLayout;

namespace Quant.Core.Tests.Compile;

/// <summary>
/// A compiled quantized model stores its integer GEMM weights in the kernels' packed layout: loading takes them as
/// they are (no kernel packs anything), the outputs stay bit-exact, and a packed entry that does not fit is QB7120.
/// </summary>
public class PackedWeightsTests(CompiledModels models) : IClassFixture<CompiledModels>
{
    [Theory]
    [InlineData("cls")]
    [InlineData("rec")]
    [InlineData("det")]
    public void A_compiled_quantized_model_runs_its_stored_packed_weights_bit_exactly_without_packing(string model)
    {
        var (qbm, _) = models.Compiled(model, "quantized");
        var feeds = new Dictionary<string, Tensor> { ["x"] = CompiledModels.Input(model) };
        var source = new InferenceSession(OnnxModelReader.Load(models.Quantized(model)));
        var expected = source.Run(feeds);
        Assert.True(source.WeightsPackedLazily > 0, "the quantized model's kernels pack their weights at run time");

        var compiled = QbmModel.Load(qbm);
        Assert.NotEmpty(compiled.File.PackedWeights);
        var actual = compiled.Run(feeds);
        Assert.Equal(0, compiled.WeightsPackedAtRun);
        foreach (var (name, e) in expected)
            Assert.True(e.Bytes().SequenceEqual(actual[name].Bytes()), $"{model}: output '{name}' differs from the quantized model's");
        // Every QConv/QMatMul/QGemm/QConvTranspose that runs a GEMM has its weights stored; the packed sizes are the layouts'.
        Assert.All(compiled.File.PackedWeights, p => Assert.Equal(PackedGemmWeights.Bytes(p.Weights.Layout, p.Weights.K, p.Weights.N), p.Weights.Data.LongLength));
        Assert.All(compiled.File.PackedWeights, p => Assert.Contains(compiled.File.Ops[p.Step].OpType, new[] { "QConv", "QMatMul", "QGemm", "QConvTranspose" }));
    }

    /// <summary>File offset of packed-weights entry <paramref name="i"/> (40 bytes each after the u32 count).</summary>
    private static int Entry(byte[] bytes, int i) =>
        (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(HeaderBytes + ((int)Section.PackedWeights - 1) * SectionEntryBytes + 8)) + 4 + 40 * i;

    private static QbmFormatException Rejects(byte[] bytes, string mentions)
    {
        QbmWriter.Rehash(bytes);
        var e = Assert.Throws<QbmFormatException>(() => QbmModel.Load(bytes, "bad.qbm"));
        Assert.True(e.Error == QbmError.BadPackedWeights, $"expected BadPackedWeights, got {e.Error}: {e.Message}");
        Assert.Equal("QB7120", e.CodeText);
        Assert.StartsWith("bad.qbm: ", e.Message);
        Assert.Contains(mentions, e.Message);
        return e;
    }

    [Fact]
    public void A_packed_entry_whose_size_or_shape_does_not_fit_is_QB7120()
    {
        var (qbm, _) = models.Compiled("cls", "quantized");
        var good = File.ReadAllBytes(qbm);
        var first = QbmModel.Load(good, "good.qbm").File.PackedWeights[0];
        int entry = Entry(good, 0);
        // Entry: u32 step, u32 slot, u32 group, u8 layout, u8, u16, u32 K, u32 N, u64 offset, u64 length.
        Assert.Equal((uint)first.Step, BinaryPrimitives.ReadUInt32LittleEndian(good.AsSpan(entry)));
        Assert.Equal((ulong)first.Weights.Data.Length, BinaryPrimitives.ReadUInt64LittleEndian(good.AsSpan(entry + 32)));

        var bytes = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(entry + 32), (ulong)first.Weights.Data.Length - 64);
        Rejects(bytes, $"which takes {first.Weights.Data.Length} bytes, but the entry says {first.Weights.Data.Length - 64}");

        bytes = (byte[])good.Clone();
        bytes[entry + 12] = 9; // layout
        Rejects(bytes, "layout 9, which this runtime does not know");

        // A size that fits its own K × N but not the op (N − 1 packs into as many 16-column blocks): the kernel's check
        // at load names the node and both shapes.
        var all = QbmModel.Load(good, "good.qbm").File.PackedWeights;
        int i = Enumerable.Range(0, all.Count).First(k => all[k].Weights.N > 1 && all[k].Weights.N % 16 != 1);
        var w = all[i].Weights;
        bytes = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(Entry(bytes, i) + 20), (uint)w.N - 1);
        Rejects(bytes, $"are [{w.K}, {w.N - 1}], the node needs [{w.K}, {w.N}]");

        bytes = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(entry + 24), 1UL << 40);
        Rejects(bytes, "of ConstantData");

        bytes = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(entry + 8), 1); // group 1 before group 0
        Rejects(bytes, "expected group 0");
    }

    [Fact]
    public void Packed_weights_for_an_op_without_such_weights_are_QB7120()
    {
        var (qbm, _) = models.Compiled("cls", "quantized");
        var bytes = File.ReadAllBytes(qbm);
        var file = QbmModel.Load(bytes, "good.qbm").File;
        int other = Enumerable.Range(0, file.Ops.Count).First(s => file.Ops[s].OpType is not ("QConv" or "QMatMul" or "QGemm" or "QConvTranspose"));
        // Move a one-group entry to an op whose kernel packs nothing (its own op then packs lazily, which is allowed).
        var p = file.PackedWeights;
        int single = Enumerable.Range(0, p.Count).First(i => p.Count(q => q.Step == p[i].Step && q.Slot == p[i].Slot) == 1);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(Entry(bytes, single)), (uint)other);
        Rejects(bytes, "whose kernel has no such weights");
    }
}
