using Quant.Onnx;

namespace Quant.Core.Tests.Convert;

/// <summary>
/// A small qat model written with the Graph API, in the shape our export gives it: float input x [1, 3, 6, 7] →
/// Q → DQ → Conv (int8 weights through DQ, per output channel; float bias) → Relu → Q → DQ → output y. Knobs
/// let a test break one thing at a time (spec §3.6).
/// </summary>
internal sealed class TinyQat
{
    public float InputScale = 0.02f;
    public int InputZeroPoint;
    public ElementType ActivationType = ElementType.Int8;
    public float OutputScale = 0.05f;
    public int OutputZeroPoint;
    public float[]? WeightScales;
    public int WeightZeroPoint;
    public int WeightAxis;
    public bool PerChannelInput;
    public float? DequantizeScale;
    public float BiasValue = 0.3f;
    public bool Relu = true;
    /// <summary>A HardSwish (opset 14) after the Conv in place of the Relu, with no quantization point between.</summary>
    public bool HardSwish;
    public string ConvOp = "Conv";

    public const int C = 3, M = 4, H = 6, W = 7;

    public OnnxModel Build()
    {
        var g = new Graph { Name = "tiny" };
        g.Inputs.Add(new ValueInfo("x", ElementType.Float, [1, C, H, W]));
        g.Outputs.Add(new ValueInfo("y", ElementType.Float, [1, M, H, W]));
        int[] inputZps = PerChannelInput ? [InputZeroPoint, InputZeroPoint, InputZeroPoint] : [InputZeroPoint];
        float[] inputScales = PerChannelInput ? [InputScale, InputScale, InputScale] : [InputScale];
        Add(g, "x_scale", inputScales, PerChannelInput);
        Add(g, "x_dq_scale", PerChannelInput ? inputScales : [DequantizeScale ?? InputScale], PerChannelInput);
        AddZp(g, "x_zero_point", ActivationType, inputZps, PerChannelInput);
        var rng = new Random(5);
        var w = Enumerable.Range(0, M * C * 9).Select(_ => rng.Next(-127, 128)).ToArray();
        g.Initializers["w_q"] = TensorData.From("w_q", ElementType.Int8, [M, C, 3, 3], w.Select(v => (sbyte)v).ToArray().AsSpan());
        var ws = WeightScales ?? [0.01f, 0.012f, 0.008f, 0.011f];
        Add(g, "w_scale", ws, ws.Length > 1);
        g.Initializers["w_zero_point"] = TensorData.From("w_zero_point", ElementType.Int8, ws.Length > 1 ? [ws.Length] : [],
            Enumerable.Repeat((sbyte)WeightZeroPoint, ws.Length).ToArray().AsSpan());
        g.Initializers["b"] = TensorData.FromFloats("b", [M], Enumerable.Range(0, M).Select(i => BiasValue * (i - 1.5f)).ToArray());
        Add(g, "y_scale", [OutputScale], false);
        AddZp(g, "y_zero_point", ActivationType, [OutputZeroPoint], false);

        var q = new Node("x_q", "QuantizeLinear", "", ["x", "x_scale", "x_zero_point"], ["x_q"]);
        var dq = new Node("x_dq", "DequantizeLinear", "", ["x_q", "x_dq_scale", "x_zero_point"], ["x_dq"]);
        if (PerChannelInput) { q.Set(AttributeValue.Of("axis", 1L)); dq.Set(AttributeValue.Of("axis", 1L)); }
        var wdq = new Node("w_dq", "DequantizeLinear", "", ["w_q", "w_scale", "w_zero_point"], ["w_dq"]);
        if (ws.Length > 1) wdq.Set(AttributeValue.Of("axis", (long)WeightAxis));
        Node conv;
        if (ConvOp == "QLinearConv")
            conv = new Node("conv", "QLinearConv", "", ["x_q", "x_scale", "x_zero_point", "w_q", "w_scale", "w_zero_point", "y_scale", "y_zero_point"], ["conv_out"]);
        else
        {
            conv = new Node("conv", "Conv", "", ["x_dq", "w_dq", "b"], ["conv_out"]);
            conv.Set(AttributeValue.Of("pads", new long[] { 1, 1, 1, 1 }));
            conv.Set(AttributeValue.Of("kernel_shape", new long[] { 3, 3 }));
        }
        g.Nodes.AddRange([q, dq, wdq, conv]);
        string last = "conv_out";
        if (HardSwish)
        {
            g.Nodes.Add(new Node("hs", "HardSwish", "", ["conv_out"], ["hs_out"]));
            last = "hs_out";
        }
        else if (Relu)
        {
            g.Nodes.Add(new Node("relu", "Relu", "", ["conv_out"], ["relu_out"]));
            last = "relu_out";
        }
        g.Nodes.Add(new Node("y_q", "QuantizeLinear", "", [last, "y_scale", "y_zero_point"], ["y_q"]));
        g.Nodes.Add(new Node("y_dq", "DequantizeLinear", "", ["y_q", "y_scale", "y_zero_point"], ["y"]));
        var model = new OnnxModel(g) { IrVersion = 8 };
        model.Opsets[""] = HardSwish ? 14 : 13;
        return model;
    }

    /// <summary>Writes the model to <c>DIR/tiny.qat.onnx</c> and returns the path.</summary>
    public string Save(string dir)
    {
        var path = Path.Combine(dir, "tiny.qat.onnx");
        OnnxModelWriter.Save(Build(), path);
        return path;
    }

    private static void Add(Graph g, string name, float[] values, bool vector) =>
        g.Initializers[name] = TensorData.FromFloats(name, vector ? [values.Length] : [], values);

    private static void AddZp(Graph g, string name, ElementType t, int[] values, bool vector)
    {
        long[] dims = vector ? [values.Length] : [];
        g.Initializers[name] = t switch
        {
            ElementType.Int8 => TensorData.From(name, t, dims, values.Select(v => (sbyte)v).ToArray().AsSpan()),
            ElementType.UInt8 => TensorData.From(name, t, dims, values.Select(v => (byte)v).ToArray().AsSpan()),
            ElementType.Int16 => TensorData.From(name, t, dims, values.Select(v => (short)v).ToArray().AsSpan()),
            ElementType.UInt16 => TensorData.From(name, t, dims, values.Select(v => (ushort)v).ToArray().AsSpan()),
            _ => TensorData.From(name, t, dims, values.AsSpan()),
        };
    }
}
