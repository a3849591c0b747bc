using Quant.Core.DeploymentRuntime;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.TestSupport;

/// <summary>
/// Node-by-node comparison with ONNX Runtime: ORT runs the model with its plain kernels and every value
/// exposed as an output; then the engine runs the same model, and each node computes from ORT's values
/// of its inputs (an observer replaces every value the engine produced by ORT's). So each node is judged
/// on its own, not on what float rounding upstream did to its inputs — the end-to-end comparison of a
/// quantized model cannot separate those, because one rounding flip in a QuantizeLinear propagates.
/// </summary>
public static class OrtLockstep
{
    /// <summary>One value produced by a node: how many elements differ in any bit, and by how much (float values).</summary>
    public sealed record NodeResult(Node Node, string Output, ElementType Type, int Length, long Differing, double MaxAbsError, double MaxAbsReference)
    {
        public bool BitExact => Differing == 0;
        public double RelativeError => MaxAbsReference > 0 ? MaxAbsError / MaxAbsReference : MaxAbsError;
        public override string ToString() =>
            $"{Node.OpType} '{Node.Name}' -> '{Output}' {Type.OnnxName()}[{Length}]: {Differing} elements differ" +
            (Type == ElementType.Float ? $", max abs error {MaxAbsError:E2} ({RelativeError:E2} of max |ORT|)" : "");
    }

    /// <summary>ORT's plain kernels (optimizations disabled: the model as written) against the engine, node by node.</summary>
    public static IReadOnlyList<NodeResult> Run(string modelPath, IReadOnlyDictionary<string, Tensor> inputs)
    {
        // Which values exist at run time and their types: one engine run keeping everything.
        var kept = new ValueCache();
        new InferenceSession(OnnxModelReader.Load(modelPath)).Run(inputs, new RunOptions { KeepValues = kept });

        var model = OnnxModelReader.Load(modelPath);
        var graph = model.Graph;
        var exposed = graph.Outputs.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var node in graph.Nodes)
            foreach (var output in node.Outputs)
                if (output.Length > 0 && exposed.Add(output) && kept.TryGet(output, out var value))
                    graph.Outputs.Add(new ValueInfo(output, value.Type, null));
        var dir = TestAssets.TempDir("lockstep");
        try
        {
            // ONNX Runtime returns only graph outputs: a copy of the model exposes every node output as one.
            var everything = Path.Combine(dir, Path.GetFileName(modelPath));
            OnnxModelWriter.Save(model, everything);
            var ort = OrtOracle.Run(everything, inputs, optimization: OrtOptimization.Disabled).Outputs;
            var observer = new Observer(ort);
            new InferenceSession(OnnxModelReader.Load(modelPath)).Run(inputs, new RunOptions { Observer = observer });
            return observer.Results;
        }
        finally
        {
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }

    private sealed class Observer(IReadOnlyDictionary<string, Tensor> ort) : IValueObserver
    {
        public List<NodeResult> Results { get; } = [];

        public Tensor? OnValue(in ObservedValue value)
        {
            if (value.Producer is null) return null;
            if (!ort.TryGetValue(value.Name, out var reference))
                throw new InvalidOperationException($"ONNX Runtime did not return '{value.Name}' of {value.Producer.OpType} '{value.Producer.Name}'");
            var ours = value.Value;
            if (ours.Type != reference.Type || !ours.Shape.AsSpan().SequenceEqual(reference.Shape))
                throw new InvalidOperationException($"{value.Producer.OpType} '{value.Producer.Name}': engine produced {ours}, ONNX Runtime {reference} for '{value.Name}'");
            long differing = 0;
            double maxErr = 0, maxRef = 0;
            if (ours.Type == ElementType.Float)
            {
                var a = ours.ReadOnlySpan<float>();
                var b = reference.ReadOnlySpan<float>();
                for (int i = 0; i < a.Length; i++)
                {
                    maxRef = Math.Max(maxRef, Math.Abs(b[i]));
                    if (BitConverter.SingleToInt32Bits(a[i]) == BitConverter.SingleToInt32Bits(b[i])) continue;
                    differing++;
                    double err = Math.Abs((double)a[i] - b[i]);
                    maxErr = double.IsNaN(err) ? double.PositiveInfinity : Math.Max(maxErr, err);
                }
            }
            else
            {
                // Integer, float16 and bool values: compared element by element on their bytes.
                int size = ours.Bytes().Length / Math.Max(1, ours.Length);
                var a = ours.Bytes();
                var b = reference.Bytes();
                for (int i = 0; i < ours.Length; i++)
                    if (!a.Slice(i * size, size).SequenceEqual(b.Slice(i * size, size))) differing++;
            }
            Results.Add(new NodeResult(value.Producer, value.Name, ours.Type, ours.Length, differing, maxErr, maxRef));
            return reference.Clone();
        }
    }
}
