using Quant.Core.Checks;
using Quant.Engine;

namespace Quant.Core.Tests.Checks;

/// <summary>compiled_vs_quantized's comparison: bytes decide, the numbers only say how far apart they are.</summary>
public class BitExactnessTests
{
    private static Dictionary<string, Tensor> Outputs(params (string Name, Tensor Value)[] outputs) => outputs.ToDictionary(o => o.Name, o => o.Value);

    [Fact]
    public void Counts_differing_elements_per_output_with_the_largest_difference_and_the_first_place()
    {
        var e = new BitExactness();
        e.Add(0, Outputs(("q", Tensor.From(new sbyte[] { 1, 2, 3, 4 }, 4)), ("y", Tensor.From(new[] { 0.5f, 1f }, 2))),
                 Outputs(("q", Tensor.From(new sbyte[] { 1, 2, 3, 4 }, 4)), ("y", Tensor.From(new[] { 0.5f, 1f }, 2))));
        e.Add(1, Outputs(("q", Tensor.From(new sbyte[] { 1, 3, 3, -4 }, 4)), ("y", Tensor.From(new[] { 0.5f, 1f }, 2))),
                 Outputs(("q", Tensor.From(new sbyte[] { 1, 2, 3, 4 }, 4)), ("y", Tensor.From(new[] { 0.5f, 1f }, 2))));
        var q = e.Of("q");
        Assert.Equal((8L, 2L, 1, 2), (q.Elements, q.DifferingElements, q.DifferingSamples, q.Samples));
        Assert.Equal(8.0, q.MaxAbsDiff); // -4 against 4
        Assert.Equal((1, 1L), (q.First!.Value.Sample, q.First.Value.Element));
        Assert.Equal("compiled 3, quantized 2", q.First.Value.Detail);
        Assert.True(e.Of("y").Exact);
    }

    [Fact]
    public void A_sign_of_zero_differs_at_distance_zero_and_a_wrong_shape_is_infinitely_far()
    {
        var e = new BitExactness();
        e.Add(0, Outputs(("y", Tensor.From(new[] { -0f, 1f }, 2)), ("z", Tensor.From(new[] { 1f, 2f }, 1, 2))),
                 Outputs(("y", Tensor.From(new[] { 0f, 1f }, 2)), ("z", Tensor.From(new[] { 1f, 2f }, 2))));
        Assert.Equal((false, 1L, 0.0), (e.Of("y").Exact, e.Of("y").DifferingElements, e.Of("y").MaxAbsDiff));
        Assert.Equal((false, double.PositiveInfinity), (e.Of("z").Exact, e.Of("z").MaxAbsDiff));
        Assert.Contains("float[1,2] instead of float[2]", e.Of("z").First!.Value.Detail);
    }
}
