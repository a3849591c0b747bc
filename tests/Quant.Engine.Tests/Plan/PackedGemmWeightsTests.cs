using Quant.Engine.Kernels.Integer;

namespace Quant.Engine.Tests.Plan;

/// <summary>Stored packed weights come back as the kernels' own packing: same bytes, same int8 correction.</summary>
public class PackedGemmWeightsTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(27, 16)]
    [InlineData(36, 40)]
    [InlineData(5, 3)]
    public void Int8_weights_round_trip_through_the_stored_form_with_the_same_correction(int k, int n)
    {
        var random = new Random(k * 100 + n);
        var b = new sbyte[k * n];
        for (int i = 0; i < b.Length; i++) b[i] = (sbyte)random.Next(-128, 128);
        var packed = Int8Weights.Pack(b, k, n);
        var stored = packed.ToPacked();
        Assert.Equal(PackedLayout.Int8Vnni, stored.Layout);
        Assert.Equal(PackedGemmWeights.Bytes(PackedLayout.Int8Vnni, k, n), stored.Data.LongLength);
        var back = Int8Weights.FromPacked(stored);
        Assert.Equal(packed.Data, back.Data);
        Assert.Equal(packed.Correction, back.Correction);
        for (int col = 0; col < n; col++)
            Assert.Equal(Enumerable.Range(0, k).Sum(kk => (long)b[kk * n + col]), back.ColumnSums()[col]);
    }

    [Fact]
    public void Int16_weights_claimed_from_int8_must_be_within_int8_and_layouts_must_match()
    {
        var wide = Int16Weights.Pack(new short[] { 300, -2, 7, 1 }, 2, 2);
        var stored = wide.ToPacked();
        Assert.Equal(PackedLayout.Int16Vnni, stored.Layout);
        Assert.Equal(wide.Data, Int16Weights.FromPacked(stored).Data);
        var lying = new PackedGemmWeights(PackedLayout.Int16VnniFromInt8, 2, 2, stored.Data);
        Assert.Contains("outside int8", Assert.Throws<ArgumentException>(() => Int16Weights.FromPacked(lying)).Message);
        Assert.Throws<ArgumentException>(() => Int8Weights.FromPacked(stored));
        Assert.Throws<ArgumentException>(() => new PackedGemmWeights(PackedLayout.Int8Vnni, 2, 2, new byte[10]));
    }
}
