using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Calibration;

/// <summary>
/// Runs a qat model layer by layer against its float model: every float value the two models share by name is
/// replaced, once the qat model has produced it, by the float model's value. Each node therefore reads the float
/// model's inputs (and quantizes them as the qat model does), so what a watched value shows is the error of the node
/// that produced it alone, not the error its predecessors accumulated. Bias correction measures shifts this way; the
/// ec measurements compare weights this way.
/// </summary>
public static class LayerwiseRun
{
    /// <summary>Runs one sample; <paramref name="onWatched"/> sees (name, float value, qat value) for each watched value.</summary>
    public static void Run(InferenceSession floatSession, InferenceSession qatSession, IReadOnlyDictionary<string, Tensor> sample,
        IReadOnlySet<string> watched, Action<string, Tensor, Tensor> onWatched)
    {
        var reference = new ValueCache();
        floatSession.Run(sample, new RunOptions { KeepValues = reference });
        qatSession.Run(sample, new RunOptions { Observer = new Replacing(reference, watched, onWatched) });
    }

    private sealed class Replacing(ValueCache reference, IReadOnlySet<string> watched, Action<string, Tensor, Tensor> onWatched) : IValueObserver
    {
        public Tensor? OnValue(in ObservedValue value)
        {
            if (!reference.TryGet(value.Name, out var f) || f.Type != ElementType.Float || value.Value.Type != ElementType.Float
                || !f.Shape.AsSpan().SequenceEqual(value.Value.Shape)) return null;
            if (watched.Contains(value.Name)) onWatched(value.Name, f, value.Value);
            // A copy: the engine recycles the buffers of values it no longer needs.
            return f.Clone();
        }
    }
}
