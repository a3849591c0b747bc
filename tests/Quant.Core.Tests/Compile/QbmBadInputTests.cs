using System.Buffers.Binary;
using Quant.Core.Compilation;
using Quant.Runtime;
using Quant.TestSupport;
using static Quant.Runtime.QbmLayout;

namespace Quant.Core.Tests.Compile;

/// <summary>The real cls model compiled once; every test damages a copy of its bytes.</summary>
public sealed class ClsQbm
{
    public byte[] Bytes { get; }
    public string Path { get; }

    public ClsQbm()
    {
        Path = System.IO.Path.Combine(TestAssets.TempDir("qbm-bad"), "cls.qbm");
        CompileStage.Run(TestAssets.ClsModel, Path);
        Bytes = File.ReadAllBytes(Path);
    }

    public byte[] Copy() => (byte[])Bytes.Clone();

    /// <summary>File offset of op 0's record (after the opset list and the op count).</summary>
    public int FirstOp()
    {
        long program = SectionStart(Section.Program);
        int opsets = (int)BinaryPrimitives.ReadUInt32LittleEndian(Bytes.AsSpan((int)program));
        return (int)program + 4 + 12 * opsets + 4;
    }

    /// <summary>File offset where section <paramref name="s"/> starts.</summary>
    public long SectionStart(Section s) => (long)BinaryPrimitives.ReadUInt64LittleEndian(Bytes.AsSpan(HeaderBytes + ((int)s - 1) * SectionEntryBytes + 8));
}

public class QbmBadInputTests(ClsQbm cls) : IClassFixture<ClsQbm>
{
    private static QbmFormatException Rejects(byte[] bytes, QbmError expected, string? mentions = null)
    {
        var e = Assert.Throws<QbmFormatException>(() => QbmModel.Load(bytes, "bad.qbm"));
        Assert.True(expected == e.Error, $"expected {expected}, got {e.Error}: {e.Message}");
        Assert.StartsWith("bad.qbm: ", e.Message);
        Assert.Equal((int)expected, e.Code);
        if (mentions is not null) Assert.Contains(mentions, e.Message);
        return e;
    }

    [Fact]
    public void The_unchanged_file_loads()
    {
        var model = QbmModel.Load(cls.Copy(), "cls.qbm");
        Assert.Equal(["x"], model.InputNames);
    }

    [Fact]
    public void A_truncated_file_is_rejected_at_every_cut()
    {
        var cuts = Enumerable.Range(0, 300).Concat(Enumerable.Range(1, 199).Select(i => (int)((long)cls.Bytes.Length * i / 200)))
            .Append(cls.Bytes.Length - 1).Distinct();
        foreach (int cut in cuts)
        {
            var e = Assert.Throws<QbmFormatException>(() => QbmModel.Load(cls.Bytes.AsSpan(0, cut).ToArray(), "bad.qbm"));
            Assert.True(e.Error == QbmError.Truncated, $"cut at {cut}: {e.Error}: {e.Message}");
            Assert.Contains("truncated", e.Message);
        }
    }

    [Fact]
    public void A_flipped_byte_is_rejected_wherever_it_is()
    {
        var positions = Enumerable.Range(0, 400).Concat(Enumerable.Range(0, 400).Select(i => (int)((long)cls.Bytes.Length * i / 400)))
            .Append(cls.Bytes.Length - 1).Distinct();
        foreach (int at in positions)
        {
            var bytes = cls.Copy();
            bytes[at] ^= 0x20;
            var expected = at switch
            {
                < 8 => QbmError.NotAQbm,
                < 12 => QbmError.UnsupportedVersion,
                < 16 => QbmError.BadSectionTable,
                < 24 => QbmError.Truncated,
                < 56 => QbmError.HashMismatch,
                < 64 => QbmError.BadSectionTable,
                _ => QbmError.HashMismatch,
            };
            var e = Assert.Throws<QbmFormatException>(() => QbmModel.Load(bytes, "bad.qbm"));
            Assert.True(expected == e.Error, $"flip at {at}: expected {expected}, got {e.Error}: {e.Message}");
        }
    }

    [Fact]
    public void Wrong_magic_and_wrong_version_are_named()
    {
        var notQbm = cls.Copy();
        notQbm[1] = (byte)'X';
        Rejects(notQbm, QbmError.NotAQbm, "not a .qbm file");
        Rejects("hello, I am a text file with more than two hundred and fifty-six characters ............................................................................................................................................................................"u8.ToArray(), QbmError.NotAQbm);

        // Version 1 (a roofline cost section) is refused as any other version: its Cost section is laid out differently.
        var v1 = cls.Copy();
        BinaryPrimitives.WriteUInt32LittleEndian(v1.AsSpan(8), 1);
        Rejects(v1, QbmError.UnsupportedVersion, "format version 1; this runtime reads version 4");
        // Version 2 (weights not pre-packed, eight sections) is refused too: recompile.
        var v2 = cls.Copy();
        BinaryPrimitives.WriteUInt32LittleEndian(v2.AsSpan(8), 2);
        Rejects(v2, QbmError.UnsupportedVersion, "format version 2; this runtime reads version 4");
        // Version 3 (a QConv int8.channels_last packing this runtime no longer takes) is refused: recompile.
        var v3 = cls.Copy();
        BinaryPrimitives.WriteUInt32LittleEndian(v3.AsSpan(8), 3);
        Rejects(v3, QbmError.UnsupportedVersion, "format version 3; this runtime reads version 4");
    }

    [Fact]
    public void A_section_outside_the_file_is_caught_after_the_hash()
    {
        var bytes = cls.Copy();
        // The section table is covered by the hash, so re-hash: the bounds check must catch it on its own.
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(HeaderBytes + ((int)Section.Cost - 1) * SectionEntryBytes + 16), (ulong)bytes.Length);
        QbmWriter.Rehash(bytes);
        Rejects(bytes, QbmError.BadSectionTable, "section table entry 7");
    }

    [Fact]
    public void A_cost_family_out_of_range_or_a_negative_cost_constant_is_caught_after_the_hash()
    {
        long cost = cls.SectionStart(Section.Cost);
        int families = (int)BinaryPrimitives.ReadUInt32LittleEndian(cls.Bytes.AsSpan((int)cost));
        Assert.Equal(CostModel.Families.Count, families);
        // Family records: u32 name, u32 reserved, f64 a, b, c (32 bytes); then u32 op count and 40-byte op records
        // whose u32 at byte 12 is the family.
        int firstOp = (int)cost + 4 + 32 * families + 4;
        var bytes = cls.Copy();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(firstOp + 12), (uint)families);
        QbmWriter.Rehash(bytes);
        Rejects(bytes, QbmError.BadCost, $"op 0 cost family {families} is not one of the {families} families");

        bytes = cls.Copy();
        BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan((int)cost + 4 + 8), -1);
        QbmWriter.Rehash(bytes);
        Rejects(bytes, QbmError.BadCost, "constant 0 is -1; it must be finite and not negative");
    }

    [Fact]
    public void A_constant_pointing_outside_its_section_is_caught_after_the_hash()
    {
        var bytes = cls.Copy();
        long table = cls.SectionStart(Section.ConstantTable);
        // constant 0's offset (u32 count, then u32 value, u32 reserved, u64 offset, u64 length)
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan((int)table + 4 + 8), 1L << 40);
        QbmWriter.Rehash(bytes);
        Rejects(bytes, QbmError.BadConstant, "constant 0 spans bytes 1099511627776");

        bytes = cls.Copy();
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan((int)table + 4 + 8), 64 * 1000000);
        QbmWriter.Rehash(bytes);
        Rejects(bytes, QbmError.BadConstant, "of ConstantData");
    }

    [Fact]
    public void A_placement_outside_the_arena_is_caught_after_the_hash()
    {
        var bytes = cls.Copy();
        long plan = cls.SectionStart(Section.MemoryPlan);
        long arena = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan((int)plan));
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan((int)plan + 16 + 16), (ulong)arena);
        QbmWriter.Rehash(bytes);
        Rejects(bytes, QbmError.BadMemoryPlan, "outside the");
    }

    [Fact]
    public void Two_values_live_at_once_in_the_same_bytes_are_caught()
    {
        var file = QbmModel.Load(cls.Copy()).File;
        var placements = file.MemoryPlan.Placements;
        // Two values that are live in the same step but placed apart: move the second onto the first.
        var (a, b) = (from x in placements from y in placements
                      where x.Value < y.Value && x.Bytes > 0 && y.Bytes > 0 && Liveness.Overlap((x.FirstStep, x.LastStep), (y.FirstStep, y.LastStep))
                            && x.Offset + y.Bytes <= file.MemoryPlan.ArenaBytes
                      select (x, y)).First();
        var bytes = cls.Copy();
        int index = placements.ToList().IndexOf(b);
        long plan = cls.SectionStart(Section.MemoryPlan);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan((int)plan + 16 + index * 32 + 16), (ulong)a.Offset);
        QbmWriter.Rehash(bytes);
        Rejects(bytes, QbmError.MemoryPlanOverlap, "while both are live");
    }

    [Fact]
    public void A_placement_whose_lifetime_disagrees_with_the_program_is_caught()
    {
        var bytes = cls.Copy();
        long plan = cls.SectionStart(Section.MemoryPlan);
        uint last = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan((int)plan + 16 + 8));
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan((int)plan + 16 + 8), last + 1);
        QbmWriter.Rehash(bytes);
        Rejects(bytes, QbmError.BadMemoryPlan, "the program makes it live in");
    }

    [Fact]
    public void A_value_id_out_of_range_is_caught()
    {
        var bytes = cls.Copy();
        int op0 = cls.FirstOp();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(op0 + 20), 123456);
        QbmWriter.Rehash(bytes);
        Rejects(bytes, QbmError.BadValueReference, "refers to value 123456");
    }

    [Fact]
    public void A_bad_attribute_encoding_is_caught()
    {
        var bytes = cls.Copy();
        int op0 = cls.FirstOp();
        int inputs = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(op0 + 12));
        int outputs = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(op0 + 14));
        Assert.True(BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(op0 + 16)) > 0);
        bytes[op0 + 20 + 4 * (inputs + outputs) + 4] = 42; // the first attribute's kind
        QbmWriter.Rehash(bytes);
        Rejects(bytes, QbmError.BadAttribute, "has kind 42");
    }

    [Fact]
    public void Lying_counts_and_lengths_fail_before_allocating()
    {
        foreach (var (section, at) in new[] { (Section.Values, 0), (Section.Strings, 0), (Section.ConstantTable, 0), (Section.Program, 0), (Section.Strings, 4) })
        {
            var bytes = cls.Copy();
            long start = cls.SectionStart(section);
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan((int)start + at), 0xFFFFFFF0);
            QbmWriter.Rehash(bytes);
            long before = GC.GetAllocatedBytesForCurrentThread();
            var e = Rejects(bytes, QbmError.SectionOverrun, $"section {section}");
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated < 4L * bytes.Length, $"{section}: {allocated} bytes allocated to reject a {bytes.Length}-byte file: {e.Message}");
        }
    }

    [Fact]
    public void Random_damage_behind_a_valid_hash_gives_a_format_error_or_a_loadable_model_never_another_exception()
    {
        var random = new Random(9);
        var failures = new List<string>();
        for (int round = 0; round < 150; round++)
        {
            var bytes = cls.Copy();
            // Damage the structured sections (everything but the bulk of the constant bytes).
            long dataStart = cls.SectionStart(Section.ConstantData), dataEnd = cls.SectionStart(Section.MemoryPlan);
            int at;
            do at = random.Next(HeaderBytes, bytes.Length); while (at >= dataStart && at < dataEnd);
            bytes[at] ^= (byte)(1 << random.Next(8));
            QbmWriter.Rehash(bytes);
            try { QbmModel.Load(bytes, "bad.qbm"); }
            catch (QbmFormatException) { }
            catch (Exception e) { failures.Add($"byte {at}: {e.GetType().Name}: {e.Message}"); }
        }
        Assert.Empty(failures);
    }
}
