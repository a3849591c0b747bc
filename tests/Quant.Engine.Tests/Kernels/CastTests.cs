using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.ShapeKernelHarness;

namespace Quant.Engine.Tests.Kernels;

public class CastTests
{
    private static Tensor Cast(Tensor x, ElementType to, long opset = 13) => Run1("Cast", opset, [AttributeValue.Of("to", (long)to)], x);

    [Fact]
    public void Float_to_int_truncates_toward_zero_like_numpy()
    {
        var x = Tensor.From(new[] { 2.9f, -2.9f, 0.5f, -0.5f, 127.99f, -128.5f, 1e9f, -1e9f }, 8);
        Assert.Equal([2, -2, 0, 0, 127, -128, 1000000000, -1000000000], Cast(x, ElementType.Int32).Span<int>().ToArray());
        Assert.Equal([2L, -2, 0, 0, 127, -128, 1000000000, -1000000000], Cast(x, ElementType.Int64).Span<long>().ToArray());
        Assert.Equal(new sbyte[] { 2, -2, 0, 0, 127, -128, 0, 0 }, Cast(x, ElementType.Int8).Span<sbyte>().ToArray());
    }

    [Fact]
    public void Out_of_range_floats_give_the_x86_results_of_onnx_runtime()
    {
        var x = Tensor.From(new[] { 300f, -1f, float.NaN, 3e9f, -3e9f, float.PositiveInfinity, 70000f }, 7);
        // numpy: np.array([300,-1,nan,3e9,-3e9,inf,70000], np.float32).astype(...) on x86-64.
        Assert.Equal(new byte[] { 44, 255, 0, 0, 0, 0, 112 }, Cast(x, ElementType.UInt8).Span<byte>().ToArray());
        Assert.Equal([300, -1, int.MinValue, int.MinValue, int.MinValue, int.MinValue, 70000], Cast(x, ElementType.Int32).Span<int>().ToArray());
        Assert.Equal([300L, -1, long.MinValue, 3000000000, -3000000000, long.MinValue, 70000], Cast(x, ElementType.Int64).Span<long>().ToArray());
        Assert.Equal([300u, uint.MaxValue, 0, 3000000000, 1294967296, 0, 70000], Cast(x, ElementType.UInt32).Span<uint>().ToArray());
        Assert.Equal(new ushort[] { 300, 65535, 0, 0, 0, 0, 4464 }, Cast(x, ElementType.UInt16).Span<ushort>().ToArray());
        Assert.Equal([true, true, true, true, true, true, true], Cast(x, ElementType.Bool).Span<bool>().ToArray());
        Assert.Equal([300UL, ulong.MaxValue, 0x8000000000000000UL, 3000000000, unchecked((ulong)-3000000000L), 0x8000000000000000UL, 70000],
            Cast(x, ElementType.UInt64).Span<ulong>().ToArray());
    }

    [Fact]
    public void Integers_wrap_and_bool_is_nonzero()
    {
        var x = Tensor.From(new[] { 0L, 1L, -1L, 255L, 256L, 40000L, -40000L, long.MinValue, long.MaxValue }, 9);
        Assert.Equal([0, 1, -1, 255, 256, 40000, -40000, 0, -1], Cast(x, ElementType.Int32).Span<int>().ToArray());
        Assert.Equal(new byte[] { 0, 1, 255, 255, 0, 64, 192, 0, 255 }, Cast(x, ElementType.UInt8).Span<byte>().ToArray());
        Assert.Equal(new short[] { 0, 1, -1, 255, 256, -25536, 25536, 0, -1 }, Cast(x, ElementType.Int16).Span<short>().ToArray());
        Assert.Equal([false, true, true, true, true, true, true, true, true], Cast(x, ElementType.Bool).Span<bool>().ToArray());
        Assert.Equal([0f, 1f, -1f, 255f, 256f, 40000f, -40000f, -9.223372E+18f, 9.223372E+18f], Cast(x, ElementType.Float).Span<float>().ToArray());
        var u = Tensor.From(new[] { ulong.MaxValue, 1UL << 63 }, 2);
        Assert.Equal([1.8446744073709552E+19, 9.2233720368547758E+18], Cast(u, ElementType.Double).Span<double>().ToArray());
        Assert.Equal([-1L, long.MinValue], Cast(u, ElementType.Int64).Span<long>().ToArray());
        var b = Tensor.From(new[] { true, false }, 2);
        Assert.Equal([1f, 0f], Cast(b, ElementType.Float).Span<float>().ToArray());
        Assert.Equal([(Half)1, (Half)0], Cast(b, ElementType.Float16).Span<Half>().ToArray());
    }

    [Fact]
    public void Float_half_double_round_to_nearest_even_for_every_length()
    {
        var rng = new Random(17);
        for (int n = 0; n <= 67; n++)
        {
            var v = new float[n];
            for (int i = 0; i < n; i++) v[i] = (float)((rng.NextDouble() - 0.5) * Math.Pow(2, rng.Next(-30, 20)));
            if (n > 3) { v[0] = float.NaN; v[1] = 65520f; v[2] = -1e-8f; v[3] = 1.00048828125f; }
            var x = Tensor.From(v, n);
            var h = Cast(x, ElementType.Float16);
            Assert.Equal(v.Select(f => (Half)f).ToArray(), h.Span<Half>().ToArray());
            Assert.Equal(v.Select(f => (float)(Half)f).ToArray(), Cast(h, ElementType.Float).Span<float>().ToArray());
            var d = Cast(x, ElementType.Double);
            Assert.Equal(v.Select(f => (double)f).ToArray(), d.Span<double>().ToArray());
            Assert.Equal(v, Cast(d, ElementType.Float).Span<float>().ToArray());
            Assert.Equal(v.Select(f => (Half)(double)f).ToArray(), Cast(d, ElementType.Float16).Span<Half>().ToArray());
        }
    }

    [Fact]
    public void Bfloat16_rounds_to_nearest_even_and_widens_exactly()
    {
        // 0.81910545 = 0x3F51B0xx rounds up to 0x3F52; 1 + 2^-8 is a tie and rounds to even 0x3F80.
        var x = Tensor.From(new[] { 0.81910545f, 1.00390625f, 1.01171875f, -2f, float.PositiveInfinity, float.NaN }, 6);
        var b = Run1("Cast", 13, [AttributeValue.Of("to", (long)ElementType.BFloat16)], x);
        Assert.Equal(ElementType.BFloat16, b.Type);
        var bits = b.Span<ushort>().ToArray();
        Assert.Equal(new ushort[] { 0x3F52, 0x3F80, 0x3F82, 0xC000, 0x7F80 }, bits[..5]);
        Assert.True((bits[5] & 0x7F80) == 0x7F80 && (bits[5] & 0x7F) != 0, "NaN stays NaN");
        var back = Cast(b, ElementType.Float).Span<float>().ToArray();
        Assert.Equal([0.8203125f, 1f, 1.015625f, -2f, float.PositiveInfinity], back[..5]);
        Assert.True(float.IsNaN(back[5]));
    }

    [Fact]
    public void Strings_parse_and_print()
    {
        var s = Tensor.From(new[] { "3.14", " 1e-5", "1E8", "INF", "-inf", "+INF", "NaN", "-0" }, 8);
        var f = Cast(s, ElementType.Float).Span<float>().ToArray();
        Assert.Equal(3.14f, f[0]);
        Assert.Equal(1e-5f, f[1]);
        Assert.Equal(1e8f, f[2]);
        Assert.Equal(float.PositiveInfinity, f[3]);
        Assert.Equal(float.NegativeInfinity, f[4]);
        Assert.Equal(float.PositiveInfinity, f[5]);
        Assert.True(float.IsNaN(f[6]));
        var big = Tensor.From(new[] { "9007199254740993", "-5", "100.5" }, 3);
        Assert.Equal([9007199254740993L, -5, 100], Cast(big, ElementType.Int64).Span<long>().ToArray());

        var x = Tensor.From(new[] { 0.039187793f, 1e-5f, float.NegativeInfinity, float.NaN, 2f, -0.5f }, 6);
        Assert.Equal(["0.039187793", "1e-05", "-INF", "NaN", "2", "-0.5"], Cast(x, ElementType.String).Strings().ToArray());
        Assert.Equal(["9007199254740993"], Cast(Tensor.From(new[] { 9007199254740993L }, 1), ElementType.String).Strings().ToArray());
        var e = Assert.Throws<EngineException>(() => Cast(Tensor.From(new[] { "hello" }, 1), ElementType.Float));
        Assert.Contains("hello", e.Message);
    }

    [Fact]
    public void Opset1_type_name_and_castlike()
    {
        var x = Tensor.From(new[] { 1.5f, -2.5f }, 2);
        var y = Run1("Cast", 1, [AttributeValue.Of("to", "INT64")], x);
        Assert.Equal([1L, -2L], y.Span<long>().ToArray());
        var z = Run1("CastLike", 15, null, x, Tensor.From(new[] { (Half)0 }, 1));
        Assert.Equal([(Half)1.5f, (Half)(-2.5f)], z.Span<Half>().ToArray());
        var e = Assert.Throws<EngineException>(() => Run1("Cast", 13, [AttributeValue.Of("to", 14L)], x));
        Assert.Contains("complex", e.Message);
    }
}
