using Quant.Core.Calibration;
using Quant.Core.Config;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Conversion;

/// <summary>
/// A unary op's lookup table (docs/quantization-spec.md §9): <c>Entries[q − qmin] = Q_T(f(DQ(q; s_x, z_x)); s_y, z_y)</c>
/// for every integer q of the input type, and the float table <c>Floats[q − qmin] = f(DQ(q))</c> for float readers.
/// <see cref="Entries"/> is <c>sbyte[]</c> for an int8 output and <c>short[]</c> for int16.
/// </summary>
public sealed class LookupTable
{
    internal LookupTable(string opType, QType inputType, QType outputType, Array entries, float[] floats)
    {
        OpType = opType;
        InputType = inputType;
        OutputType = outputType;
        Entries = entries;
        Floats = floats;
    }

    public string OpType { get; }
    public QType InputType { get; }
    public QType OutputType { get; }
    /// <summary>256 (int8 input) or 65536 (int16 input) entries: sbyte[] for an int8 output, short[] for int16.</summary>
    public Array Entries { get; }
    /// <summary>f(DQ(q)) in float32, same indexing: the table a float reader of the op's output gets.</summary>
    public float[] Floats { get; }

    /// <summary>The output integer for input integer <paramref name="q"/> (which must lie in the input type's range).</summary>
    public int Lookup(int q)
    {
        int i = q - QuantParams.Range(InputType).Min;
        return Entries is sbyte[] b ? b[i] : ((short[])Entries)[i];
    }
}

/// <summary>
/// Builds the §9 tables by running the qat subgraph DQ → op → Q itself through the engine, on one tensor that holds
/// every integer of the input type. So each entry is, by construction, what the engine's qat model computes for that
/// input: the engine's own DequantizeLinear, op kernel (same attributes) and QuantizeLinear, no re-implementation.
/// <para>An internal API of convert: convert has already checked the Q/DQ pairs (the spec's proposed malformed-Q/DQ error, 7007) and chosen the
/// table rule from the op table (§13), so a bad argument here is a programming error and raises
/// <see cref="ArgumentException"/>.</para>
/// </summary>
public static class LookupTables
{
    /// <summary>The ops §9 gives a table rule to (on the target today, plus those "defined but kept float"), minus
    /// Pow with a constant exponent, which needs its exponent tensor and is not built here.</summary>
    public static IReadOnlySet<string> Ops { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Exp", "Sqrt", "LeakyRelu",
        "Erf", "Gelu", "Reciprocal", "Log",
    };

    // The qat subgraph runs at opset 21 whatever the source model's opset: Q/DQ with int16 need 21, Gelu needs 20,
    // and none of the table ops' kernels change between the versions a qat model can carry.
    private const long Opset = 21;

    /// <summary>
    /// The table of <paramref name="op"/> (its op type, domain and attributes are used; its input/output names are
    /// not) from per-tensor <paramref name="input"/> quantization to per-tensor <paramref name="output"/> quantization.
    /// </summary>
    public static LookupTable Build(Node op, QuantParams input, QuantParams output)
    {
        ArgumentNullException.ThrowIfNull(op);
        if (!Ops.Contains(op.OpType) || !(op.IsDefaultDomain || op.Domain == "com.microsoft" && op.OpType == "Gelu"))
            throw new ArgumentException(
                $"node '{op.Name}': {Describe(op)} has no lookup-table rule (quantization-spec §9 tables: {string.Join(", ", Ops)})", nameof(op));
        if (op.Inputs.Count(i => i.Length > 0) != 1)
            throw new ArgumentException($"node '{op.Name}': a table op takes exactly one input, this {op.OpType} has {op.Inputs.Count}", nameof(op));
        var (sx, zx) = CheckPerTensor(op, input, nameof(input));
        var (sy, zy) = CheckPerTensor(op, output, nameof(output));

        var (qmin, qmax) = QuantParams.Range(input.QType);
        int count = qmax - qmin + 1;
        var model = SubgraphModel(op, input.QType, count, sx, zx, output.QType, sy, zy);
        var q = AllIntegers(input.QType, qmin, count);

        var session = new InferenceSession(model);
        var result = session.Run(new Dictionary<string, Tensor>(StringComparer.Ordinal) { ["q"] = q });
        var entries = result["y"].Buffer;
        var floats = (float[])result["f"].Buffer;
        // The engine may hand back pooled buffers longer than the tensor: keep exactly one entry per input integer.
        return new LookupTable(op.OpType, input.QType, output.QType, Trim(entries, count), floats[..count]);
    }

    private static string Describe(Node op) => op.IsDefaultDomain ? op.OpType : $"{op.Domain}.{op.OpType}";

    private static (float Scale, int ZeroPoint) CheckPerTensor(Node op, QuantParams p, string what)
    {
        ArgumentNullException.ThrowIfNull(p, what);
        if (p.QType is not (QType.Int8 or QType.Int16))
            throw new ArgumentException($"node '{op.Name}': the {what} of a lookup table must be int8 or int16, not {p.QType}", what);
        if (p.PerChannel || p.Scales.Length != 1 || p.ZeroPoints.Length != 1)
            throw new ArgumentException($"node '{op.Name}': the {what} of a lookup table must be quantized per tensor (one scale, one zero point)", what);
        float s = p.Scales[0];
        if (!(s > 0) || !float.IsFinite(s))
            throw new ArgumentException($"node '{op.Name}': the {what} scale {s} must be positive and finite", what);
        var (min, max) = QuantParams.Range(p.QType);
        int z = p.ZeroPoints[0];
        if (z < min || z > max)
            throw new ArgumentException($"node '{op.Name}': the {what} zero point {z} lies outside {p.QType} [{min}, {max}]", what);
        return (s, z);
    }

    /// <summary>q (int) → DQ → x → op → f (float output) → Q → y (int output).</summary>
    private static OnnxModel SubgraphModel(Node op, QType inType, int count, float sx, int zx, QType outType, float sy, int zy)
    {
        var inElem = Element(inType);
        var outElem = Element(outType);
        var g = new Graph { Name = "lookup_table_" + op.OpType };
        g.Inputs.Add(new ValueInfo("q", inElem, [Dim.Known(count)]));
        g.Outputs.Add(new ValueInfo("f", ElementType.Float, null));
        g.Outputs.Add(new ValueInfo("y", outElem, null));
        g.Initializers["sx"] = TensorData.FromFloats("sx", [], [sx]);
        g.Initializers["zx"] = ZeroPoint("zx", inType, zx);
        g.Initializers["sy"] = TensorData.FromFloats("sy", [], [sy]);
        g.Initializers["zy"] = ZeroPoint("zy", outType, zy);
        g.Nodes.Add(new Node("dq", "DequantizeLinear", "", ["q", "sx", "zx"], ["x"]));
        var f = new Node(op.Name.Length > 0 ? op.Name : "op", op.OpType, op.Domain, ["x"], ["f"]);
        foreach (var a in op.Attributes.Values) f.Set(a);
        g.Nodes.Add(f);
        g.Nodes.Add(new Node("qy", "QuantizeLinear", "", ["f", "sy", "zy"], ["y"]));
        var m = new OnnxModel(g) { IrVersion = 10, ProducerName = "quant-convert" };
        m.Opsets[""] = Opset;
        if (!op.IsDefaultDomain) m.Opsets[op.Domain] = 1;
        return m;
    }

    private static ElementType Element(QType t) => t == QType.Int8 ? ElementType.Int8 : ElementType.Int16;

    private static TensorData ZeroPoint(string name, QType t, int z) => t == QType.Int8
        ? TensorData.From(name, ElementType.Int8, [], new[] { (sbyte)z }.AsSpan())
        : TensorData.From(name, ElementType.Int16, [], new[] { (short)z }.AsSpan());

    private static Tensor AllIntegers(QType t, int qmin, int count)
    {
        if (t == QType.Int8)
        {
            var v = new sbyte[count];
            for (int i = 0; i < count; i++) v[i] = (sbyte)(qmin + i);
            return Tensor.From(v, count);
        }
        var w = new short[count];
        for (int i = 0; i < count; i++) w[i] = (short)(qmin + i);
        return Tensor.From(w, count);
    }

    private static Array Trim(Array a, int count) => a switch
    {
        sbyte[] b => b[..count],
        short[] s => s[..count],
        _ => throw new InvalidOperationException($"the table's QuantizeLinear produced {a.GetType().Name}, not int8/int16"),
    };
}
