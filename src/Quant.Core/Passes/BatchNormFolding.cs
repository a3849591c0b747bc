using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>
/// Inference BatchNormalization y = (x - mean) / sqrt(var + eps) * gamma + beta after a Conv, ConvTranspose
/// or Gemm whose output nothing else reads is folded into it: with f = gamma / sqrt(var + eps), the weights of
/// output channel c become w * f[c] and the bias (b - mean) * f[c] + beta. The folded node's output takes the
/// BatchNormalization's output name. A BatchNormalization that cannot be folded stays, with the reason.
/// </summary>
internal static class BatchNormFolding
{
    public static void Run(PassState s)
    {
        foreach (var bn in s.Graph.Nodes.ToList())
        {
            if (bn.OpType != "BatchNormalization" || !bn.IsDefaultDomain) continue;
            var producer = bn.InputOrNull(0) is { } x ? s.ProducerOf(x) : null;
            string? reason = Check(s, bn, producer, out var p);
            if (reason is not null)
            {
                s.Folds.Add(new FoldRecord(bn.Name, bn.OpType, producer?.Name ?? "", producer?.OpType ?? "", false, reason));
                continue;
            }
            int channels = p.Gamma.Length;
            var f = new double[channels];
            var shift = new double[channels];
            for (int c = 0; c < channels; c++)
            {
                f[c] = p.Gamma[c] / Math.Sqrt((double)p.Var[c] + p.Epsilon);
                shift[c] = p.Beta[c] - p.Mean[c] * f[c];
            }
            ChannelAffine.Apply(s, producer!, f, shift);
            ChannelAffine.TakeOver(s, producer!, bn, $"BatchNormalization folded into {producer!.OpType} '{producer.Name}'");
            s.Folds.Add(new FoldRecord(bn.Name, bn.OpType, producer.Name, producer.OpType, true, "scale and shift folded into the weights and bias"));
        }
    }

    private readonly record struct Params(float[] Gamma, float[] Beta, float[] Mean, float[] Var, float Epsilon);

    private static string? Check(PassState s, Node bn, Node? producer, out Params p)
    {
        p = default;
        if (bn.GetInt("training_mode", 0) != 0) return "training_mode = 1 (batch statistics)";
        if (s.Model.OpsetFor(bn.Domain) < 9 && bn.GetInt("spatial", 1) == 0) return "spatial = 0 (statistics per position, not per channel)";
        if (bn.Outputs.Skip(1).Any(o => o.Length > 0 && s.Uses(o) > 0)) return "its running mean/variance outputs are read";
        if (producer is null) return $"its input '{bn.InputOrNull(0)}' is not produced by a node (graph input or initializer)";
        if (!ChannelAffine.IsFoldTarget(producer))
            return $"its input comes from {producer.OpType} '{producer.Name}', not from a Conv, ConvTranspose or Gemm";
        var arrays = new float[4][];
        string[] what = ["scale", "bias", "mean", "variance"];
        for (int i = 0; i < 4; i++)
        {
            var t = bn.InputOrNull(i + 1) is { } name ? s.Constant(name) : null;
            if (t is null) return $"its {what[i]} is not constant";
            if (t.Type != ElementType.Float) return $"its {what[i]} is {t.Type.OnnxName()}, not float";
            arrays[i] = t.As<float>().ToArray();
        }
        var reason = ChannelAffine.CannotFold(s, producer, bn, out int channels, out _);
        if (reason is not null) return reason;
        if (arrays.Any(a => a.Length != channels))
            return $"its parameters have {arrays[0].Length} entries but {producer.OpType} '{producer.Name}' has {channels} output channels";
        p = new Params(arrays[0], arrays[1], arrays[2], arrays[3], bn.GetFloat("epsilon", 1e-5f));
        return null;
    }
}
