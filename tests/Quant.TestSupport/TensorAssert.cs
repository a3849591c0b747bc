using Quant.Engine;
using Quant.Onnx;
using Xunit;

namespace Quant.TestSupport;

/// <summary>Comparisons of engine results against a reference (ONNX Runtime or the ONNX test data).</summary>
public static class TensorAssert
{
    public static double[] AsDoubles(Tensor t) => t.Type switch
    {
        ElementType.Float => t.ReadOnlySpan<float>().ToArray().Select(v => (double)v).ToArray(),
        ElementType.Float16 => t.ReadOnlySpan<Half>().ToArray().Select(v => (double)v).ToArray(),
        ElementType.Double => t.ReadOnlySpan<double>().ToArray(),
        ElementType.Int8 => t.ReadOnlySpan<sbyte>().ToArray().Select(v => (double)v).ToArray(),
        ElementType.UInt8 => t.ReadOnlySpan<byte>().ToArray().Select(v => (double)v).ToArray(),
        ElementType.Int16 => t.ReadOnlySpan<short>().ToArray().Select(v => (double)v).ToArray(),
        ElementType.UInt16 => t.ReadOnlySpan<ushort>().ToArray().Select(v => (double)v).ToArray(),
        ElementType.Int32 => t.ReadOnlySpan<int>().ToArray().Select(v => (double)v).ToArray(),
        ElementType.UInt32 => t.ReadOnlySpan<uint>().ToArray().Select(v => (double)v).ToArray(),
        ElementType.Int64 => t.ReadOnlySpan<long>().ToArray().Select(v => (double)v).ToArray(),
        ElementType.UInt64 => t.ReadOnlySpan<ulong>().ToArray().Select(v => (double)v).ToArray(),
        ElementType.Bool => t.ReadOnlySpan<bool>().ToArray().Select(v => v ? 1.0 : 0.0).ToArray(),
        _ => throw new NotSupportedException(t.Type.ToString()),
    };

    public static double Cosine(Tensor a, Tensor b)
    {
        var x = AsDoubles(a); var y = AsDoubles(b);
        double dot = 0, nx = 0, ny = 0;
        for (int i = 0; i < x.Length; i++) { dot += x[i] * y[i]; nx += x[i] * x[i]; ny += y[i] * y[i]; }
        if (nx == 0 && ny == 0) return 1;
        return dot / Math.Sqrt(nx * ny);
    }

    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        var x = AsDoubles(a); var y = AsDoubles(b);
        double m = 0;
        for (int i = 0; i < x.Length; i++) m = Math.Max(m, Math.Abs(x[i] - y[i]));
        return m;
    }

    public static double MaxAbs(Tensor a) => AsDoubles(a).Select(Math.Abs).DefaultIfEmpty(0).Max();

    /// <summary>Shapes and types equal; every element within atol + rtol*|expected| (NaN matches NaN). Integers exact.</summary>
    public static void Close(Tensor expected, Tensor actual, double rtol, double atol, string what)
    {
        Assert.True(expected.Type == actual.Type, $"{what}: type {actual.Type} != expected {expected.Type}");
        Assert.True(expected.Shape.SequenceEqual(actual.Shape), $"{what}: shape [{string.Join(",", actual.Shape)}] != expected [{string.Join(",", expected.Shape)}]");
        if (expected.Type == ElementType.String)
        {
            Assert.Equal(expected.Strings().ToArray(), actual.Strings().ToArray());
            return;
        }
        bool exact = expected.Type is not (ElementType.Float or ElementType.Float16 or ElementType.Double or ElementType.BFloat16);
        var e = AsDoubles(expected); var a = AsDoubles(actual);
        int bad = 0; string first = "";
        for (int i = 0; i < e.Length; i++)
        {
            bool ok = exact ? e[i] == a[i]
                : (double.IsNaN(e[i]) && double.IsNaN(a[i])) || e[i] == a[i] || Math.Abs(e[i] - a[i]) <= atol + rtol * Math.Abs(e[i]);
            if (!ok && bad++ == 0) first = $"first at flat index {i}: {a[i]} vs expected {e[i]}";
        }
        Assert.True(bad == 0, $"{what}: {bad} of {e.Length} elements differ; {first}");
    }
}
