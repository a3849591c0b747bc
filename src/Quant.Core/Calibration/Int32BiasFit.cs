using Quant.Core.Precision;
using Quant.Onnx;

namespace Quant.Core.Calibration;

/// <summary>
/// Keeps the bias of every quantized Conv/ConvTranspose/Gemm representable as int32 at scale
/// input_scale × weight_scale — the QDQ convention integer runtimes build on: ONNX Runtime quantizes a float
/// bias exactly that way when it fuses a QDQ Conv (already at graph optimization level <c>basic</c>), and the
/// convert stage will too. int16 activations times the small int16 weight scales of BatchNorm-folded channels
/// make that scale tiny — det's first Conv: 8.1e-5 × 2.7e-6 = 2.1e-10, where a bias of 1.73 needs 8e9 — and the
/// overflowing bias silently becomes another number (ORT computed four of those 16 channels with a wrong
/// offset; det upper_bound came out at cosine 0.86 instead of 0.99996). Such channels get the smallest weight
/// scale at which the bias fits in half the int32 range; the weights there lose a little resolution, nothing
/// else changes.
/// </summary>
public static class Int32BiasFit
{
    /// <summary>A weight whose scale was raised: how many channels, and by how much at most.</summary>
    public sealed record Adjustment(string Node, string Weight, int Channels, double LargestFactor);

    /// <summary>The bias must fit in this much of the int32 range (rounding of the product scale, and margin).</summary>
    public const double Headroom = 0.5;

    public static (IReadOnlyDictionary<string, QuantParams> Weights, IReadOnlyList<Adjustment> Adjusted) Apply(
        OnnxModel model, PrecisionPlan plan, IReadOnlyDictionary<string, QuantParams> activations, IReadOnlyDictionary<string, QuantParams> weights)
    {
        var result = new SortedDictionary<string, QuantParams>(StringComparer.Ordinal);
        foreach (var (name, p) in weights) result[name] = p;
        var adjusted = new List<Adjustment>();
        double limit = int.MaxValue * Headroom;
        foreach (var n in plan.Nodes)
        {
            if (n.OpType is not ("Conv" or "ConvTranspose" or "Gemm") || !n.Node.IsDefaultDomain) continue;
            var x = n.Inputs.FirstOrDefault(i => i.Index == 0);
            var w = n.Inputs.FirstOrDefault(i => i.Role == InputRole.Weight);
            var b = n.Inputs.FirstOrDefault(i => i.Role == InputRole.Bias);
            if (x is null || w is null || b is null) continue;
            // A per-channel input scale has no single product scale: no runtime fuses that into an int32 bias.
            if (!activations.TryGetValue(x.Tensor, out var xp) || xp.Scales.Length != 1) continue;
            if (!result.TryGetValue(w.Tensor, out var wp)) continue;
            if (!model.Graph.Initializers.TryGetValue(b.Tensor, out var bd) || bd.Type != ElementType.Float) continue;
            var bias = bd.As<float>();
            int channels = wp.Scales.Length;
            // Output channel m reads weight channel m % channels (grouped ConvTranspose keeps M/group channels).
            if (channels != 1 && bias.Length % channels != 0) continue;
            float[]? scales = null;
            var raised = new HashSet<int>();
            double factor = 1;
            for (int m = 0; m < bias.Length; m++)
            {
                int c = channels == 1 ? 0 : m % channels;
                double current = (scales ?? wp.Scales)[c];
                double needed = Math.Abs((double)bias[m]) / ((double)xp.Scales[0] * limit);
                if (needed <= current) continue;
                scales ??= (float[])wp.Scales.Clone();
                scales[c] = MathF.BitIncrement((float)needed);
                factor = Math.Max(factor, scales[c] / (double)wp.Scales[c]);
                raised.Add(c);
            }
            if (scales is null) continue;
            const string raisedNote = " (raised for int32 bias)";
            result[w.Tensor] = wp with { Scales = scales, Method = wp.Method.EndsWith(raisedNote, StringComparison.Ordinal) ? wp.Method : wp.Method + raisedNote };
            adjusted.Add(new Adjustment(n.Name, w.Tensor, raised.Count, factor));
        }
        return (result, adjusted);
    }
}
