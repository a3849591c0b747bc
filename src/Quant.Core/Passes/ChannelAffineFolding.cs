using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>
/// A Mul by, or an Add of, a constant per-channel (or scalar) value right after a Conv, ConvTranspose or Gemm
/// becomes part of that node's weights and bias. Paddle exports ConvTranspose bias this way (ConvTranspose -> Add
/// [1,C,1,1]), and PP-LCNetV3 puts a learnable scale and shift between most convolutions and their HardSwish
/// (Conv -> Mul [1] -> Add [1] -> HardSwish). Folding removes one quantization point per folded node and puts the
/// activation right behind the convolution, where the target runs it fused; it also lets a following
/// BatchNormalization fold. Nodes are visited in graph order, so a Mul folded first makes the Add behind it foldable.
/// </summary>
internal static class ChannelAffineFolding
{
    public static void Run(PassState s)
    {
        foreach (var node in s.Graph.Nodes.ToList())
        {
            if (node.OpType is not ("Add" or "Mul") || !node.IsDefaultDomain || node.Inputs.Count != 2) continue;
            int convSide = ChannelAffine.IsFoldTarget(s.ProducerOf(node.Inputs[0])) ? 0 : ChannelAffine.IsFoldTarget(s.ProducerOf(node.Inputs[1])) ? 1 : -1;
            if (convSide < 0) continue;
            var c = s.Constant(node.Inputs[1 - convSide]);
            if (c is null) continue; // an Add or Mul of two runtime values (a residual, an attention gate): not an affine map
            var producer = s.ProducerOf(node.Inputs[convSide])!;
            string? reason = ChannelAffine.CannotFold(s, producer, node, out int channels, out int rank);
            if (reason is null) reason = ShapeProblem(c, channels, rank);
            if (reason is null && node.OpType == "Mul" && c!.As<float>().ToArray().Any(v => !float.IsFinite(v)))
                reason = "the scale is not finite";
            if (reason is not null)
            {
                s.Folds.Add(new FoldRecord(node.Name, node.OpType, producer.Name, producer.OpType, false, reason));
                continue;
            }
            var values = c!.As<float>();
            var f = new double[channels];
            var shift = new double[channels];
            for (int ch = 0; ch < channels; ch++)
            {
                double v = values[values.Length == 1 ? 0 : ch];
                if (node.OpType == "Mul") f[ch] = v;
                else { f[ch] = 1.0; shift[ch] = v; }
            }
            ChannelAffine.Apply(s, producer, f, shift);
            string what = node.OpType == "Mul" ? "scale Mul" : "bias Add";
            ChannelAffine.TakeOver(s, producer, node, $"per-channel {what} folded into {producer.OpType} '{producer.Name}'");
            s.Folds.Add(new FoldRecord(node.Name, node.OpType, producer.Name, producer.OpType, true,
                node.OpType == "Mul" ? "constant per-channel scale multiplied into the weights and bias" : "constant per-channel bias became the bias input"));
        }
    }

    /// <summary>Null if <paramref name="c"/> holds one float per output channel (axis 1), or one for all, without changing the output's shape.</summary>
    private static string? ShapeProblem(TensorData c, int channels, int rank)
    {
        if (c.Type != ElementType.Float) return $"the constant is {c.Type.OnnxName()}, not float";
        if (c.Dims.Length > rank) return $"the constant has rank {c.Dims.Length}, more than the output's {rank}";
        for (int d = 0; d < c.Dims.Length; d++)
        {
            int axis = rank - c.Dims.Length + d;
            long dim = c.Dims[d];
            if (dim == 1 || axis == 1 && dim == channels) continue;
            return $"the constant [{string.Join(",", c.Dims)}] is not one value per output channel";
        }
        return null;
    }
}
