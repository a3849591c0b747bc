using Quant.Core.Conversion;
using Quant.Engine;
using Quant.Onnx;
using Xunit.Abstractions;
using static Quant.Core.Tests.Convert.Rules.RuleHarness;

namespace Quant.Core.Tests.Convert.Rules;

/// <summary>
/// Add, Sub, Mul and Div lowered by their rules against the qat-style graph run by the engine. Scales are those of
/// PaddleOCR rec/det performance exports (the HardSwish chain x·Clip(x+3, 0, 6)/6, the decomposed LayerNorm's Sub/Div,
/// SE-block Mul). int8 cases are exhaustive (every pair of input integers); spec §2.4 allows 1 LSB next to ties.
/// </summary>
public class ArithmeticRulesTests(ITestOutputHelper output)
{
    private static Node Binary(string op) => new($"p2o.{op}.0", op, "", ["x0", "x1"], ["f"]);

    /// <summary>Every (a, b) int8 pair: a along axis 0, b along axis 1 (or a constant b).</summary>
    private static DataInput[] Pairs(IntFormat a, IntFormat b, sbyte? constantB)
    {
        var qa = AllInt8(2, 0);
        return constantB is { } c
            ? [new DataInput(a, qa), new DataInput(b, Scalar8(c), Constant: true)]
            : [new DataInput(a, qa), new DataInput(b, AllInt8(2, 1))];
    }

    private void Check(string name, Node op, DataInput[] data, IntFormat[] outs, double maxShare)
    {
        var (results, island) = RuleHarness.Run(op, data, outs);
        Assert.Null(island);
        for (int k = 0; k < results.Count; k++)
        {
            var (max, share, count) = Compare(results[k].Qat, results[k].Ours);
            output.WriteLine($"{name} -> {outs[k]}: {count} elements, max |diff| {max}, 1-LSB share {share:E2}");
            Assert.True(max <= 1, $"{name}: {max} LSB apart");
            Assert.True(share <= maxShare, $"{name}: {share:E2} of the elements differ by 1 LSB (bound {maxShare:E0})");
            if (share > 0 && data.Length == 2 && data[0].Values.Length == 256 && data[0].Values.Type == ElementType.Int8)
                AssertOnlyNearTies(name, op.OpType, data, outs[k], results[k].Qat, results[k].Ours);
        }
    }

    /// <summary>
    /// For the exhaustive int8 pairs: every element that differs has an exact real result (double from the float32
    /// scales) within η of a rounding tie, the only place spec §2.4 allows a difference.
    /// </summary>
    private static void AssertOnlyNearTies(string name, string op, DataInput[] data, IntFormat y, Tensor qat, Tensor ours)
    {
        var (fa, fb) = (data[0].Format, data[1].Format);
        for (int i = 0; i < qat.Length; i++)
        {
            if (At(qat, i) == At(ours, i)) continue;
            int ia = data[1].Constant ? i : i / 256, ib = data[1].Constant ? 0 : i % 256;
            double a = ((double)At(data[0].Values, ia) - fa.ZeroPoint) * fa.Scale, b = ((double)At(data[1].Values, ib) - fb.ZeroPoint) * fb.Scale;
            double v = op switch { "Add" => a + b, "Sub" => a - b, "Mul" => a * b, _ => a / b } / y.Scale;
            double fromTie = Math.Abs(v - Math.Floor(v) - 0.5);
            // η of spec §2.4: 2^−15 plus the qat run's float32 error (a few roundings relative to the operands' size).
            double magnitude = op is "Add" or "Sub" ? (Math.Abs(a) + Math.Abs(b)) / y.Scale : Math.Abs(v);
            double eta = Math.ScaleB(1, -15) + 8 * Math.ScaleB(magnitude, -24);
            Assert.True(fromTie < eta, $"{name}: element {i} differs but its exact value {v} is {fromTie} LSB from a tie (η = {eta})");
        }
    }

    // name, op, s_a, s_b, constant b (or 128 = activation), s_y
    [Theory]
    [InlineData("rec HardSwish x+3", "Add", 0.13299489f, 0.023622047f, 127, 0.15661693f)]
    [InlineData("det HardSwish x+3", "Add", 0.52576166f, 0.023622047f, 127, 0.5493837f)]
    [InlineData("rec bias-like add", "Add", 0.022279141f, 2.7323173E-07f, 57, 0.022279417f)]
    [InlineData("residual add", "Add", 0.07154733f, 0.07281464f, 128, 0.10313f)]
    [InlineData("rec LayerNorm x-mean", "Sub", 0.07154733f, 0.0160051f, 128, 0.06464894f)]
    [InlineData("rec HardSwish x*clip", "Mul", 0.13299489f, 0.047244094f, 128, 0.7979693f)]
    [InlineData("det SE gate", "Mul", 0.52576166f, 0.007874016f, 128, 0.2504324f)]
    [InlineData("rec HardSwish /6", "Div", 0.7979693f, 0.047244094f, 127, 0.13299489f)]
    [InlineData("det HardSwish /6", "Div", 8.5908375f, 0.047244094f, 127, 1.4318063f)]
    [InlineData("rec LayerNorm /sqrt", "Div", 0.06464894f, 0.013347528f, 128, 0.05012f)]
    public void Int8_binary_ops_match_the_qat_node_within_one_LSB(string name, string op, float sa, float sb, int constantB, float sy)
    {
        var data = Pairs(I8(sa), I8(sb), constantB == 128 ? null : (sbyte)constantB);
        Check(name, Binary(op), data, [I8(sy)], 1e-3);
    }

    [Fact]
    public void Every_output_format_is_computed_from_the_inputs_and_zero_points_are_carried()
    {
        // Asymmetric inputs and two reader formats (int8 and int16) of one Add and one Mul.
        var data = Pairs(I8(0.0517342f, -7), I8(0.0312877f, 12), null);
        Check("asymmetric Add", Binary("Add"), data, [I8(0.0703311f, 3), I16(0.00031419f, -100)], 1e-3);
        Check("asymmetric Mul", Binary("Mul"), data, [I8(0.0913527f, -5), I16(0.00040771f)], 1e-3);
        Check("asymmetric Sub", Binary("Sub"), data, [I8(0.0611234f, 20)], 1e-3);
        Check("asymmetric Div", Binary("Div"), data, [I8(0.2039172f, 1)], 1e-3);
    }

    [Fact]
    public void Decimal_round_scales_make_exact_ties_common_and_only_those_flip()
    {
        // 0.05·a + 0.031·b = 0.07·(k + 1/2) has many solutions in exact decimals; in float32 they are near-ties that
        // the qat run's float rounding breaks either way. The differences must sit on those ties and nowhere else.
        Check("decimal-scale Add", Binary("Add"), Pairs(I8(0.05f, -7), I8(0.031f, 12), null), [I8(0.07f, 3)], 1e-2);
    }

    [Theory]
    [InlineData("Add")]
    [InlineData("Sub")]
    [InlineData("Mul")]
    public void Int16_binary_ops_match_the_qat_node_within_one_LSB(string op)
    {
        var rng = new Random(op.Length);
        var a = new DataInput(I16(0.00041f), RandomInts(rng, ElementType.Int16, [200, 250]));
        var b = new DataInput(I16(0.00027f, 5), RandomInts(rng, ElementType.Int16, [1, 250]));
        var y = op == "Mul" ? I16(0.00035f) : I16(0.0006f);
        // int16 outputs have ~9 float32 bits below their LSB, so the qat float rounding flips more ties (spec §2.4).
        Check($"int16 {op}", Binary(op), [a, b], [y, I8(op == "Mul" ? 0.1f : 0.08f)], 2e-2);
    }

    [Fact]
    public void Div_with_an_int16_input_stays_a_float_island()
    {
        var (_, island) = RuleHarness.Run(Binary("Div"),
            [new DataInput(I16(0.001f), Tensor.From(new short[] { 1 }, 1)), new DataInput(I8(0.1f), Scalar8(3))], [I8(0.1f)]);
        Assert.Equal("Div has no int16 rule on the target", island);
    }

    [Fact]
    public void A_float_input_makes_an_island()
    {
        var node = new Node("add", "Add", "", ["x0", "plain"], ["f"]);
        var request = new LoweringRequest(node, [new IntegerInput("q0", I8(0.1f)), null], [new IntegerOutput("y0", I8(0.1f))],
            _ => null, new GraphEmitter(new Graph()));
        Assert.Equal("input 1 ('plain') is float", RuleFor("Add").Lower(request));
    }

    [Fact]
    public void Add_parameters_share_one_exponent()
    {
        // M_a = s_a / s_y is the larger: A = m_big-like, B scaled by the same 2^n.
        var p = AddSubRule.Parameters(I8(0.13299489f), I8(0.023622047f), I8(0.15661693f))!.Value;
        double ma = 0.13299489f / (double)0.15661693f, mb = 0.023622047f / (double)0.15661693f;
        Assert.InRange(p.A, 1L << 30, (1L << 31) - 1);
        Assert.Equal(Math.Round(Math.ScaleB(ma, p.N), MidpointRounding.ToEven), p.A);
        Assert.Equal(Math.Round(Math.ScaleB(mb, p.N), MidpointRounding.ToEven), p.B);
        Assert.Null(AddSubRule.Parameters(I8(1f), I8(1f), I8(1e-12f)));
    }
}
