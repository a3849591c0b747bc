using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Analysis.Compare;

/// <summary>Where a stage first computes NaN or infinity from finite inputs.</summary>
public sealed record NonFiniteOrigin(CompareStage Stage, string Node, string OpType, string Tensor, string Kind, int Sample);

/// <summary>
/// Follows one run's values in plan order and remembers the first node whose output holds NaN or infinity while every
/// input it read was finite: the node that made the problem (later ones only pass it on). Constants folded at plan
/// time are checked through the session; a non-finite model input is reported as such (node null).
/// </summary>
public sealed class NonFiniteLocator(CompareStage stage, Func<string, Tensor?> constant)
{
    private readonly HashSet<string> _nonFinite = new(StringComparer.Ordinal);
    private readonly Dictionary<string, bool> _constantNonFinite = new(StringComparer.Ordinal);

    public NonFiniteOrigin? First { get; private set; }

    /// <summary>Starts a new run (values of the previous one are forgotten; <see cref="First"/> is kept).</summary>
    public void Reset() => _nonFinite.Clear();

    public void Observe(in ObservedValue v, int sample)
    {
        var kind = TensorValues.NonFiniteKind(v.Value);
        if (kind is null) return;
        _nonFinite.Add(v.Name);
        if (First is not null) return;
        if (v.Producer is not { } node)
        {
            First = new NonFiniteOrigin(stage, "", "input", v.Name, kind, sample);
            return;
        }
        if (node.Inputs.Any(i => i.Length > 0 && (_nonFinite.Contains(i) || ConstantNonFinite(i)))) return;
        First = new NonFiniteOrigin(stage, node.Name, node.OpType, v.Name, kind, sample);
    }

    private bool ConstantNonFinite(string name)
    {
        if (_constantNonFinite.TryGetValue(name, out var known)) return known;
        var c = constant(name);
        return _constantNonFinite[name] = c is not null && TensorValues.NonFiniteKind(c) is not null;
    }
}
