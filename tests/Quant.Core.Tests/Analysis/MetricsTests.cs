using Quant.Core.Analysis;
using Quant.Engine;

namespace Quant.Core.Tests.Analysis;

public class MetricsTests
{
    [Fact]
    public void Metrics_follow_their_definitions_on_a_worked_example()
    {
        // reference b = [3, 4], actual a = [3, 5]: differences [0, 1].
        var s = Similarity.Of(Tensor.From(new float[] { 3, 5 }, 2), Tensor.From(new float[] { 3, 4 }, 2));
        Assert.Equal((9 + 20) / (Math.Sqrt(34) * 5), s.Cosine, 12);
        Assert.Equal(0.5, s.L1, 12);
        Assert.Equal(Math.Sqrt(0.5), s.L2, 12);
        Assert.Equal(1, s.Chebyshev, 12);
        Assert.Equal(0.5, s.Mse, 12);
        Assert.Equal(1.0 / 7, s.Mre, 12);
        Assert.Equal(10 * Math.Log10(25.0 / 1), s.Sqnr, 9);
    }

    [Fact]
    public void Identical_and_zero_tensors_have_defined_values()
    {
        var z = Tensor.From(new float[] { 0, 0 }, 2);
        var same = Similarity.Of(z, z);
        Assert.Equal(1, same.Cosine);
        Assert.Equal(double.PositiveInfinity, same.Sqnr);
        Assert.Equal(0, same.Mre);
        var one = Similarity.Of(Tensor.From(new float[] { 1, 0 }, 2), z);
        Assert.Equal(0, one.Cosine);
    }

    [Fact]
    public void Shape_mismatch_is_an_error()
    {
        Assert.Throws<ArgumentException>(() => Similarity.Of(Tensor.From(new float[3], 3), Tensor.From(new float[2], 2)));
    }
}
