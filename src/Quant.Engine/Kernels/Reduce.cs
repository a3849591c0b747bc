using System.Numerics;
using System.Numerics.Tensors;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// ReduceSum, ReduceMean, ReduceMax over the given axes (all axes when none are given, unless
/// noop_with_empty_axes = 1, which then copies the input), keepdims (default 1) keeping reduced
/// dimensions as 1. Axes are an attribute before opset 18 (ReduceSum: before 13) and an optional
/// int64 input from then on; negative axes count from the end; repeated axes are an error.
/// Sum accumulates in the element type (floats vectorized, in blocks); Mean = Sum / count
/// (integer division for integer types); Max propagates NaN. An empty reduction gives 0 for Sum,
/// NaN (0/0) for float Mean and the lowest value of the type (−inf for floats) for Max.
/// All numeric types.
/// </summary>
[KernelFamily]
internal static class ReduceKernels
{
    internal enum Kind { Sum, Mean, Max }

    public static void Register(KernelRegistry r)
    {
        foreach (var v in new[] { 1, 11 })
        {
            r.Add("ReduceSum", v, s => FromAttribute(s, Kind.Sum));
            r.Add("ReduceMean", v, s => FromAttribute(s, Kind.Mean));
            r.Add("ReduceMax", v, s => FromAttribute(s, Kind.Max));
        }
        r.Add("ReduceSum", 13, s => FromInput(s, Kind.Sum));
        r.Add("ReduceMean", 18, s => FromInput(s, Kind.Mean));
        r.Add("ReduceMax", 18, s => FromInput(s, Kind.Max));
    }

    private static IKernel FromAttribute(KernelSetup s, Kind kind) =>
        new Reduce(kind, s.Node.GetInts("axes"), axesFromInput: false, s.Node.GetInt("keepdims", 1) != 0, noopWithEmptyAxes: false);

    private static IKernel FromInput(KernelSetup s, Kind kind) =>
        new Reduce(kind, null, axesFromInput: true, s.Node.GetInt("keepdims", 1) != 0, s.Node.GetInt("noop_with_empty_axes", 0) != 0);

    private sealed class Reduce(Kind kind, long[]? attrAxes, bool axesFromInput, bool keepDims, bool noopWithEmptyAxes) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            long[]? axes = attrAxes;
            if (axesFromInput && ctx.Input(1) is { } at)
            {
                if (at.Type != ElementType.Int64) throw ctx.Error($"axes must be int64, not {at.Type.OnnxName()}");
                axes = at.ReadOnlySpan<long>().ToArray();
            }
            var reduced = Reduced(ctx, x.Rank, axes, noopWithEmptyAxes);
            if (reduced is null)
            {
                var copy = ctx.Output(0, x.Type, x.Shape);
                Array.Copy(x.Buffer, copy.Buffer, x.Length);
                return;
            }
            var outShape = OutputShape(x.Shape, reduced, keepDims);
            var y = ctx.Output(0, x.Type, outShape);
            var v = new Visitor { Ctx = ctx, Kind = kind, X = x, Y = y, Reduced = reduced };
            if (!ElementDispatch.Numeric(x.Type, ref v)) throw ctx.Error($"element type {x.Type.OnnxName()} is not supported");
        }
    }

    /// <summary>
    /// Which dimensions the axes reduce (all when none are given); null when none are given and
    /// noop_with_empty_axes asks for a copy. Negative axes count from the end; repeats are an error.
    /// </summary>
    internal static bool[]? Reduced(KernelContext ctx, int rank, long[]? axes, bool noopWithEmptyAxes)
    {
        var reduced = new bool[rank];
        if (axes is null || axes.Length == 0)
        {
            if (noopWithEmptyAxes) return null;
            Array.Fill(reduced, true);
            return reduced;
        }
        foreach (var a0 in axes)
        {
            long a = a0 < 0 ? a0 + rank : a0;
            if (a < 0 || a >= rank) throw ctx.Error($"axis {a0} is out of range for rank {rank}");
            if (reduced[a]) throw ctx.Error($"axis {a0} is repeated");
            reduced[a] = true;
        }
        return reduced;
    }

    /// <summary>The kept dimensions in order, reduced ones as 1 with keepdims.</summary>
    internal static int[] OutputShape(int[] shape, bool[] reduced, bool keepDims)
    {
        var outShape = new List<int>();
        for (int d = 0; d < shape.Length; d++)
        {
            if (!reduced[d]) outShape.Add(shape[d]);
            else if (keepDims) outShape.Add(1);
        }
        return [.. outShape];
    }

    private struct Visitor : INumericVisitor
    {
        public KernelContext Ctx;
        public Kind Kind;
        public Tensor X, Y;
        public bool[] Reduced;

        public readonly void Visit<T>() where T : unmanaged, INumber<T> =>
            Compute<T>(Ctx, Kind, (T[])X.Buffer, X.Shape, Reduced, (T[])Y.Buffer, Y.Length);
    }

    /// <summary>Reduces <paramref name="x"/> (shape <paramref name="shape"/>) over the flagged dimensions into y (kept dimensions in order).</summary>
    internal static void Compute<T>(KernelContext? ctx, Kind kind, T[] x, int[] shape, bool[] reduced, T[] y, int yLength)
        where T : unmanaged, INumber<T>
    {
        var ys = y.AsSpan(0, yLength);
        T init = kind == Kind.Max ? T.CreateSaturating(double.NegativeInfinity) : T.Zero;
        int xLength = Tensor.ElementCount(shape);
        long count = 1;
        for (int d = 0; d < shape.Length; d++) if (reduced[d]) count *= shape[d];
        ys.Fill(init);
        if (xLength == 0)
        {
            if (kind == Kind.Mean && yLength > 0) ys.Fill(Divide(T.Zero, 0));
            return;
        }

        // Collapse into groups of adjacent dimensions that are all reduced or all kept (size-1 dims dropped).
        var sizes = new List<int>();
        var red = new List<bool>();
        for (int d = 0; d < shape.Length; d++)
        {
            if (shape[d] == 1) continue;
            if (red.Count > 0 && red[^1] == reduced[d]) sizes[^1] *= shape[d];
            else { sizes.Add(shape[d]); red.Add(reduced[d]); }
        }
        if (sizes.Count == 0) { sizes.Add(1); red.Add(true); }
        int innerSize = sizes[^1];
        bool innerReduced = red[^1];
        int groups = sizes.Count - 1;

        if (groups == 0 || (groups == 1 && !red[0] && innerReduced))
        {
            // [K, R] (or just [R]): each output element reduces one contiguous run.
            int rows = groups == 0 ? 1 : sizes[0];
            var xr = x;
            ElementwiseChunk.For(ctx, rows, (r0, r1) =>
            {
                for (int r = r0; r < r1; r++)
                {
                    var run = new ReadOnlySpan<T>(xr, r * innerSize, innerSize);
                    y[r] = kind == Kind.Max ? TensorPrimitives.Max(run) : TensorPrimitives.Sum(run);
                }
            }, Math.Max(1, ElementwiseChunk.MinElements / innerSize));
        }
        else
        {
            // General: walk the outer groups with an odometer; the innermost group is either reduced
            // into one output element or combined elementwise into a kept output run.
            var idx = new int[groups];
            var outStride = new int[groups];
            int os = innerReduced ? 1 : innerSize;
            for (int g = groups - 1; g >= 0; g--)
            {
                outStride[g] = red[g] ? 0 : os;
                if (!red[g]) os *= sizes[g];
            }
            int outer = xLength / innerSize;
            int yOff = 0;
            for (int p = 0; p < outer; p++)
            {
                var run = new ReadOnlySpan<T>(x, p * innerSize, innerSize);
                if (innerReduced)
                {
                    T v = kind == Kind.Max ? TensorPrimitives.Max(run) : TensorPrimitives.Sum(run);
                    y[yOff] = kind == Kind.Max ? Max(y[yOff], v) : y[yOff] + v;
                }
                else
                {
                    var dst = y.AsSpan(yOff, innerSize);
                    if (kind == Kind.Max) TensorPrimitives.Max(dst, run, dst);
                    else TensorPrimitives.Add(dst, run, dst);
                }
                for (int g = groups - 1; g >= 0; g--)
                {
                    yOff += outStride[g];
                    if (++idx[g] < sizes[g]) break;
                    yOff -= outStride[g] * sizes[g];
                    idx[g] = 0;
                }
            }
        }
        if (kind == Kind.Mean)
            for (int i = 0; i < ys.Length; i++) ys[i] = Divide(ys[i], count);
    }

    private static T Max<T>(T a, T b) where T : INumber<T> => T.IsNaN(a) || T.IsNaN(b) ? (T.IsNaN(a) ? a : b) : T.Max(a, b);

    private static T Divide<T>(T sum, long count) where T : INumber<T>
    {
        if (count == 0) return T.IsZero(T.Zero / T.One) && typeof(T) != typeof(float) && typeof(T) != typeof(double) && typeof(T) != typeof(Half) ? T.Zero : T.CreateSaturating(double.NaN);
        return sum / T.CreateTruncating(count);
    }
}
