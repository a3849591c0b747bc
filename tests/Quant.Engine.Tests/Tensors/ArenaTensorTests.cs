using Quant.Onnx;

namespace Quant.Engine.Tests.Tensors;

public class ArenaTensorTests
{
    [Fact]
    public void An_arena_view_reads_and_writes_its_byte_range_through_spans_and_has_no_array()
    {
        var arena = new ArenaBuffer(256);
        arena.Bytes.AsSpan().Clear();
        Assert.Equal(0, (arena.Base + GetAddress(arena)) % 64);
        var t = new Tensor(ElementType.Float, [2, 3], arena.Bytes, arena.Base + 64, 6);
        t.Span<float>().Fill(1.5f);
        Assert.Equal(1.5f, BitConverter.ToSingle(arena.Bytes, arena.Base + 64 + 20));
        Assert.Equal(0, arena.Bytes[arena.Base + 64 + 24]); // the view ends after 6 floats
        Assert.True(t.IsArenaView);
        var e = Assert.Throws<InvalidOperationException>(() => t.Buffer);
        Assert.Contains("Span<T>()", e.Message);
        Assert.Throws<InvalidOperationException>(() => t.Span<int>());
        var copy = t.Clone();
        Assert.False(copy.IsArenaView);
        Assert.Equal(t.Span<float>().ToArray(), copy.Span<float>().ToArray());
    }

    private static unsafe long GetAddress(ArenaBuffer a)
    {
        fixed (byte* p = a.Bytes) return (long)p;
    }
}
