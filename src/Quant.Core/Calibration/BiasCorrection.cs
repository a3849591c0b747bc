using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Core.Precision;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Calibration;

/// <summary>
/// Empirical bias correction (<c>model_config.weight.bias_correction</c>, as in AIMET/HMCT): quantizing a GEMM's weight
/// (and input) shifts the mean of its output; per output channel the shift is measured on calibration samples as
/// mean(float output) − mean(fake-quant output) and added to the layer's bias in the qat model.
/// <para>Each layer is measured in isolation: the qat model runs with every float value replaced by the float model's
/// value of the same name, so a layer reads the float model's input (quantized as the qat model quantizes it) and its
/// shift is its own, not its predecessors'. The corrections therefore do not interact and one pass measures them all;
/// a second pass judges each with the configured metric on the same samples and keeps it only where it helps.</para>
/// Conv, ConvTranspose and Gemm with a float bias are corrected; MatMul has no bias to carry the shift and is skipped.
/// <para>A corrected bias keeps <see cref="Int32BiasFit"/>'s promise: it fits half the int32 range at the exported
/// input × weight scale, which the integer contract quantizes it to (spec §4.2). The fit runs before the correction is
/// known, so a channel whose corrected bias would leave that range keeps its bias uncorrected (counted per layer); with
/// int16 inputs the product scale is small enough for this to matter (the fitted channels sit at the limit).</para>
/// Deterministic: fixed samples (the first num_sample), fixed summation order, double accumulators.
/// </summary>
public static class BiasCorrection
{
    /// <summary>Samples used when the config does not say (HMCT's bias_correction without num_sample).</summary>
    public const int DefaultSamples = 8;
    public const string DefaultMetric = "cosine";

    /// <summary>What was corrected in one layer.</summary>
    /// <param name="MeanAbsShift">Mean over channels of |shift| (output units).</param>
    /// <param name="Before">The metric of the layer's fake-quant output against float before correction.</param>
    /// <param name="After">The same after correction.</param>
    /// <param name="Applied">Whether the correction was kept (it improved <paramref name="Before"/>).</param>
    /// <param name="AtInt32Limit">Channels left uncorrected because the corrected bias would not fit int32 at the
    /// exported input × weight scale with <see cref="Int32BiasFit.Headroom"/>.</param>
    public sealed record Layer(string Node, string OpType, string Bias, int Channels, double MeanAbsShift, double MaxAbsShift,
        double Before, double After, bool Applied, int AtInt32Limit = 0);

    public sealed record Result(string Metric, int Samples, IReadOnlyList<Layer> Layers, IReadOnlyDictionary<string, float[]> Biases)
    {
        /// <summary>The qat model with the kept corrections written into its (float) bias initializers.</summary>
        public OnnxModel Apply(OnnxModel qat)
        {
            foreach (var (name, values) in Biases.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                var old = qat.Graph.Initializers[name];
                qat.Graph.Initializers[name] = TensorData.FromFloats(name, old.Dims, values);
            }
            return qat;
        }
    }

    private sealed class Target(NodePrecision node, string bias, float[] values, int axis)
    {
        public readonly NodePrecision Node = node;
        public readonly string Bias = bias;
        public readonly float[] Values = values;
        public readonly int Axis = axis;
        public double[] SumDiff = new double[values.Length];
        public long[] Count = new long[values.Length];
        public double[] Shift = [];
        public int AtInt32Limit;
        // Pass 2 accumulators, before (0) and after (1): dot, |q|², |f|², sum |f−q|, sum (f−q)², elements.
        public readonly double[,] Acc = new double[2, 6];
    }

    /// <summary>Measures and judges the corrections of every quantized GEMM of <paramref name="plan"/>.</summary>
    /// <param name="prepared">The prepared float model the plan was made for.</param>
    /// <param name="qat">The exported qat model (not modified).</param>
    /// <param name="samples">Calibration samples; the first num_sample are used.</param>
    /// <exception cref="QuantException">QB1004 when num_sample exceeds the calibration samples</exception>
    public static Result Run(OnnxModel prepared, PrecisionPlan plan, OnnxModel qat, WeightConfig config, int sampleCount,
        IEnumerable<IReadOnlyDictionary<string, Tensor>> samples, SessionOptions options)
    {
        string metric = config.BiasCorrectionMetric ?? DefaultMetric;
        int n = config.BiasCorrectionSamples ?? Math.Min(DefaultSamples, sampleCount);
        if (n > sampleCount)
            throw new QuantException(ErrorCode.ConfigInvalidValue, config.BiasCorrectionSamplesPosition,
                $"model_config.weight.bias_correction.num_sample: {n} samples asked for, but the calibration data has {sampleCount}; " +
                $"use at most {sampleCount} or add samples");
        var targets = Targets(prepared, plan);
        var byOutput = targets.ToDictionary(t => t.Node.Node.Outputs[0], StringComparer.Ordinal);
        var floatSession = new InferenceSession(prepared, options);
        var qatSession = new InferenceSession(qat, options);
        var used = samples.Take(n).ToList();

        foreach (var sample in used) Pass(floatSession, qatSession, sample, byOutput, judge: false);
        var producers = qat.Graph.Producers();
        foreach (var t in targets)
        {
            t.Shift = new double[t.Values.Length];
            for (int c = 0; c < t.Shift.Length; c++) t.Shift[c] = t.Count[c] == 0 ? 0 : t.SumDiff[c] / t.Count[c];
            if (BiasLimits(qat, producers, t) is not { } limits) continue;
            for (int c = 0; c < t.Shift.Length; c++)
            {
                if (Math.Abs((double)(float)(t.Values[c] + t.Shift[c])) <= limits[c]) continue;
                t.Shift[c] = 0;
                t.AtInt32Limit++;
            }
        }
        foreach (var sample in used) Pass(floatSession, qatSession, sample, byOutput, judge: true);

        var layers = new List<Layer>();
        var biases = new SortedDictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var t in targets)
        {
            double before = Score(t.Acc, 0, metric), after = Score(t.Acc, 1, metric);
            bool better = metric == "cosine" ? after > before : after < before;
            if (better)
            {
                var corrected = new float[t.Values.Length];
                for (int c = 0; c < corrected.Length; c++) corrected[c] = (float)(t.Values[c] + t.Shift[c]);
                biases[t.Bias] = corrected;
            }
            layers.Add(new Layer(t.Node.Name, t.Node.OpType, t.Bias, t.Values.Length,
                t.Shift.Length == 0 ? 0 : t.Shift.Average(Math.Abs), t.Shift.Length == 0 ? 0 : t.Shift.Max(Math.Abs), before, after, better, t.AtInt32Limit));
        }
        return new Result(metric, used.Count, layers, biases);
    }

    /// <summary>Quantized Conv/ConvTranspose/Gemm with a float bias initializer that no other node reads.</summary>
    private static List<Target> Targets(OnnxModel prepared, PrecisionPlan plan)
    {
        var readers = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var node in prepared.Graph.Nodes) foreach (var i in node.Inputs) readers[i] = readers.GetValueOrDefault(i) + 1;
        var targets = new List<Target>();
        foreach (var n in plan.Nodes)
        {
            if (n.ShapeOnly || n.Compute is not (QType.Int8 or QType.Int16) || n.OpType is not ("Conv" or "ConvTranspose" or "Gemm")) continue;
            if (!n.Inputs.Any(i => i.Role == InputRole.Weight && i.QType is QType.Int8 or QType.Int16)) continue;
            var b = n.Inputs.FirstOrDefault(i => i.Role == InputRole.Bias);
            if (b is null || readers.GetValueOrDefault(b.Tensor) != 1) continue;
            if (!prepared.Graph.Initializers.TryGetValue(b.Tensor, out var bd) || bd.Type != ElementType.Float || bd.Dims.Length != 1) continue;
            targets.Add(new Target(n, b.Tensor, bd.As<float>().ToArray(), 1));
        }
        return targets;
    }

    /// <summary>
    /// Per output channel, the largest |bias| that stays within <see cref="Int32BiasFit"/>'s range at the scales the
    /// qat model gives the target's input and weight (read from their DequantizeLinear nodes); null when the input is not
    /// quantized per tensor (no single product scale, no int32 bias: Int32BiasFit leaves such nodes alone too).
    /// </summary>
    private static double[]? BiasLimits(OnnxModel qat, Dictionary<string, Node> producers, Target t)
    {
        var node = qat.Graph.Nodes.FirstOrDefault(n => n.Name == t.Node.Name);
        if (node is null || node.Inputs.Count < 2) return null;
        if (DequantizeScales(qat, producers, node.Inputs[0]) is not { Length: 1 } x) return null;
        if (DequantizeScales(qat, producers, node.Inputs[1]) is not { Length: > 0 } w) return null;
        if (w.Length != 1 && t.Values.Length % w.Length != 0) return null;
        var limits = new double[t.Values.Length];
        double limit = int.MaxValue * Int32BiasFit.Headroom;
        // Output channel m reads weight channel m % channels, as in Int32BiasFit (grouped ConvTranspose).
        for (int m = 0; m < limits.Length; m++) limits[m] = (double)x[0] * w[w.Length == 1 ? 0 : m % w.Length] * limit;
        return limits;
    }

    private static float[]? DequantizeScales(OnnxModel qat, Dictionary<string, Node> producers, string tensor) =>
        producers.TryGetValue(tensor, out var dq) && dq.OpType == "DequantizeLinear" && dq.Inputs.Count > 1
            && qat.Graph.Initializers.TryGetValue(dq.Inputs[1], out var s) && s.Type == ElementType.Float
            ? s.As<float>().ToArray() : null;

    private static void Pass(InferenceSession floatSession, InferenceSession qatSession, IReadOnlyDictionary<string, Tensor> sample,
        Dictionary<string, Target> targets, bool judge) =>
        LayerwiseRun.Run(floatSession, qatSession, sample, targets.Keys.ToHashSet(StringComparer.Ordinal),
            (name, f, q) => Accumulate(targets[name], f, q, judge));

    private static void Accumulate(Target t, Tensor f, Tensor q, bool judge)
    {
        int channels = t.Values.Length;
        var shape = f.Shape;
        if (shape.Length <= t.Axis || shape[t.Axis] != channels) return;
        int inner = 1;
        for (int d = t.Axis + 1; d < shape.Length; d++) inner *= shape[d];
        int outer = f.Length / (channels * inner);
        var fs = f.ReadOnlySpan<float>();
        var qs = q.ReadOnlySpan<float>();
        for (int o = 0; o < outer; o++)
            for (int c = 0; c < channels; c++)
            {
                int start = (o * channels + c) * inner;
                if (!judge)
                {
                    double s = 0;
                    for (int i = start; i < start + inner; i++) s += (double)fs[i] - qs[i];
                    t.SumDiff[c] += s;
                    t.Count[c] += inner;
                    continue;
                }
                double shift = t.Shift[c];
                for (int i = start; i < start + inner; i++)
                {
                    double fv = fs[i], qv = qs[i];
                    Add(t.Acc, 0, fv, qv);
                    Add(t.Acc, 1, fv, qv + shift);
                }
            }
    }

    private static void Add(double[,] acc, int k, double f, double q)
    {
        acc[k, 0] += f * q;
        acc[k, 1] += q * q;
        acc[k, 2] += f * f;
        acc[k, 3] += Math.Abs(f - q);
        acc[k, 4] += (f - q) * (f - q);
        acc[k, 5] += 1;
    }

    private static double Score(double[,] acc, int k, string metric) => metric switch
    {
        "cosine" => acc[k, 1] > 0 && acc[k, 2] > 0 ? acc[k, 0] / Math.Sqrt(acc[k, 1] * acc[k, 2]) : 1,
        "mae" => acc[k, 5] > 0 ? acc[k, 3] / acc[k, 5] : 0,
        _ => acc[k, 5] > 0 ? acc[k, 4] / acc[k, 5] : 0,
    };
}
