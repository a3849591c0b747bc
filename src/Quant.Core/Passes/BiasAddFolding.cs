using Quant.Onnx;

namespace Quant.Core.Passes;

/// <summary>
/// An Add of a constant per-channel bias right after a Conv, ConvTranspose or Gemm becomes that node's bias.
/// Paddle exports ConvTranspose bias this way (ConvTranspose -> Add [1,C,1,1]); folding it lets a following
/// BatchNormalization fold too and removes a quantization point.
/// </summary>
internal static class BiasAddFolding
{
    public static void Run(PassState s)
    {
        foreach (var add in s.Graph.Nodes.ToList())
        {
            if (add.OpType != "Add" || !add.IsDefaultDomain || add.Inputs.Count != 2) continue;
            int convSide = ChannelAffine.IsFoldTarget(s.ProducerOf(add.Inputs[0])) ? 0 : ChannelAffine.IsFoldTarget(s.ProducerOf(add.Inputs[1])) ? 1 : -1;
            if (convSide < 0) continue;
            var c = s.Constant(add.Inputs[1 - convSide]);
            if (c is null) continue; // a residual Add of two runtime values: not a bias
            var producer = s.ProducerOf(add.Inputs[convSide])!;
            string? reason = ChannelAffine.CannotFold(s, producer, add, out int channels, out int rank);
            if (reason is null) reason = BiasShapeProblem(c, channels, rank);
            if (reason is not null)
            {
                s.Folds.Add(new FoldRecord(add.Name, "Add", producer.Name, producer.OpType, false, reason));
                continue;
            }
            var values = c!.As<float>();
            var shift = new double[channels];
            for (int ch = 0; ch < channels; ch++) shift[ch] = values[values.Length == 1 ? 0 : ch];
            ChannelAffine.Apply(s, producer, Enumerable.Repeat(1.0, channels).ToArray(), shift);
            ChannelAffine.TakeOver(s, producer, add, $"per-channel bias Add folded into {producer.OpType} '{producer.Name}'");
            s.Folds.Add(new FoldRecord(add.Name, "Add", producer.Name, producer.OpType, true, "constant per-channel bias became the bias input"));
        }
    }

    /// <summary>Null if <paramref name="c"/> adds one float per output channel (axis 1) without changing the output's shape.</summary>
    private static string? BiasShapeProblem(TensorData c, int channels, int rank)
    {
        if (c.Type != ElementType.Float) return $"the added constant is {c.Type.OnnxName()}, not float";
        if (c.Dims.Length > rank) return $"the added constant has rank {c.Dims.Length}, more than the output's {rank}";
        for (int d = 0; d < c.Dims.Length; d++)
        {
            int axis = rank - c.Dims.Length + d;
            long dim = c.Dims[d];
            if (dim == 1 || axis == 1 && dim == channels) continue;
            return $"the added constant [{string.Join(",", c.Dims)}] is not one value per output channel";
        }
        return null;
    }
}
