using System.Runtime.InteropServices;
using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>
/// Folds a per-output-channel affine map y' = y * f[c] + shift[c] into the Conv, ConvTranspose or Gemm
/// producing y: the weights of output channel c are multiplied by f[c] and the bias becomes
/// b[c] * f[c] + shift[c]. Arithmetic is in double, rounded once to float32.
/// </summary>
internal static class ChannelAffine
{
    public static bool IsFoldTarget(Node? n) => n is { IsDefaultDomain: true, OpType: "Conv" or "ConvTranspose" or "Gemm" };

    /// <summary>Why <paramref name="producer"/>'s output cannot absorb a channel affine map read by <paramref name="reader"/>; null when it can.</summary>
    public static string? CannotFold(PassState s, Node producer, Node reader, out int channels, out int outputRank)
    {
        channels = 0;
        outputRank = 0;
        var y = producer.Outputs[0];
        if (s.IsGraphOutput(y)) return $"the output '{y}' of {producer.OpType} '{producer.Name}' is also a graph output";
        var others = s.ConsumersOf(y).Where(c => !ReferenceEquals(c, reader)).ToList();
        if (others.Count > 0)
            return $"the output of {producer.OpType} '{producer.Name}' also feeds {others.Count} other node(s) ({string.Join(", ", others.Take(3).Select(o => $"'{o.Name}'"))})";
        if (producer.Outputs.Count > 1 && producer.Outputs.Skip(1).Any(o => o.Length > 0)) return $"{producer.OpType} '{producer.Name}' has extra outputs";
        var w = producer.InputOrNull(1) is { } wn ? s.Constant(wn) : null;
        if (w is null) return $"the weights of {producer.OpType} '{producer.Name}' are not constant";
        if (w.Type != ElementType.Float) return $"the weights of {producer.OpType} '{producer.Name}' are {w.Type.OnnxName()}, not float";
        if (producer.InputOrNull(2) is { } bn && s.Constant(bn) is not { Type: ElementType.Float })
            return $"the bias of {producer.OpType} '{producer.Name}' is not a constant float tensor";
        switch (producer.OpType)
        {
            case "Conv":
                if (w.Dims.Length < 3) return $"Conv '{producer.Name}' has rank-{w.Dims.Length} weights";
                channels = (int)w.Dims[0];
                outputRank = w.Dims.Length;
                break;
            case "ConvTranspose":
                if (w.Dims.Length < 3) return $"ConvTranspose '{producer.Name}' has rank-{w.Dims.Length} weights";
                long group = producer.GetInt("group", 1);
                if (group < 1 || w.Dims[0] % group != 0) return $"ConvTranspose '{producer.Name}' has group {group} that does not divide its {w.Dims[0]} input channels";
                channels = (int)(w.Dims[1] * group);
                outputRank = w.Dims.Length;
                break;
            default: // Gemm
                if (w.Dims.Length != 2) return $"Gemm '{producer.Name}' has rank-{w.Dims.Length} weights";
                channels = (int)(producer.GetInt("transB", 0) != 0 ? w.Dims[0] : w.Dims[1]);
                outputRank = 2;
                if (producer.InputOrNull(2) is { } c)
                {
                    var dims = s.Constant(c)!.Dims;
                    bool perColumn = dims.Length == 0 || dims.Length == 1 || dims.Length == 2 && dims[0] == 1;
                    if (!perColumn) return $"the bias C of Gemm '{producer.Name}' has shape [{string.Join(",", dims)}], not one value per output column";
                }
                break;
        }
        return null;
    }

    /// <summary>Applies the map; <see cref="CannotFold"/> must have returned null.</summary>
    public static void Apply(PassState s, Node producer, double[] f, double[] shift)
    {
        int channels = f.Length;
        var wName = producer.Inputs[1];
        var w = s.Constant(wName)!;
        var wv = w.As<float>().ToArray();
        switch (producer.OpType)
        {
            case "Conv":
            {
                int per = wv.Length / channels;
                for (int c = 0; c < channels; c++)
                    for (int k = 0; k < per; k++) wv[c * per + k] = (float)(wv[c * per + k] * f[c]);
                break;
            }
            case "ConvTranspose":
            {
                // Weights are [Cin, Cout/group, k...]: output channel = group index * (Cout/group) + axis-1 index.
                int cin = (int)w.Dims[0], coutPerGroup = (int)w.Dims[1];
                int group = (int)producer.GetInt("group", 1), cinPerGroup = cin / group;
                int per = wv.Length / (cin * coutPerGroup);
                for (int ci = 0; ci < cin; ci++)
                    for (int j = 0; j < coutPerGroup; j++)
                    {
                        int oc = ci / cinPerGroup * coutPerGroup + j;
                        int at = (ci * coutPerGroup + j) * per;
                        for (int k = 0; k < per; k++) wv[at + k] = (float)(wv[at + k] * f[oc]);
                    }
                break;
            }
            default:
            {
                bool transB = producer.GetInt("transB", 0) != 0;
                int rows = (int)w.Dims[0], cols = (int)w.Dims[1];
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < cols; c++)
                        wv[r * cols + c] = (float)(wv[r * cols + c] * f[transB ? r : c]);
                break;
            }
        }
        producer.Inputs[1] = Store(s, wName, producer, new TensorData(wName, ElementType.Float, w.Dims, MemoryMarshal.AsBytes(wv.AsSpan()).ToArray()));

        var bias = new double[channels];
        double biasScale = 1;
        if (producer.OpType == "Gemm")
        {
            // Gemm adds beta * C; the folded C already includes beta, so beta becomes 1.
            biasScale = producer.GetFloat("beta", 1f);
            producer.Set(AttributeValue.Of("beta", 1f));
        }
        if (producer.InputOrNull(2) is { } bName)
        {
            var b = s.Constant(bName)!.As<float>();
            for (int c = 0; c < channels; c++) bias[c] = biasScale * b[b.Length == 1 ? 0 : c];
        }
        var nb = new float[channels];
        for (int c = 0; c < channels; c++) nb[c] = (float)(bias[c] * f[c] + shift[c]);
        var biasName = producer.InputOrNull(2) ?? s.FreshName($"{(producer.Name.Length > 0 ? producer.Name : producer.Outputs[0])}.folded_bias");
        var stored = Store(s, biasName, producer, TensorData.FromFloats(biasName, [channels], nb));
        while (producer.Inputs.Count < 3) producer.Inputs.Add("");
        producer.Inputs[2] = stored;
    }

    /// <summary>Writes a folded tensor under <paramref name="name"/> unless another node also reads that initializer; then under a fresh name.</summary>
    public static string Store(PassState s, string name, Node owner, TensorData value)
    {
        bool shared = s.Graph.Initializers.ContainsKey(name) && s.Graph.Nodes.Any(n => !ReferenceEquals(n, owner) && n.Inputs.Contains(name));
        if (shared || s.IsGraphOutput(name)) name = s.FreshName($"{name}.folded");
        value.Name = name;
        s.Graph.Initializers[name] = value;
        return name;
    }

    /// <summary>The producer's output takes the folded node's output name; the old value no longer exists.</summary>
    public static void TakeOver(PassState s, Node producer, Node folded, string why)
    {
        var oldName = producer.Outputs[0];
        var newName = folded.Outputs[0];
        s.Remove(folded, why);
        s.Vanish(oldName, $"the value before {folded.OpType} '{folded.Name}', which was folded into {producer.OpType} '{producer.Name}' (now producing '{newName}')");
        producer.Outputs[0] = newName;
    }
}
