using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Shape (opset 1, and 15 with start/end), Size, ConstantOfShape (9) and Range (11).
/// Shape: int64 [min(end,r) - max(start,0)] after negative start/end have r added and both are clamped to [0, r].
/// Size: int64 scalar, the element count. ConstantOfShape: the shape input (int64, may contain 0) filled with the
/// single element of <c>value</c> (default float 0). Range: n = max(ceil((limit - start) / delta), 0) elements,
/// y[i] = start + i * delta, computed in double for float types and exactly for integer types.
/// </summary>
[KernelFamily]
internal static class ShapeOpKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("Shape", 1, _ => new ShapeKernel(0, null));
        r.Add("Shape", 15, s => new ShapeKernel(s.Node.GetInt("start", 0), s.Node.Has("end") ? s.Node.GetInt("end", 0) : null));
        r.Add("Size", 1, _ => new SizeKernel());
        r.Add("ConstantOfShape", 9, s => new ConstantOfShapeKernel(s));
        r.Add("Range", 11, _ => new RangeKernel());
    }

    private sealed class ShapeKernel(long start, long? end) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            int r = x.Rank;
            int s = ShapeUtil.ClampIndex(start, r);
            int e = ShapeUtil.ClampIndex(end ?? r, r);
            int n = Math.Max(0, e - s);
            var y = ctx.Output(0, ElementType.Int64, [n]);
            var dst = y.Span<long>();
            for (int i = 0; i < n; i++) dst[i] = x.Shape[s + i];
        }
    }

    private sealed class SizeKernel : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            ctx.Output(0, ElementType.Int64, []).Span<long>()[0] = x.Length;
        }
    }

    private sealed class ConstantOfShapeKernel : IKernel
    {
        private readonly Tensor _value;

        public ConstantOfShapeKernel(KernelSetup setup)
        {
            var data = setup.Node.GetTensor("value");
            if (data is null)
            {
                _value = Tensor.From(new float[] { 0f }, 1);
                return;
            }
            if (data.ElementCount != 1)
                throw setup.Error($"attribute 'value' must hold exactly one element but has shape [{string.Join(",", data.Dims)}]");
            try { _value = Tensor.FromData(data); }
            catch (NotSupportedException e) { throw setup.Error($"attribute 'value': {e.Message}"); }
        }

        public void Run(KernelContext ctx)
        {
            var dims = ShapeUtil.ReadInts(ctx, ctx.Required(0), "shape");
            var shape = new int[dims.Length];
            for (int i = 0; i < dims.Length; i++)
            {
                if (dims[i] < 0 || dims[i] > int.MaxValue) throw ctx.Error($"shape [{string.Join(",", dims)}] has an invalid dimension {dims[i]}");
                shape[i] = (int)dims[i];
            }
            var y = ctx.Output(0, _value.Type, shape);
            if (_value.Type == ElementType.String) y.Strings().Fill(_value.Strings()[0]);
            else
            {
                switch (Elements.Width(_value.Type))
                {
                    case 1: Elements.View<byte>(y).Fill(Elements.View<byte>(_value)[0]); break;
                    case 2: Elements.View<ushort>(y).Fill(Elements.View<ushort>(_value)[0]); break;
                    case 4: Elements.View<uint>(y).Fill(Elements.View<uint>(_value)[0]); break;
                    default: Elements.View<ulong>(y).Fill(Elements.View<ulong>(_value)[0]); break;
                }
            }
        }
    }

    private sealed class RangeKernel : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var start = ctx.Required(0);
            var limit = ctx.Required(1);
            var delta = ctx.Required(2);
            if (start.Length != 1 || limit.Length != 1 || delta.Length != 1)
                throw ctx.Error("start, limit and delta must be scalars");
            if (limit.Type != start.Type || delta.Type != start.Type)
                throw ctx.Error($"start, limit and delta must have one type, got {start.Type.OnnxName()}, {limit.Type.OnnxName()}, {delta.Type.OnnxName()}");
            switch (start.Type)
            {
                case ElementType.Float: FloatRange<float>(ctx, start.Span<float>()[0], limit.Span<float>()[0], delta.Span<float>()[0], v => (float)v); break;
                case ElementType.Double: FloatRange<double>(ctx, start.Span<double>()[0], limit.Span<double>()[0], delta.Span<double>()[0], v => v); break;
                case ElementType.Int16: IntRange<short>(ctx, start.Span<short>()[0], limit.Span<short>()[0], delta.Span<short>()[0], v => (short)v); break;
                case ElementType.Int32: IntRange<int>(ctx, start.Span<int>()[0], limit.Span<int>()[0], delta.Span<int>()[0], v => (int)v); break;
                case ElementType.Int64: IntRange<long>(ctx, start.Span<long>()[0], limit.Span<long>()[0], delta.Span<long>()[0], v => v); break;
                default: throw ctx.Error($"Range does not support {start.Type.OnnxName()}");
            }
        }

        private static void FloatRange<T>(KernelContext ctx, double start, double limit, double delta, Func<double, T> convert) where T : unmanaged
        {
            if (delta == 0) throw ctx.Error("delta must not be 0");
            double count = Math.Ceiling((limit - start) / delta);
            if (double.IsNaN(count)) throw ctx.Error($"range from {start} to {limit} by {delta} has no defined length");
            if (count > int.MaxValue) throw ctx.Error($"range from {start} to {limit} by {delta} has too many elements");
            int n = (int)Math.Max(0, count);
            var y = ctx.Output(0, Tensor.TypeOf<T>(), [n]).Span<T>();
            for (int i = 0; i < n; i++) y[i] = convert(start + i * delta);
        }

        private static void IntRange<T>(KernelContext ctx, long start, long limit, long delta, Func<long, T> convert) where T : unmanaged
        {
            if (delta == 0) throw ctx.Error("delta must not be 0");
            // Exact ceil((limit - start) / delta) in 128-bit so int64 extremes cannot overflow.
            Int128 span = (Int128)limit - start;
            Int128 count = delta > 0 ? (span + delta - 1) / delta : (span + delta + 1) / delta;
            if (count > int.MaxValue) throw ctx.Error($"range from {start} to {limit} by {delta} has too many elements");
            int n = (int)Int128.Max(0, count);
            var y = ctx.Output(0, Tensor.TypeOf<T>(), [n]).Span<T>();
            long v = start;
            for (int i = 0; i < n; i++, v += delta) y[i] = convert(v);
        }
    }
}

/// <summary>Helpers shared by the shape and data-movement kernels.</summary>
internal static class ShapeUtil
{
    /// <summary>The elements of an int64 (or int32) tensor, as shape-like inputs are.</summary>
    public static long[] ReadInts(KernelContext ctx, Tensor t, string what) => t.Type switch
    {
        ElementType.Int64 => t.ReadOnlySpan<long>().ToArray(),
        ElementType.Int32 => ToLongs(t.ReadOnlySpan<int>()),
        _ => throw ctx.Error($"input '{what}' must be int64 but is {t.Type.OnnxName()}"),
    };

    private static long[] ToLongs(ReadOnlySpan<int> v)
    {
        var r = new long[v.Length];
        for (int i = 0; i < v.Length; i++) r[i] = v[i];
        return r;
    }

    /// <summary>Axis in [-rank, rank) to [0, rank); anything else is an error.</summary>
    public static int Axis(KernelContext ctx, long axis, int rank, string what = "axis")
    {
        if (axis < -rank || axis >= rank)
            throw ctx.Error($"{what} {axis} is out of range for rank {rank} (valid: {-rank}..{rank - 1})");
        return (int)(axis < 0 ? axis + rank : axis);
    }

    /// <summary>A start/end index as Shape-15 treats it: negative counts from the end, then clamp to [0, n].</summary>
    public static int ClampIndex(long i, int n)
    {
        if (i < 0) i += n;
        return (int)Math.Clamp(i, 0, n);
    }

    public static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(",", shape.ToArray()) + "]";

    /// <summary>Row-major strides of <paramref name="shape"/> in elements.</summary>
    public static int[] Strides(ReadOnlySpan<int> shape)
    {
        var s = new int[shape.Length];
        int acc = 1;
        for (int i = shape.Length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]; }
        return s;
    }

    public static int Product(ReadOnlySpan<int> shape, int from, int to)
    {
        int p = 1;
        for (int i = from; i < to; i++) p *= shape[i];
        return p;
    }

    /// <summary>
    /// A copy of the input with a new shape (the engine never aliases buffers); the element count must match.
    /// </summary>
    public static void CopyReshaped(KernelContext ctx, Tensor x, int[] shape)
    {
        var y = ctx.Output(0, x.Type, shape);
        if (x.Type == ElementType.String) Array.Copy(x.Buffer, y.Buffer, x.Length);
        else x.Bytes().CopyTo(y.Bytes());
    }
}

/// <summary>
/// Views of tensor elements by width so that data movement is written once per width
/// (byte, ushort, uint, ulong) plus once for strings, and every element type is covered.
/// </summary>
internal static class Elements
{
    /// <summary>Bytes per element, 0 for strings.</summary>
    public static int Width(ElementType t) => t == ElementType.String ? 0 : t.SizeOf();

    /// <summary>The tensor's elements as <typeparamref name="T"/>: string, or a same-width unsigned integer.</summary>
    public static Span<T> View<T>(Tensor t)
    {
        if (typeof(T) == typeof(string)) return new Span<T>((T[])t.Buffer, 0, t.Length);
        var bytes = t.Bytes();
        return MemoryMarshal.CreateSpan(ref Unsafe.As<byte, T>(ref MemoryMarshal.GetReference(bytes)), t.Length);
    }
}
