using System.Globalization;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Checks;

/// <summary>
/// compiled_vs_quantized's measurement (docs/quantization-spec.md §14): the compiled program and the quantized
/// model must produce identical bytes on every output of every sample, integer or float. Per output it counts the
/// elements whose bytes differ and the largest numeric difference, and remembers the first difference so the
/// report can point at it.
/// </summary>
public sealed class BitExactness
{
    private readonly Dictionary<string, OutputExactness> _byOutput = new(StringComparer.Ordinal);
    private readonly List<string> _order = [];

    /// <summary>One output over all samples compared so far.</summary>
    public sealed class OutputExactness(string output)
    {
        public string Output { get; } = output;
        public int Samples { get; internal set; }
        public long Elements { get; internal set; }
        public long DifferingElements { get; internal set; }
        public int DifferingSamples { get; internal set; }
        /// <summary>max |compiled − quantized| over every element (0 also when only a sign of zero or a NaN payload differs).</summary>
        public double MaxAbsDiff { get; internal set; }
        /// <summary>Where the first difference is: sample index and flat element index; null when none.</summary>
        public (int Sample, long Element, string Detail)? First { get; internal set; }
        public bool Exact => DifferingElements == 0;
    }

    public IReadOnlyList<string> Outputs => _order;
    public OutputExactness Of(string output) => _byOutput[output];

    /// <summary>Compares one sample's outputs: <paramref name="actual"/> (compiled) against <paramref name="reference"/> (quantized).</summary>
    public void Add(int sample, IReadOnlyDictionary<string, Tensor> actual, IReadOnlyDictionary<string, Tensor> reference)
    {
        foreach (var (name, r) in reference)
        {
            if (!_byOutput.TryGetValue(name, out var e)) { _byOutput[name] = e = new OutputExactness(name); _order.Add(name); }
            e.Samples++;
            e.Elements += r.Length;
            if (!actual.TryGetValue(name, out var a))
            {
                Mismatch(e, sample, 0, r.Length, "the compiled program has no such output", double.PositiveInfinity);
                continue;
            }
            if (a.Type != r.Type || !a.Shape.AsSpan().SequenceEqual(r.Shape))
            {
                Mismatch(e, sample, 0, r.Length, $"{a} instead of {r}", double.PositiveInfinity);
                continue;
            }
            if (r.Type == ElementType.String)
            {
                var sa = a.Strings();
                var sr = r.Strings();
                long n = 0; long first = -1;
                for (int i = 0; i < sr.Length; i++)
                    if (!string.Equals(sa[i], sr[i], StringComparison.Ordinal)) { n++; if (first < 0) first = i; }
                if (n > 0) Mismatch(e, sample, first, n, "strings differ", double.PositiveInfinity);
                continue;
            }
            Compare(e, sample, a, r);
        }
    }

    private static void Compare(OutputExactness e, int sample, Tensor a, Tensor r)
    {
        var ab = a.Bytes();
        var rb = r.Bytes();
        if (ab.SequenceEqual(rb)) return;
        int size = ab.Length / Math.Max(1, a.Length);
        long count = 0, first = -1;
        double max = 0;
        for (int i = 0; i < r.Length; i++)
        {
            if (ab.Slice(i * size, size).SequenceEqual(rb.Slice(i * size, size))) continue;
            count++;
            if (first < 0) first = i;
            double d = Math.Abs(Value(a, i) - Value(r, i));
            if (d > max) max = d; // NaN against NaN (another payload) and -0 against +0 count as differing, at 0
        }
        Mismatch(e, sample, first, count,
            string.Create(CultureInfo.InvariantCulture, $"compiled {Value(a, (int)first):R}, quantized {Value(r, (int)first):R}"), max);
    }

    private static void Mismatch(OutputExactness e, int sample, long element, long count, string detail, double maxAbsDiff)
    {
        e.DifferingElements += count;
        e.DifferingSamples++;
        e.MaxAbsDiff = Math.Max(e.MaxAbsDiff, maxAbsDiff);
        e.First ??= (sample, element, detail);
    }

    private static double Value(Tensor t, int i) => t.Type switch
    {
        ElementType.Float => t.ReadOnlySpan<float>()[i],
        ElementType.Float16 => (double)t.ReadOnlySpan<Half>()[i],
        ElementType.Double => t.ReadOnlySpan<double>()[i],
        ElementType.Int8 => t.ReadOnlySpan<sbyte>()[i],
        ElementType.UInt8 => t.ReadOnlySpan<byte>()[i],
        ElementType.Int16 => t.ReadOnlySpan<short>()[i],
        ElementType.UInt16 => t.ReadOnlySpan<ushort>()[i],
        ElementType.Int32 => t.ReadOnlySpan<int>()[i],
        ElementType.UInt32 => t.ReadOnlySpan<uint>()[i],
        ElementType.Int64 => t.ReadOnlySpan<long>()[i],
        ElementType.UInt64 => t.ReadOnlySpan<ulong>()[i],
        ElementType.Bool => t.ReadOnlySpan<bool>()[i] ? 1 : 0,
        _ => double.NaN,
    };
}
