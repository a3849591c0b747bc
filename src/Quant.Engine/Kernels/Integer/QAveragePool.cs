using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// <c>quant.build.QAveragePool</c>, <c>QGlobalAveragePool</c> and <c>QReduceMean</c> (docs/quantized-model.md,
/// spec §8.1): the exact sum S = Σ (q − z_x) over the window in int64, then one rounding,
/// <c>y = Rq(S; Mult(x_scale / (c·y_scale)), z_y)</c> with c the element count. The count depends on the run's shape
/// (and for count_include_pad = 0 on the window position), so the multiplier is derived here from the stored float32
/// scales with the spec's IEEE-double procedure: deterministic on every platform.
/// </summary>
[KernelFamily]
internal static class QAveragePoolKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("QAveragePool", 1, s => new Windowed(s), QuantBuildOps.Domain);
        r.Add("QGlobalAveragePool", 1, s => new Global(s), QuantBuildOps.Domain);
        r.Add("QReduceMean", 1, s => new ReduceMean(s), QuantBuildOps.Domain);
    }

    /// <summary>The attributes every averaging op carries: output type, zero points, clamp and the two scales.</summary>
    private sealed class Averaging
    {
        public Averaging(KernelSetup s)
        {
            (To, Zy, Lo, Hi) = QuantBuildOps.Output(s);
            Zx = (int)s.Node.GetInt("x_zero_point", 0);
            XScale = Scale(s, "x_scale");
            YScale = Scale(s, "y_scale");
        }

        public ElementType To { get; }
        public int Zx { get; }
        public int Zy { get; }
        public int Lo { get; }
        public int Hi { get; }
        public float XScale { get; }
        public float YScale { get; }

        private static float Scale(KernelSetup s, string name)
        {
            if (!s.Node.Attributes.TryGetValue(name, out var a)) throw s.Error($"the '{name}' attribute is required");
            if (!(a.Float > 0) || !float.IsFinite(a.Float)) throw s.Error($"{name} {a.Float} must be positive and finite");
            return a.Float;
        }

        /// <summary>Spec §8.1: Mult(s_x / (c·s_y)); c·s_y is exact in double (c &lt; 2^29).</summary>
        public (int M, int N) For(long count) => Requantize.Mult((double)XScale / (count * (double)YScale));

        public long Output(long sum, (int M, int N) mn) => Math.Clamp(Requantize.Rq(sum, mn.M, mn.N, Zy, To), Lo, Hi);

        public void Check(KernelContext ctx, Tensor x)
        {
            QuantBuildOps.RequireQuantized(ctx, x, "X");
            var (lo, hi) = QuantBuildOps.RangeOf(x.Type);
            if (Zx < lo || Zx > hi) throw ctx.Error($"x_zero_point {Zx} lies outside {x.Type.OnnxName()}");
        }
    }

    private sealed class Global(KernelSetup s) : IKernel
    {
        private readonly Averaging _a = new(s);

        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            _a.Check(ctx, x);
            if (x.Rank < 2) throw ctx.Error($"input must have rank 2 or more (N x C x ...), not {x.Rank}");
            var outShape = x.Shape.ToArray();
            for (int d = 2; d < outShape.Length; d++) outShape[d] = 1;
            int planes = x.Shape[0] * x.Shape[1];
            int inner = planes == 0 ? 0 : x.Length / planes;
            if (inner == 0 && planes > 0) throw ctx.Error("the spatial extent is empty");
            var y = ctx.Output(0, _a.To, outShape);
            if (planes == 0) return;
            var mn = _a.For(inner);
            ctx.For(planes, p => QuantBuildOps.Set(y, p, _a.Output(PlaneSum(x, p * inner, inner) - (long)inner * _a.Zx, mn)));
        }
    }

    /// <summary>Σ q over <paramref name="length"/> consecutive elements, exact in int64.</summary>
    internal static long PlaneSum(Tensor x, int start, int length)
    {
        long sum = 0;
        if (x.Type == ElementType.Int8) foreach (var v in x.ReadOnlySpan<sbyte>().Slice(start, length)) sum += v;
        else foreach (var v in x.ReadOnlySpan<short>().Slice(start, length)) sum += v;
        return sum;
    }

    private sealed class Windowed(KernelSetup s) : IKernel
    {
        private readonly Averaging _a = new(s);
        private readonly PoolKernels.PoolAttributes _attrs = PoolKernels.PoolAttributes.Parse(s, average: true);

        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            _a.Check(ctx, x);
            int r = _attrs.Kernel.Length;
            if (x.Rank != r + 2) throw ctx.Error($"kernel_shape has {r} spatial axes, so the input must have rank {r + 2}, not {x.Rank}");
            var g = PoolKernels.Geometry.Create(_attrs, x.Shape.AsSpan(2));
            var outShape = new int[x.Rank];
            outShape[0] = x.Shape[0]; outShape[1] = x.Shape[1];
            g.Out.CopyTo(outShape, 2);
            var y = ctx.Output(0, _a.To, outShape);
            int inPlane = 1, outPlane = 1;
            for (int d = 0; d < r; d++) { inPlane *= g.In[d]; outPlane *= g.Out[d]; }
            if (outPlane == 0) return;
            // One (m, n) per distinct count (spec §8.1: count_include_pad = 0 varies it at the borders), looked up once
            // per output position before the planes are shared out: the count does not depend on the plane.
            var multipliers = new Dictionary<long, (int, int)>();
            var perPosition = new (int M, int N)[outPlane];
            var pos = new int[r];
            for (int flat = 0; flat < outPlane; flat++)
            {
                long c = 1;
                for (int d = 0; d < r; d++) c *= g.Count(d, pos[d]);
                if (c > 0)
                {
                    if (!multipliers.TryGetValue(c, out var mn)) multipliers[c] = mn = _a.For(c);
                    perPosition[flat] = mn;
                }
                for (int d = r - 1; d >= 0 && ++pos[d] == g.Out[d]; d--) pos[d] = 0;
            }
            if (r == 2 && x.Type == ElementType.Int8)
            {
                Planes2D(ctx, x, y, g, perPosition);
                return;
            }
            var rowStride = new int[r];
            for (int d = r - 1, st = 1; d >= 0; d--) { rowStride[d] = st; st *= g.In[d]; }
            ctx.For(x.Shape[0] * x.Shape[1], p =>
            {
                var o = new int[r]; var lo = new int[r]; var hi = new int[r]; var k = new int[r];
                for (int flat = 0; flat < outPlane; flat++)
                {
                    long count = 1;
                    bool empty = false;
                    for (int d = 0; d < r; d++)
                    {
                        (lo[d], hi[d]) = g.Taps(d, o[d]);
                        if (lo[d] >= hi[d]) empty = true;
                        count *= g.Count(d, o[d]);
                    }
                    long sum = 0;
                    if (!empty)
                    {
                        lo.CopyTo(k, 0);
                        while (true)
                        {
                            int off = p * inPlane;
                            for (int d = 0; d < r; d++) off += (o[d] * g.Stride[d] - g.PadBegin[d] + k[d] * g.Dilation[d]) * rowStride[d];
                            // Padded taps hold the real zero z_x and add nothing; in-image taps add q − z_x.
                            sum += QuantBuildOps.Element(x, off) - _a.Zx;
                            int dd = r - 1;
                            while (dd >= 0 && ++k[dd] == hi[dd]) { k[dd] = lo[dd]; dd--; }
                            if (dd < 0) break;
                        }
                    }
                    // A window wholly in the padding averages nothing: its real value is 0, the integer z_y.
                    QuantBuildOps.Set(y, p * outPlane + flat, empty || count == 0 ? Math.Clamp(_a.Zy, _a.Lo, _a.Hi) : _a.Output(sum, perPosition[flat]));
                    for (int d = r - 1; d >= 0 && ++o[d] == g.Out[d]; d--) o[d] = 0;
                }
            });
        }

        /// <summary>
        /// 2-D int8 windows: each output row's and column's tap range and count computed once, then per plane a plain
        /// double loop over every window on the int8 data. The same sums, counts and (m, n) as the general loop, so the
        /// same bits.
        /// </summary>
        private void Planes2D(KernelContext ctx, Tensor x, Tensor y, PoolKernels.Geometry g, (int M, int N)[] perPosition)
        {
            int oh = g.Out[0], ow = g.Out[1], w = g.In[1], inPlane = g.In[0] * w, outPlane = oh * ow;
            var rows = new (int Lo, int Hi, int Count)[oh];
            var cols = new (int Lo, int Hi, int Count)[ow];
            for (int i = 0; i < oh; i++) { var (lo, hi) = g.Taps(0, i); rows[i] = (lo, hi, g.Count(0, i)); }
            for (int j = 0; j < ow; j++) { var (lo, hi) = g.Taps(1, j); cols[j] = (lo, hi, g.Count(1, j)); }
            int s0 = g.Stride[0], s1 = g.Stride[1], p0 = g.PadBegin[0], p1 = g.PadBegin[1], d0 = g.Dilation[0], d1 = g.Dilation[1];
            ctx.For(x.Shape[0] * x.Shape[1], p =>
            {
                var src = x.ReadOnlySpan<sbyte>().Slice(p * inPlane, inPlane);
                for (int i = 0; i < oh; i++)
                {
                    var row = rows[i];
                    for (int j = 0; j < ow; j++)
                    {
                        var col = cols[j];
                        int at = p * outPlane + i * ow + j;
                        // A window wholly in the padding averages nothing: its real value is 0, the integer z_y.
                        if (row.Lo >= row.Hi || col.Lo >= col.Hi || (long)row.Count * col.Count == 0)
                        {
                            QuantBuildOps.Set(y, at, Math.Clamp(_a.Zy, _a.Lo, _a.Hi));
                            continue;
                        }
                        long sum = 0;
                        for (int kh = row.Lo; kh < row.Hi; kh++)
                        {
                            int rowAt = (i * s0 - p0 + kh * d0) * w;
                            for (int kw = col.Lo; kw < col.Hi; kw++) sum += src[rowAt + j * s1 - p1 + kw * d1];
                        }
                        // Padded taps hold the real zero z_x and add nothing; in-image taps add q − z_x.
                        sum -= (long)(row.Hi - row.Lo) * (col.Hi - col.Lo) * _a.Zx;
                        QuantBuildOps.Set(y, at, _a.Output(sum, perPosition[i * ow + j]));
                    }
                }
            });
        }
    }

    /// <summary>QReduceMean: axes from the <c>axes</c> attribute or from input 1 (ReduceMean-18), keepdims, noop_with_empty_axes.</summary>
    private sealed class ReduceMean(KernelSetup s) : IKernel
    {
        private readonly Averaging _a = new(s);
        private readonly long[]? _axes = s.Node.GetInts("axes");
        private readonly bool _keepDims = s.Node.GetInt("keepdims", 1) != 0;
        private readonly bool _noop = s.Node.GetInt("noop_with_empty_axes", 0) != 0;

        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            _a.Check(ctx, x);
            long[]? axes = _axes;
            if (ctx.Input(1) is { } at)
            {
                if (at.Type != ElementType.Int64) throw ctx.Error($"axes must be int64, not {at.Type.OnnxName()}");
                axes = at.ReadOnlySpan<long>().ToArray();
            }
            var reduced = ReduceKernels.Reduced(ctx, x.Rank, axes, _noop) ?? new bool[x.Rank];
            var outShape = ReduceKernels.OutputShape(x.Shape, reduced, _keepDims);
            long count = 1;
            for (int d = 0; d < x.Rank; d++) if (reduced[d]) count *= x.Shape[d];
            var widened = new long[x.Length];
            QuantBuildOps.Load(x, 0, x.Length, true, _a.Zx, widened);
            int outLength = Tensor.ElementCount(outShape);
            var sums = new long[outLength];
            ReduceKernels.Compute(ctx, ReduceKernels.Kind.Sum, widened, x.Shape, reduced, sums, outLength);
            var y = ctx.Output(0, _a.To, outShape);
            if (outLength == 0) return;
            if (count == 0) throw ctx.Error("ReduceMean over an empty axis has no mean");
            var mn = _a.For(count);
            for (int i = 0; i < outLength; i++) QuantBuildOps.Set(y, i, _a.Output(sums[i], mn));
        }
    }
}
