using Quant.Core.Calibration;
using Quant.Core.Config;
using Quant.Core.Conversion;
using Quant.Core.DeploymentRuntime;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;
using Xunit.Abstractions;

namespace Quant.Core.Tests.Convert;

/// <summary>
/// The §9 lookup tables against the qat model they replace: a hand-built x → Q → DQ → op → Q → DQ model fed the DQ
/// of every input integer, run by the engine (must match bit for bit) and by ONNX Runtime with plain kernels (may
/// differ by 1 LSB where ORT's float function differs in the last bit next to a rounding tie; the counts are stated).
/// </summary>
public class LookupTablesTests(ITestOutputHelper output)
{
    private static QuantParams P(QType t, float scale, int zeroPoint) => new(t, [scale], [zeroPoint], null, "test");

    private static Node Op(string opType)
    {
        var domain = "";
        var n = new Node(opType.ToLowerInvariant() + "_0", opType, domain, ["a"], ["b"]);
        switch (opType)
        {
            // PaddleOCR's HardSigmoid (the decomposed HardSwish's gate uses the same slope).
            case "HardSigmoid":
                n.Set(AttributeValue.Of("alpha", 0.1666666716337204f));
                n.Set(AttributeValue.Of("beta", 0.5f));
                break;
            case "LeakyRelu":
                n.Set(AttributeValue.Of("alpha", 0.1f));
                break;
        }
        return n;
    }

    /// <summary>x (float) → Q(s_x, z_x) → DQ → op → f → Q(s_y, z_y) → y (output) → DQ → out.</summary>
    private static OnnxModel QatModel(Node op, QuantParams i, QuantParams o, int count)
    {
        var g = new Graph { Name = "qat_" + op.OpType };
        g.Inputs.Add(new ValueInfo("x", ElementType.Float, [Dim.Known(count)]));
        g.Outputs.Add(new ValueInfo("f", ElementType.Float, null));
        g.Outputs.Add(new ValueInfo("y", Elem(o.QType), null));
        g.Outputs.Add(new ValueInfo("out", ElementType.Float, null));
        AddParams(g, "x", i);
        AddParams(g, "y", o);
        g.Nodes.Add(new Node("qx", "QuantizeLinear", "", ["x", "x_s", "x_z"], ["xq"]));
        g.Nodes.Add(new Node("dqx", "DequantizeLinear", "", ["xq", "x_s", "x_z"], ["xd"]));
        var n = new Node(op.Name, op.OpType, op.Domain, ["xd"], ["f"]);
        foreach (var a in op.Attributes.Values) n.Set(a);
        g.Nodes.Add(n);
        g.Nodes.Add(new Node("qy", "QuantizeLinear", "", ["f", "y_s", "y_z"], ["y"]));
        g.Nodes.Add(new Node("dqy", "DequantizeLinear", "", ["y", "y_s", "y_z"], ["out"]));
        var m = new OnnxModel(g) { IrVersion = 10, ProducerName = "quant-tests" };
        m.Opsets[""] = 21;
        return m;
    }

    private static ElementType Elem(QType t) => t == QType.Int8 ? ElementType.Int8 : ElementType.Int16;

    private static void AddParams(Graph g, string prefix, QuantParams p)
    {
        g.Initializers[prefix + "_s"] = TensorData.FromFloats(prefix + "_s", [], [p.Scales[0]]);
        g.Initializers[prefix + "_z"] = p.QType == QType.Int8
            ? TensorData.From(prefix + "_z", ElementType.Int8, [], new[] { (sbyte)p.ZeroPoints[0] }.AsSpan())
            : TensorData.From(prefix + "_z", ElementType.Int16, [], new[] { (short)p.ZeroPoints[0] }.AsSpan());
    }

    private static int[] Ints(Tensor t) => t.Buffer switch
    {
        sbyte[] b => b.Take(t.Length).Select(v => (int)v).ToArray(),
        short[] s => s.Take(t.Length).Select(v => (int)v).ToArray(),
        _ => throw new InvalidOperationException(t.Type.ToString()),
    };

    [Theory]
    // op, input bits, s_x, z_x, output bits, s_y, z_y, most 1-LSB differences allowed against ORT.
    // The allowances are the counts measured with ONNX Runtime 1.32's CPU kernels (plus ~25%): its exp/tanh/sigmoid/erf
    // differ from the engine's in the last float bits on most inputs, but only an int16 output's fine grid lands
    // those bits next to a rounding tie often enough to flip entries; int8 outputs show none.
    [InlineData("Sigmoid", 8, 0.02f, 0, 8, 1f / 127, 0, 0)]
    [InlineData("Sigmoid", 8, 0.031f, -7, 8, 1f / 255, -128, 0)]
    [InlineData("Sigmoid", 16, 0.0002f, 0, 16, 1f / 32767, 0, 60)]      // measured 48
    [InlineData("Sigmoid", 16, 0.0003f, 120, 8, 1f / 127, 0, 0)]
    [InlineData("HardSigmoid", 8, 0.021f, 0, 8, 1f / 127, 0, 0)]
    [InlineData("HardSigmoid", 8, 0.05f, 9, 8, 1f / 255, -128, 0)]
    [InlineData("HardSigmoid", 16, 0.00025f, -300, 16, 1f / 32767, 0, 0)]
    [InlineData("HardSwish", 8, 0.05f, 0, 8, 0.04f, 0, 0)]
    [InlineData("HardSwish", 8, 0.047f, -20, 8, 0.035f, -90, 0)]
    [InlineData("HardSwish", 16, 0.0004f, 0, 16, 0.0004f, 0, 15)]     // measured 10
    [InlineData("Tanh", 8, 0.02f, 0, 8, 1f / 127, 0, 0)]
    [InlineData("Tanh", 16, 0.0002f, 11, 16, 1f / 32767, 0, 120)]      // measured 98
    [InlineData("Exp", 8, 0.03f, 0, 8, 0.35f, -128, 0)]
    [InlineData("Exp", 16, 0.0001f, 0, 16, 0.0009f, -32768, 20)]  // measured 13
    [InlineData("Sqrt", 8, 0.02f, -40, 8, 0.03f, 0, 0)]
    [InlineData("LeakyRelu", 8, 0.02f, 3, 8, 0.015f, 0, 0)]
    [InlineData("Erf", 8, 0.02f, 0, 8, 1f / 127, 0, 0)]
    [InlineData("Reciprocal", 8, 0.02f, 0, 8, 0.4f, 0, 0)]
    [InlineData("Log", 8, 0.05f, -128, 8, 0.03f, 0, 0)]
    [InlineData("Gelu", 8, 0.03f, 0, 8, 0.025f, -100, 0)]
    [InlineData("Gelu", 16, 0.0002f, 0, 16, 0.0002f, 0, 5)]        // measured 3
    public void The_table_is_the_qat_node_on_every_input(string opType, int inBits, float sx, int zx, int outBits, float sy, int zy, int ortDiffsAllowed)
    {
        var i = P(inBits == 8 ? QType.Int8 : QType.Int16, sx, zx);
        var o = P(outBits == 8 ? QType.Int8 : QType.Int16, sy, zy);
        var op = Op(opType);
        var table = LookupTables.Build(op, i, o);

        var (qmin, qmax) = QuantParams.Range(i.QType);
        int count = qmax - qmin + 1;
        Assert.Equal(count, table.Entries.Length);
        Assert.Equal(count, table.Floats.Length);
        Assert.IsType(o.QType == QType.Int8 ? typeof(sbyte[]) : typeof(short[]), table.Entries);

        // DQ of every integer: one float32 product, as DequantizeLinear computes it.
        var x = new float[count];
        for (int k = 0; k < count; k++) x[k] = (float)(qmin + k - zx) * sx;
        var model = QatModel(op, i, o, count);
        var feeds = new Dictionary<string, Tensor> { ["x"] = Tensor.From(x, count) };

        var engine = new InferenceSession(model).Run(feeds);
        var engineY = Ints(engine["y"]);
        var engineF = (float[])engine["f"].Buffer;
        for (int k = 0; k < count; k++)
        {
            Assert.True(engineY[k] == table.Lookup(qmin + k), $"q = {qmin + k}: table {table.Lookup(qmin + k)}, engine qat {engineY[k]}");
            Assert.True(BitConverter.SingleToInt32Bits(engineF[k]) == BitConverter.SingleToInt32Bits(table.Floats[k]),
                $"q = {qmin + k}: float table {table.Floats[k]:R}, engine qat {engineF[k]:R}");
        }

        var path = Path.Combine(TestAssets.TempDir("lut-" + opType), $"{opType}_{inBits}_{outBits}_{zx}.qat.onnx");
        OnnxModelWriter.Save(model, path);
        using var ort = new OrtRunner(path, OrtOptimization.Disabled);
        var ortRun = ort.Run(feeds);
        var ortY = Ints(ortRun["y"]);
        var ortF = (float[])ortRun["f"].Buffer;
        int lsb = 0, floatBits = 0;
        for (int k = 0; k < count; k++)
        {
            int d = Math.Abs(ortY[k] - table.Lookup(qmin + k));
            Assert.True(d <= 1, $"q = {qmin + k}: table {table.Lookup(qmin + k)}, ORT {ortY[k]} (x = {x[k]:R})");
            lsb += d;
            if (BitConverter.SingleToInt32Bits(ortF[k]) != BitConverter.SingleToInt32Bits(table.Floats[k])) floatBits++;
        }
        output.WriteLine($"{opType} int{inBits}->int{outBits} s_x={sx:R} z_x={zx} s_y={sy:R} z_y={zy}: " +
                         $"{lsb} of {count} entries 1 LSB from ORT; {floatBits} float values differ from ORT's");
        Assert.True(lsb <= ortDiffsAllowed, $"{lsb} entries differ from ORT by 1 LSB (allowed {ortDiffsAllowed})");
    }

    [Fact]
    public void Gelu_of_opset_20_gets_a_table_matching_the_engine_qat_node()
    {
        var op = new Node("gelu", "Gelu", "", ["a"], ["b"]);
        var table = LookupTables.Build(op, P(QType.Int8, 0.03f, 0), P(QType.Int8, 0.025f, -100));
        // Independent of our kernels: Gelu(x) = x·Φ(x); at q = 0 it is 0 -> z_y; at q = 127 (x = 3.81) ≈ 3.8097 -> 152.4 - 100.
        Assert.Equal(-100, table.Lookup(0));
        Assert.Equal(52, table.Lookup(127));
        // Most negative input: x = -3.84, Gelu ≈ -2.4e-4 -> rounds to z_y.
        Assert.Equal(-100, table.Lookup(-128));
    }

    [Fact]
    public void Entries_the_spec_pins_by_hand()
    {
        var int8 = P(QType.Int8, 0.02f, 0);
        // sigmoid(0) = 0.5 -> 64 at s_y = 1/128; sigmoid(2.54) = 0.92697 -> 118.65 -> 119; sigmoid(-2.56) = 0.07176 -> 9.19 -> 9.
        var sig = LookupTables.Build(Op("Sigmoid"), int8, P(QType.Int8, 1f / 128, 0));
        Assert.Equal(64, sig.Lookup(0));
        Assert.Equal(119, sig.Lookup(127));
        Assert.Equal(9, sig.Lookup(-128));
        // Sqrt of a negative value is NaN -> qmin; Log of 0 is -inf -> qmin; 1/+0 is +inf -> qmax (§9).
        var sqrt = LookupTables.Build(Op("Sqrt"), P(QType.Int8, 0.02f, 10), P(QType.Int8, 0.03f, 0));
        Assert.All(Enumerable.Range(-128, 138), q => Assert.Equal(-128, sqrt.Lookup(q)));
        Assert.Equal(0, sqrt.Lookup(10));
        Assert.True(float.IsNaN(sqrt.Floats[0]));
        var log = LookupTables.Build(Op("Log"), P(QType.Int16, 0.001f, 0), P(QType.Int16, 0.001f, 0));
        Assert.Equal(-32768, log.Lookup(0));
        Assert.Equal(short.MinValue, log.Lookup(-5));
        Assert.Equal(0, log.Lookup(1000)); // log(1) = 0
        var rcp = LookupTables.Build(Op("Reciprocal"), int8, P(QType.Int8, 0.5f, 0));
        Assert.Equal(127, rcp.Lookup(0));
        Assert.Equal(100, rcp.Lookup(1)); // 1/0.02 = 50 -> 100
        // HardSigmoid saturates: x/6 + 0.5 at x = 6.35 is above 1 -> 127, at x = -6.4 below 0 -> 0.
        var hs = LookupTables.Build(Op("HardSigmoid"), P(QType.Int8, 0.05f, 0), P(QType.Int8, 1f / 127, 0));
        Assert.Equal(127, hs.Lookup(127));
        Assert.Equal(0, hs.Lookup(-128));
    }

    [Theory]
    [InlineData("Relu", "")]         // §6.4: a clamp, not a table
    [InlineData("Clip", "")]
    [InlineData("Softmax", "")]      // §10: its own algorithm
    [InlineData("Sigmoid", "com.example")]
    public void An_op_without_a_table_rule_is_one_argument_error(string opType, string domain)
    {
        var op = new Node("n7", opType, domain, ["a"], ["b"]);
        var e = Assert.Throws<ArgumentException>(() => LookupTables.Build(op, P(QType.Int8, 0.02f, 0), P(QType.Int8, 0.02f, 0)));
        Assert.Contains("node 'n7'", e.Message);
        Assert.Contains("no lookup-table rule", e.Message);
    }

    [Theory]
    [InlineData(0f, true)]
    [InlineData(-0.02f, true)]
    [InlineData(float.NaN, true)]
    [InlineData(float.PositiveInfinity, false)]
    [InlineData(0f, false)]
    public void A_scale_that_is_not_positive_and_finite_is_rejected(float scale, bool onInput)
    {
        var good = P(QType.Int8, 0.02f, 0);
        var bad = P(QType.Int8, scale, 0);
        var e = Assert.Throws<ArgumentException>(() => LookupTables.Build(Op("Sigmoid"), onInput ? bad : good, onInput ? good : bad));
        Assert.Contains("must be positive and finite", e.Message);
        Assert.Equal(onInput ? "input" : "output", e.ParamName);
    }

    [Fact]
    public void Per_channel_parameters_and_a_zero_point_outside_the_type_are_rejected()
    {
        var good = P(QType.Int8, 0.02f, 0);
        var perChannel = new QuantParams(QType.Int8, [0.02f, 0.03f], [0, 0], 1, "test");
        Assert.Contains("per tensor", Assert.Throws<ArgumentException>(() => LookupTables.Build(Op("Tanh"), perChannel, good)).Message);
        Assert.Contains("outside Int8", Assert.Throws<ArgumentException>(() => LookupTables.Build(Op("Tanh"), good, P(QType.Int8, 0.02f, 200))).Message);
        Assert.Contains("int8 or int16", Assert.Throws<ArgumentException>(() => LookupTables.Build(Op("Tanh"), good, P(QType.Float16, 1f, 0))).Message);
    }
}
