using Quant.Core.Config;
using Quant.Core.Precision;
using Quant.Core.Stages;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Tuning;

/// <summary>
/// The tuner's cost model: bit-operations in units of one int8 x int8 multiply-accumulate. A GEMM-type node costs
/// MACs x (activation bits x weight bits) / 64, twice that with <c>ec</c> (two int8 GEMMs); every other computing node
/// costs its output elements x bits² / 64 (one operation per element). Float16 counts as 16 bits, float32 as 32.
/// MACs and element counts come from the shapes of one float engine run on the first evaluation sample.
/// </summary>
/// <remarks>
/// The compile stage's latency estimate (Compile/CostModel) cannot price these changes: it needs a converted and
/// compiled model per variant, and it prices int16 convolutions with the int8 constants (no int16 kernel was fitted),
/// so int16 would look free. Bit-operations rank changes the way accelerators' throughput does (an int16 GEMM is about
/// twice an int8 one, dual int16 four times).
/// </remarks>
public sealed class TuneCost
{
    public const string Description =
        "bit-ops: GEMM MACs x activation bits x weight bits / 64 (x2 with ec), other ops output elements x bits^2 / 64; int8 MAC = 1; shapes from one float engine run";

    private readonly Dictionary<Node, (long Macs, long Elements)> _work = [];

    public TuneCost(OnnxModel model, InferenceSession floatSession, IReadOnlyDictionary<string, Tensor> sample, string modelPath)
    {
        var shapes = new ShapeObserver();
        StageModels.Run(floatSession, sample, modelPath, new RunOptions { Observer = shapes });
        long Count(string name) =>
            shapes.Shapes.TryGetValue(name, out var s) ? s.Aggregate(1L, (a, d) => a * d)
            : model.Graph.Initializers.TryGetValue(name, out var init) ? init.Dims.Aggregate(1L, (a, d) => a * d) : 0;
        long[]? Dims(string name) =>
            shapes.Shapes.TryGetValue(name, out var s) ? s.Select(d => (long)d).ToArray()
            : model.Graph.Initializers.TryGetValue(name, out var init) ? init.Dims : null;
        foreach (var node in model.Graph.Nodes)
        {
            long elements = node.Outputs.Where(o => o.Length > 0).Sum(Count);
            long macs = 0;
            if (node.Inputs.Count > 1 && Dims(node.Inputs[0]) is { } x && Dims(node.Inputs[1]) is { Length: > 0 } w && w[0] > 0)
            {
                long wPerOut = w.Aggregate(1L, (a, d) => a * d) / w[0];
                macs = node.OpType switch
                {
                    "Conv" => Count(node.Outputs[0]) * wPerOut,
                    "ConvTranspose" => x.Aggregate(1L, (a, d) => a * d) * wPerOut,
                    "MatMul" or "Gemm" when x.Length > 0 => Count(node.Outputs[0]) * (node.OpType == "Gemm" && Transposed(node) ? x[0] : x[^1]),
                    _ => 0,
                };
            }
            _work[node] = (macs, elements);
        }
    }

    private static bool Transposed(Node gemm) => gemm.Attributes.TryGetValue("transA", out var a) && a.Int != 0;

    /// <summary>The cost of one node as <paramref name="plan"/> runs it (0 for shape-only and fused nodes).</summary>
    public double Of(NodePrecision n)
    {
        if (n.ShapeOnly || n.FusedInto is not null || !_work.TryGetValue(n.Node, out var work)) return 0;
        double a = Bits(n.Compute);
        if (work.Macs > 0)
        {
            var weight = n.Inputs.FirstOrDefault(i => i.Index == 1);
            double w = weight?.QType is { } q ? Bits(q) : a;
            double ec = weight?.ErrorCompensation == true ? 2 : 1;
            return work.Macs * a * w / 64 * ec;
        }
        return work.Elements * a * a / 64;
    }

    /// <summary>The whole model's cost under <paramref name="plan"/>.</summary>
    public double Of(PrecisionPlan plan) => plan.Nodes.Sum(Of);

    private static double Bits(QType q) => q switch { QType.Int8 => 8, QType.Int16 => 16, QType.Float16 => 16, _ => 32 };

    private sealed class ShapeObserver : IValueObserver
    {
        public Dictionary<string, int[]> Shapes { get; } = new(StringComparer.Ordinal);

        public Tensor? OnValue(in ObservedValue value)
        {
            Shapes[value.Name] = value.Value.Shape.ToArray();
            return null;
        }
    }
}
