using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Pooling over the spatial axes (2..) of an N x C x D1 x ... tensor.
/// <list type="bullet">
/// <item>GlobalAveragePool: <c>y[n,c] = sum(x[n,c,...]) / count</c>, float sums in vector lanes then added
/// (order differs from a serial sum by rounding only). GlobalMaxPool: max; NaN propagates.</item>
/// <item>AveragePool: mean of the window; the divisor is the number of in-image elements
/// (count_include_pad = 0) or of elements inside the padded extent (count_include_pad = 1, as ONNX
/// Runtime: window positions beyond the explicit pads that ceil_mode adds are never counted).</item>
/// <item>MaxPool: max of the in-image window elements (padding never wins); NaN propagates; ties keep the
/// first element in row-major window order. Optional Indices output: flat index into X
/// (storage_order 0: row-major; 1: the spatial offset is column-major, as the spec says).</item>
/// </list>
/// Output size per axis: floor (or ceil with ceil_mode, dropping a last window that would start
/// beyond the image and left pad) of (in + pads - ((k - 1) * dilation + 1)) / stride + 1; auto_pad
/// SAME_UPPER/SAME_LOWER gives ceil(in / stride) with the extra pad at the end/start; VALID no pads.
/// Float runs vectorized (rows combined along the width, then the window along the width) for 1-D and 2-D;
/// 3-D+ and other element types (MaxPool: double, int8, uint8, ...) run a scalar N-D loop.
/// </summary>
[KernelFamily]
internal static class PoolKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("GlobalAveragePool", 1, _ => new Global(average: true));
        r.Add("GlobalMaxPool", 1, _ => new Global(average: false));
        foreach (var v in new[] { 1, 7, 10, 11, 19 })
            r.Add("AveragePool", v, s => new Windowed(PoolAttributes.Parse(s, average: true)));
        foreach (var v in new[] { 1, 8, 10, 11, 12 })
            r.Add("MaxPool", v, s => new Windowed(PoolAttributes.Parse(s, average: false)));
    }

    private sealed class Global(bool average) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            if (x.Rank < 2) throw ctx.Error($"input must have rank 2 or more (N x C x ...), not {x.Rank}");
            var outShape = x.Shape.ToArray();
            for (int d = 2; d < outShape.Length; d++) outShape[d] = 1;
            int planes = x.Shape[0] * x.Shape[1];
            int inner = planes == 0 ? 0 : x.Length / planes;
            if (inner == 0 && planes > 0) throw ctx.Error("the spatial extent is empty");
            if (x.Type == ElementType.Float)
            {
                var xs = (float[])x.Buffer;
                var ys = (float[])ctx.Output(0, ElementType.Float, outShape).Buffer;
                ctx.For(planes, p =>
                {
                    var plane = xs.AsSpan(p * inner, inner);
                    ys[p] = average ? Sum(plane) / inner : Max(plane);
                });
            }
            else if (x.Type == ElementType.Double)
            {
                var xs = (double[])x.Buffer;
                var ys = (double[])ctx.Output(0, ElementType.Double, outShape).Buffer;
                ctx.For(planes, p =>
                {
                    var plane = xs.AsSpan(p * inner, inner);
                    double acc = average ? 0 : double.NegativeInfinity;
                    foreach (var v in plane) acc = average ? acc + v : (v > acc || double.IsNaN(v) ? v : acc);
                    ys[p] = average ? acc / inner : acc;
                });
            }
            else if (!average && x.Type == ElementType.Int8) IntegerMax<sbyte>(ctx, x, outShape, planes, inner);
            else if (!average && x.Type == ElementType.Int16) IntegerMax<short>(ctx, x, outShape, planes, inner);
            else throw ctx.Error($"{ctx.Node.OpType} supports float and double{(average ? "" : ", int8 and int16")}, not {x.Type.OnnxName()}");
        }

        /// <summary>GlobalMaxPool on the integers of the quantized model (spec §7: selection passes integers unchanged).</summary>
        private static void IntegerMax<T>(KernelContext ctx, Tensor x, int[] outShape, int planes, int inner) where T : unmanaged, INumber<T>
        {
            var xs = (T[])x.Buffer;
            var ys = (T[])ctx.Output(0, x.Type, outShape).Buffer;
            ctx.For(planes, p => ys[p] = System.Numerics.Tensors.TensorPrimitives.Max<T>(xs.AsSpan(p * inner, inner)));
        }
    }

    internal static float Sum(ReadOnlySpan<float> x)
    {
        int i = 0;
        float total = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= 2 * Vector<float>.Count)
        {
            int w = Vector<float>.Count;
            Vector<float> a0 = Vector<float>.Zero, a1 = Vector<float>.Zero;
            for (; i <= x.Length - 2 * w; i += 2 * w)
            {
                a0 += new Vector<float>(x[i..]);
                a1 += new Vector<float>(x[(i + w)..]);
            }
            total = Vector.Sum(a0 + a1);
        }
        for (; i < x.Length; i++) total += x[i];
        return total;
    }

    internal static float Max(ReadOnlySpan<float> x)
    {
        int i = 0;
        float best = float.NegativeInfinity;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<float>.Count)
        {
            var acc = new Vector<float>(float.NegativeInfinity);
            var nan = Vector<int>.Zero;
            for (; i <= x.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                var v = new Vector<float>(x[i..]);
                nan |= ~Vector.Equals(v, v);
                acc = Vector.Max(acc, v);
            }
            if (nan != Vector<int>.Zero) return float.NaN;
            for (int k = 0; k < Vector<float>.Count; k++) best = Math.Max(best, acc[k]);
        }
        for (; i < x.Length; i++)
        {
            if (float.IsNaN(x[i])) return float.NaN;
            if (x[i] > best) best = x[i];
        }
        return best;
    }

    /// <summary>The parsed attributes of an AveragePool/MaxPool node.</summary>
    internal sealed class PoolAttributes
    {
        public required bool Average { get; init; }
        public required int[] Kernel { get; init; }
        public required int[] Strides { get; init; }
        public required int[] Dilations { get; init; }
        public required int[] Pads { get; init; }
        public required string AutoPad { get; init; }
        public bool CeilMode { get; init; }
        public bool CountIncludePad { get; init; }
        public int StorageOrder { get; init; }

        public static PoolAttributes Parse(KernelSetup setup, bool average)
        {
            var node = setup.Node;
            var kernel = ToInts(node.GetInts("kernel_shape")) ?? throw setup.Error("kernel_shape is required");
            int r = kernel.Length;
            if (r == 0) throw setup.Error("kernel_shape is empty");
            var strides = ToInts(node.GetInts("strides")) ?? Enumerable.Repeat(1, r).ToArray();
            var dil = ToInts(node.GetInts("dilations")) ?? Enumerable.Repeat(1, r).ToArray();
            var pads = ToInts(node.GetInts("pads")) ?? new int[2 * r];
            if (strides.Length != r || dil.Length != r || pads.Length != 2 * r)
                throw setup.Error($"kernel_shape has {r} axes but strides, dilations and pads have {strides.Length}, {dil.Length} and {pads.Length} values (pads needs {2 * r})");
            if (kernel.Any(k => k < 1) || strides.Any(s => s < 1) || dil.Any(d => d < 1) || pads.Any(p => p < 0))
                throw setup.Error("kernel_shape, strides and dilations must be positive and pads non-negative");
            var autoPad = node.GetString("auto_pad", "NOTSET");
            if (autoPad is not ("NOTSET" or "SAME_UPPER" or "SAME_LOWER" or "VALID"))
                throw setup.Error($"auto_pad '{autoPad}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
            int storage = (int)node.GetInt("storage_order", 0);
            if (storage is not (0 or 1)) throw setup.Error($"storage_order must be 0 or 1, not {storage}");
            return new PoolAttributes
            {
                Average = average, Kernel = kernel, Strides = strides, Dilations = dil, Pads = pads, AutoPad = autoPad,
                CeilMode = node.GetInt("ceil_mode", 0) != 0,
                CountIncludePad = node.GetInt("count_include_pad", 0) != 0,
                StorageOrder = storage,
            };
        }

        private static int[]? ToInts(long[]? v) => v?.Select(x => checked((int)x)).ToArray();
    }

    /// <summary>Per spatial axis: sizes, and for every output position its window start and the counts the divisor uses.</summary>
    internal sealed class Geometry
    {
        public required int[] In { get; init; }
        public required int[] Out { get; init; }
        public required int[] Kernel { get; init; }
        public required int[] Stride { get; init; }
        public required int[] Dilation { get; init; }
        public required int[] PadBegin { get; init; }
        public required int[] PadEnd { get; init; }
        public bool CountIncludePad { get; init; }
        public int Rank => In.Length;

        /// <summary>First and one-past-last kernel tap inside the image, for output <paramref name="o"/> of <paramref name="axis"/>.</summary>
        public (int Lo, int Hi) Taps(int axis, int o) => TapRange(axis, o, 0, In[axis]);

        /// <summary>Taps that count toward the divisor.</summary>
        public int Count(int axis, int o)
        {
            var (lo, hi) = CountIncludePad ? TapRange(axis, o, -PadBegin[axis], In[axis] + PadEnd[axis]) : Taps(axis, o);
            return Math.Max(0, hi - lo);
        }

        private (int, int) TapRange(int axis, int o, int from, int to)
        {
            int start = o * Stride[axis] - PadBegin[axis], d = Dilation[axis], k = Kernel[axis];
            int lo = start >= from ? 0 : (from - start + d - 1) / d;
            int hi = to <= start ? 0 : Math.Min(k, (to - start + d - 1) / d);
            return (Math.Min(lo, hi), hi);
        }

        public static Geometry Create(PoolAttributes a, ReadOnlySpan<int> input)
        {
            int r = a.Kernel.Length;
            var outs = new int[r]; var pb = new int[r]; var pe = new int[r];
            for (int d = 0; d < r; d++)
            {
                int n = input[d], s = a.Strides[d], ext = (a.Kernel[d] - 1) * a.Dilations[d] + 1;
                switch (a.AutoPad)
                {
                    case "SAME_UPPER" or "SAME_LOWER":
                        {
                            outs[d] = (n + s - 1) / s;
                            int total = Math.Max(0, (outs[d] - 1) * s + ext - n);
                            pb[d] = a.AutoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
                            pe[d] = total - pb[d];
                            break;
                        }
                    case "VALID":
                        outs[d] = n >= ext ? (n - ext) / s + 1 : 0;
                        break;
                    default:
                        {
                            pb[d] = a.Pads[d]; pe[d] = a.Pads[d + r];
                            int span = n + pb[d] + pe[d] - ext;
                            if (span < 0) { outs[d] = 0; break; }
                            outs[d] = (a.CeilMode ? (span + s - 1) / s : span / s) + 1;
                            // As ONNX Runtime and PyTorch: the last window must start inside the image or the begin pad.
                            if (a.CeilMode && (outs[d] - 1) * s >= n + pb[d]) outs[d]--;
                            break;
                        }
                }
            }
            return new Geometry
            {
                In = input.ToArray(), Out = outs, Kernel = a.Kernel, Stride = a.Strides, Dilation = a.Dilations,
                PadBegin = pb, PadEnd = pe, CountIncludePad = a.CountIncludePad,
            };
        }
    }

    private sealed class Windowed(PoolAttributes attrs) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            int r = attrs.Kernel.Length;
            if (x.Rank != r + 2)
                throw ctx.Error($"kernel_shape has {r} spatial axes, so the input must have rank {r + 2}, not {x.Rank}");
            var g = Geometry.Create(attrs, x.Shape.AsSpan(2));
            var outShape = new int[x.Rank];
            outShape[0] = x.Shape[0]; outShape[1] = x.Shape[1];
            g.Out.CopyTo(outShape, 2);
            int planes = x.Shape[0] * x.Shape[1];
            bool wantIdx = !attrs.Average && ctx.WantsOutput(1);
            var y = ctx.Output(0, x.Type, outShape);
            long[]? idx = wantIdx ? (long[])ctx.Output(1, ElementType.Int64, outShape).Buffer : null;
            if (attrs.Average && x.Type is not (ElementType.Float or ElementType.Double))
                throw ctx.Error($"AveragePool supports float and double, not {x.Type.OnnxName()}");

            if (x.Type == ElementType.Float && !wantIdx && r <= 2)
                Pool2D(ctx, (float[])x.Buffer, (float[])y.Buffer, planes, g, attrs.Average);
            else
            {
                switch (x.Type)
                {
                    case ElementType.Float: PoolNd(ctx, (float[])x.Buffer, (float[])y.Buffer, idx, planes, g, attrs.Average, attrs.StorageOrder); break;
                    case ElementType.Double: PoolNd(ctx, (double[])x.Buffer, (double[])y.Buffer, idx, planes, g, attrs.Average, attrs.StorageOrder); break;
                    case ElementType.Float16: PoolNd(ctx, (Half[])x.Buffer, (Half[])y.Buffer, idx, planes, g, false, attrs.StorageOrder); break;
                    case ElementType.Int8: PoolNd(ctx, (sbyte[])x.Buffer, (sbyte[])y.Buffer, idx, planes, g, false, attrs.StorageOrder); break;
                    case ElementType.UInt8: PoolNd(ctx, (byte[])x.Buffer, (byte[])y.Buffer, idx, planes, g, false, attrs.StorageOrder); break;
                    case ElementType.Int16: PoolNd(ctx, (short[])x.Buffer, (short[])y.Buffer, idx, planes, g, false, attrs.StorageOrder); break;
                    default: throw ctx.Error($"MaxPool does not support {x.Type.OnnxName()}");
                }
            }
        }
    }

    /// <summary>
    /// The scalar reference for any rank and element type: every output visits its window taps in
    /// row-major order. Also writes flat argmax indices when <paramref name="indices"/> is given.
    /// </summary>
    internal static void PoolNd<T>(KernelContext? ctx, T[] x, T[] y, long[]? indices, int planes, Geometry g, bool average, int storageOrder)
        where T : unmanaged, INumber<T>
    {
        int r = g.Rank;
        int inPlane = 1, outPlane = 1;
        for (int d = 0; d < r; d++) { inPlane *= g.In[d]; outPlane *= g.Out[d]; }
        var rowStride = new int[r];
        var colStride = new int[r];
        for (int d = r - 1, s = 1; d >= 0; d--) { rowStride[d] = s; s *= g.In[d]; }
        for (int d = 0, s = 1; d < r; d++) { colStride[d] = s; s *= g.In[d]; }
        var idxStride = storageOrder == 1 ? colStride : rowStride;

        void Plane(int p)
        {
            var o = new int[r];
            var lo = new int[r];
            var hi = new int[r];
            var k = new int[r];
            int xBase = p * inPlane;
            for (int flat = 0; flat < outPlane; flat++)
            {
                int count = 1;
                bool empty = false;
                for (int d = 0; d < r; d++)
                {
                    (lo[d], hi[d]) = g.Taps(d, o[d]);
                    if (lo[d] >= hi[d]) empty = true;
                    count *= g.Count(d, o[d]);
                }
                double sum = 0;
                T best = T.Zero;
                long bestIdx = -1;
                bool any = false;
                if (!empty)
                {
                    lo.CopyTo(k, 0);
                    while (true)
                    {
                        int off = 0, idxOff = 0;
                        for (int d = 0; d < r; d++)
                        {
                            int pos = o[d] * g.Stride[d] - g.PadBegin[d] + k[d] * g.Dilation[d];
                            off += pos * rowStride[d];
                            idxOff += pos * idxStride[d];
                        }
                        T v = x[xBase + off];
                        if (average) sum += double.CreateTruncating(v);
                        else if (!any || (T.IsNaN(v) && !T.IsNaN(best)) || v > best)
                        {
                            best = v; bestIdx = (long)xBase + idxOff; any = true;
                        }
                        int dd = r - 1;
                        while (dd >= 0 && ++k[dd] == hi[dd]) { k[dd] = lo[dd]; dd--; }
                        if (dd < 0) break;
                    }
                }
                int at = p * outPlane + flat;
                if (average) y[at] = T.CreateTruncating(sum / count);
                else
                {
                    y[at] = any ? best : T.Zero;
                    if (indices is not null) indices[at] = bestIdx;
                }
                for (int d = r - 1; d >= 0 && ++o[d] == g.Out[d]; d--) o[d] = 0;
            }
        }

        if (outPlane == 0) return;
        if (ctx is null) for (int p = 0; p < planes; p++) Plane(p);
        else ctx.For(planes, Plane);
    }

    /// <summary>
    /// Float pooling for 1 or 2 spatial axes: for each output row the in-image window rows are
    /// combined (sum or max) into a row buffer with vector ops along the width, then the width window
    /// is applied to that buffer, vectorized over 8 outputs at a time where the window lies inside the row.
    /// </summary>
    internal static void Pool2D(KernelContext? ctx, float[] x, float[] y, int planes, Geometry g, bool average)
    {
        bool twoD = g.Rank == 2;
        int H = twoD ? g.In[0] : 1, W = g.In[twoD ? 1 : 0];
        int OH = twoD ? g.Out[0] : 1, OW = g.Out[twoD ? 1 : 0];
        int wa = twoD ? 1 : 0;
        if (OH == 0 || OW == 0) return;

        // Per-axis tables, built once per call.
        var hLo = new int[OH]; var hHi = new int[OH]; var hCnt = new int[OH];
        for (int o = 0; o < OH; o++)
        {
            if (twoD) { (hLo[o], hHi[o]) = g.Taps(0, o); hCnt[o] = g.Count(0, o); }
            else { hLo[o] = 0; hHi[o] = 1; hCnt[o] = 1; }
        }
        var wLo = new int[OW]; var wHi = new int[OW]; var wCnt = new float[OW];
        int sw = g.Stride[wa], dw = g.Dilation[wa], kw = g.Kernel[wa], pw = g.PadBegin[wa];
        for (int o = 0; o < OW; o++) { (wLo[o], wHi[o]) = g.Taps(wa, o); wCnt[o] = g.Count(wa, o); }
        int sh = twoD ? g.Stride[0] : 1, dh = twoD ? g.Dilation[0] : 1, ph = twoD ? g.PadBegin[0] : 0;
        // Outputs whose whole window lies inside the row: [full0, full1).
        int full0 = 0;
        while (full0 < OW && wLo[full0] != 0) full0++;
        int full1 = full0;
        while (full1 < OW && wLo[full1] == 0 && wHi[full1] == kw) full1++;

        void Plane(int p)
        {
            var row = (ctx is null ? null : ctx.RentScratch(W)) ?? new float[W];
            try
            {
                var xp = x.AsSpan(p * H * W, H * W);
                var yp = y.AsSpan(p * OH * OW, OH * OW);
                for (int oh = 0; oh < OH; oh++)
                {
                    var yr = yp.Slice(oh * OW, OW);
                    int lo = hLo[oh], hi = hHi[oh];
                    if (lo >= hi)
                    {
                        yr.Fill(average ? float.NaN : 0f);
                        continue;
                    }
                    int h0 = oh * sh - ph;
                    ReadOnlySpan<float> src;
                    if (hi - lo == 1) src = xp.Slice((h0 + lo * dh) * W, W);
                    else
                    {
                        var acc = row.AsSpan(0, W);
                        xp.Slice((h0 + lo * dh) * W, W).CopyTo(acc);
                        for (int k = lo + 1; k < hi; k++)
                        {
                            var r = xp.Slice((h0 + k * dh) * W, W);
                            if (average) AddInto(acc, r); else MaxInto(acc, r);
                        }
                        src = acc;
                    }
                    float rowCount = hCnt[oh];
                    for (int ow = 0; ow < full0; ow++) yr[ow] = Edge(src, ow);
                    int v = full0;
                    if (Avx2.IsSupported && full1 - full0 >= 8) v = WidthAvx2(src, yr, full0, full1, rowCount);
                    for (; v < full1; v++) yr[v] = Edge(src, v);
                    for (int ow = full1; ow < OW; ow++) yr[ow] = Edge(src, ow);

                    float Edge(ReadOnlySpan<float> s, int ow)
                    {
                        int w0 = ow * sw - pw;
                        int a = wLo[ow], b = wHi[ow];
                        if (a >= b) return average ? float.NaN : 0f;
                        float r = s[w0 + a * dw];
                        for (int k = a + 1; k < b; k++)
                        {
                            float e = s[w0 + k * dw];
                            r = average ? r + e : MaxOf(r, e);
                        }
                        return average ? r / (rowCount * wCnt[ow]) : r;
                    }
                }
            }
            finally
            {
                if (ctx is not null) ctx.ReturnScratch(row);
            }

            unsafe int WidthAvx2(ReadOnlySpan<float> s, Span<float> yr, int from, int to, float rowCount)
            {
                // Window taps of 8 consecutive outputs sit sw apart: gather them.
                var lane = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7) * sw;
                int ow = from;
                fixed (float* sp = s)
                fixed (float* yp = yr)
                fixed (float* cnt = wCnt)
                {
                    for (; ow <= to - 8; ow += 8)
                    {
                        var bases = lane + Vector256.Create(ow * sw - pw);
                        Vector256<float> acc = Avx2.GatherVector256(sp, bases, 4);
                        var nan = Avx.CompareUnordered(acc, acc);
                        for (int k = 1; k < kw; k++)
                        {
                            var e = Avx2.GatherVector256(sp, bases + Vector256.Create(k * dw), 4);
                            if (average) acc = Avx.Add(acc, e);
                            else
                            {
                                nan = Avx.Or(nan, Avx.CompareUnordered(e, e));
                                acc = Avx.Max(acc, e);
                            }
                        }
                        if (average) acc = Avx.Divide(acc, Avx.Multiply(Vector256.Create(rowCount), Avx.LoadVector256(cnt + ow)));
                        else acc = Avx.BlendVariable(acc, Vector256.Create(float.NaN), nan);
                        Avx.Store(yp + ow, acc);
                    }
                }
                return ow;
            }
        }

        if (ctx is null) for (int p = 0; p < planes; p++) Plane(p);
        else ctx.For(planes, Plane);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float MaxOf(float a, float b) => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : (b > a ? b : a);

    private static void AddInto(Span<float> acc, ReadOnlySpan<float> r)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var av = MemoryMarshal.Cast<float, Vector<float>>(acc);
            var rv = MemoryMarshal.Cast<float, Vector<float>>(r);
            for (int k = 0; k < av.Length; k++) av[k] += rv[k];
            i = av.Length * Vector<float>.Count;
        }
        for (; i < acc.Length; i++) acc[i] += r[i];
    }

    private static void MaxInto(Span<float> acc, ReadOnlySpan<float> r)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var av = MemoryMarshal.Cast<float, Vector<float>>(acc);
            var rv = MemoryMarshal.Cast<float, Vector<float>>(r);
            for (int k = 0; k < av.Length; k++)
            {
                var a = av[k]; var b = rv[k];
                // NaN in either operand must survive, which Vector.Max does not promise.
                var nan = ~(Vector.Equals(a, a) & Vector.Equals(b, b));
                av[k] = Vector.ConditionalSelect(nan, new Vector<float>(float.NaN), Vector.Max(a, b));
            }
            i = av.Length * Vector<float>.Count;
        }
        for (; i < acc.Length; i++) acc[i] = MaxOf(acc[i], r[i]);
    }
}
