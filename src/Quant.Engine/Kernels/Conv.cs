using Quant.Engine.Kernels.Common;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Conv (float32, any spatial rank; 1-D and 2-D on the fast paths):
/// y[n, m, o...] = B[m] + Σ_{c in group(m), k...} W[m, c, k...]·x[n, g*C/group + c, o*stride - padBegin + k*dilation]
/// with zero padding. auto_pad NOTSET uses pads; SAME_UPPER/SAME_LOWER give out = ceil(in/stride) with the odd
/// padding unit at the end/begin; VALID pads nothing. Depthwise groups (one input channel per group) run a
/// direct kernel; stride-1 2-D/1-D convolutions run the GEMM micro-kernel on the image read in place
/// (<see cref="DirectConv"/>: 1x1 straight from the input, others from a zero-bordered copy); the rest run the
/// packed GEMM with im2col panels gathered on the fly. Constant weights and bias are packed once when the plan is built.
/// Subnormal weights are used as zero on the GEMM paths (and on the depthwise path when the weights are constant):
/// each term they drop is below 2^-126 times the input, while subnormal operands slow the CPU's multiply-adds
/// by two orders of magnitude (the PaddleOCR SE blocks hold thousands of them).
/// Summation order per output is fixed (see <see cref="PackedGemm"/> and <see cref="Depthwise"/>), so results do
/// not depend on the thread count. NaN and infinities propagate as IEEE arithmetic does.
/// </summary>
[KernelFamily]
internal static class ConvKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("Conv", 1, setup => new ConvKernel(setup));
    }

    private sealed class ConvKernel : IKernel
    {
        private readonly ConvAttributes _attr;
        private readonly long _group;
        private readonly PackedGemm _gemm = PackedGemm.Default;
        private readonly Tensor? _constW;
        private readonly Tensor? _constB;
        private float[]? _packedW;
        private float[]? _paddedBias;
        private float[]? _flushedW;

        public ConvKernel(KernelSetup setup)
        {
            _attr = ConvAttributes.Parse(setup);
            _group = setup.Node.GetInt("group", 1);
            if (_group < 1) throw setup.Error($"group must be at least 1, got {_group}");
            _constW = setup.Constant(1);
            _constB = setup.Constant(2);
            if (_constW is not null && _constW.Type == ElementType.Float && _constW.Rank >= 3)
            {
                var w = _constW;
                int m = w.Shape[0], g = (int)_group;
                if (m % g == 0) _packedW = PackWeights(w, g);
                if (w.Shape[1] == 1) _flushedW = PackedGemm.FlushSubnormals(w.ReadOnlySpan<float>());
                if (_constB is not null && _constB.Type == ElementType.Float && _constB.Rank == 1 && _constB.Length == m && m % g == 0)
                    _paddedBias = PadBias(_constB.ReadOnlySpan<float>(), m, g);
            }
        }

        private float[] PackWeights(Tensor w, int group)
        {
            int m = w.Shape[0], mg = m / group, kg = w.Length / Math.Max(1, m);
            int per = _gemm.PackedASize(mg, kg);
            var packed = new float[Math.Max(1, per * group)];
            var data = (float[])w.Buffer;
            for (int g = 0; g < group; g++)
                _gemm.PackA(data, g * mg * kg, kg, 1, mg, kg, packed, g * per, flushSubnormals: true);
            return packed;
        }

        private float[] PadBias(ReadOnlySpan<float> b, int m, int group)
        {
            int mg = m / group, pr = _gemm.PaddedRows(mg);
            var padded = new float[pr * group];
            for (int g = 0; g < group; g++)
                b.Slice(g * mg, mg).CopyTo(padded.AsSpan(g * pr));
            return padded;
        }

        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var w = ctx.Required(1);
            var b = ctx.Input(2);
            if (x.Type != ElementType.Float || w.Type != ElementType.Float || (b is not null && b.Type != ElementType.Float))
                throw ctx.Error("Conv supports float32 tensors only");
            if (x.Rank < 3) throw ctx.Error($"input X must have rank 3 or more (N, C, spatial...), got rank {x.Rank}");
            if (w.Rank != x.Rank) throw ctx.Error($"weights W have rank {w.Rank} but input X has rank {x.Rank}");
            int group = (int)_group;
            int batch = x.Shape[0], c = x.Shape[1], m = w.Shape[0], cg = w.Shape[1];
            if (c != cg * group) throw ctx.Error($"input X has {c} channels but the weights expect {cg * group} ({cg} per group x {group} groups)");
            if (m % group != 0) throw ctx.Error($"{m} output channels do not divide into {group} groups");
            if (b is not null && (b.Rank != 1 || b.Length != m)) throw ctx.Error($"bias B must have {m} elements, got shape [{string.Join(",", b.Shape)}]");
            int r = x.Rank - 2;
            var inShape = x.Shape[2..];
            var kernel = w.Shape[2..];
            var geo = _attr.Resolve(inShape, kernel, msg => ctx.Error(msg));
            var outShape = geo.OutShape;
            var y = ctx.Output(0, ElementType.Float, [batch, m, .. outShape]);
            int mg = m / group;
            int outPlane = Im2ColNd.Prod(outShape), inPlane = Im2ColNd.Prod(inShape), kProd = Im2ColNd.Prod(kernel);
            if (y.Length == 0) return;
            if (kProd == 0 || cg == 0)
            {
                // An empty reduction: every output is its bias.
                for (int n = 0; n < batch; n++)
                    for (int o = 0; o < m; o++)
                        y.Span<float>().Slice((n * m + o) * outPlane, outPlane).Fill(b is null ? 0f : b.ReadOnlySpan<float>()[o]);
                return;
            }
            var xd = (float[])x.Buffer;
            var yd = (float[])y.Buffer;
            var wd = (float[])w.Buffer;

            if (r <= 2)
            {
                var g2 = r == 2
                    ? new Conv2DGeometry(cg, inShape[0], inShape[1], kernel[0], kernel[1], geo.Strides[0], geo.Strides[1],
                        geo.Dilations[0], geo.Dilations[1], geo.PadBegin[0], geo.PadBegin[1], outShape[0], outShape[1])
                    : new Conv2DGeometry(cg, 1, inShape[0], 1, kernel[0], 1, geo.Strides[0], 1, geo.Dilations[0], 0, geo.PadBegin[0], 1, outShape[0]);
                if (cg == 1)
                {
                    var dw = _flushedW is not null && ReferenceEquals(w, _constW) ? _flushedW : wd;
                    RunDepthwise(ctx, g2, xd, dw, b, yd, batch, c, m, mg, kProd, inPlane, outPlane);
                    return;
                }
            }

            int kg = cg * kProd;
            float[] packed;
            float[]? rentedW = null;
            if (_packedW is not null && ReferenceEquals(w, _constW)) packed = _packedW;
            else
            {
                rentedW = ctx.RentScratch(Math.Max(1, _gemm.PackedASize(mg, kg) * group));
                for (int g = 0; g < group; g++) _gemm.PackA(wd, g * mg * kg, kg, 1, mg, kg, rentedW, g * _gemm.PackedASize(mg, kg), flushSubnormals: true);
                packed = rentedW;
            }
            float[]? bias = null;
            float[]? rentedB = null;
            if (b is not null)
            {
                if (_paddedBias is not null && ReferenceEquals(b, _constB)) bias = _paddedBias;
                else
                {
                    int pr = _gemm.PaddedRows(mg);
                    rentedB = ctx.RentScratch(pr * group);
                    var bs = b.ReadOnlySpan<float>();
                    for (int g = 0; g < group; g++) bs.Slice(g * mg, mg).CopyTo(rentedB.AsSpan(g * pr));
                    bias = rentedB;
                }
            }
            float[]? col = null;
            float[]? padded = null;
            try
            {
                int perA = _gemm.PackedASize(mg, kg), perB = _gemm.PaddedRows(mg);
                for (int n = 0; n < batch; n++)
                    for (int g = 0; g < group; g++)
                    {
                        int xOff = (n * c + g * cg) * inPlane;
                        GemmBSource src;
                        if (r <= 2)
                        {
                            var g2 = r == 2
                                ? new Conv2DGeometry(cg, inShape[0], inShape[1], kernel[0], kernel[1], geo.Strides[0], geo.Strides[1],
                                    geo.Dilations[0], geo.Dilations[1], geo.PadBegin[0], geo.PadBegin[1], outShape[0], outShape[1])
                                : new Conv2DGeometry(cg, 1, inShape[0], 1, kernel[0], 1, geo.Strides[0], 1, geo.Dilations[0], 0, geo.PadBegin[0], 1, outShape[0]);
                            if (DirectConv.Applies(_gemm, g2, mg))
                            {
                                int size = DirectConv.PaddedSize(_gemm, g2);
                                if (size > 0) padded ??= ctx.RentScratch(size);
                                DirectConv.Run(ctx, _gemm, g2, xd, xOff, padded, mg, packed, g * perA, bias, g * perB, yd, (n * m + g * mg) * outPlane);
                                continue;
                            }
                            src = g2.IsPointwise ? new StridedB(xd, xOff, inPlane, 1) : new Conv2DBSource(xd, xOff, g2);
                        }
                        else
                        {
                            col ??= ctx.RentScratch(kg * outPlane);
                            Im2ColNd.Im2Col(xd.AsSpan(xOff), cg, inShape, kernel, geo.Strides, geo.Dilations, geo.PadBegin, outShape, col);
                            src = new StridedB(col, 0, outPlane, 1);
                        }
                        _gemm.Multiply(ctx, mg, outPlane, kg, packed, g * perA, src, yd, (n * m + g * mg) * outPlane, outPlane,
                            bias, g * perB);
                    }
            }
            finally
            {
                if (col is not null) ctx.ReturnScratch(col);
                if (padded is not null) ctx.ReturnScratch(padded);
                if (rentedW is not null) ctx.ReturnScratch(rentedW);
                if (rentedB is not null) ctx.ReturnScratch(rentedB);
            }
        }

        private static void RunDepthwise(KernelContext ctx, Conv2DGeometry g2, float[] xd, float[] wd, Tensor? b, float[] yd,
            int batch, int c, int m, int mg, int taps, int inPlane, int outPlane)
        {
            var bias = b is null ? null : (float[])b.Buffer;
            int scratchSize = Depthwise.ScratchSize(g2);
            int planes = batch * m;
            // Contiguous runs of channels per task: one scratch rental per run, and few enough tasks that the
            // scheduling cost stays small next to the work (small maps have hundreds of cheap channels).
            int tasks = PackedGemm.ParallelTasks(ctx, (long)planes * outPlane * taps, planes);
            void Runs(int t)
            {
                int p0 = (int)((long)planes * t / tasks), p1 = (int)((long)planes * (t + 1) / tasks);
                var scratch = ctx.RentScratch(scratchSize);
                try
                {
                    for (int p = p0; p < p1; p++)
                    {
                        int n = p / m, o = p % m;
                        Depthwise.Run(g2, xd, (n * c + o / mg) * inPlane, wd, o * taps, bias is null ? 0f : bias[o],
                            yd, (n * m + o) * outPlane, scratch);
                    }
                }
                finally { ctx.ReturnScratch(scratch); }
            }
            if (tasks == 1) Runs(0);
            else ctx.For(tasks, Runs);
        }
    }
}

/// <summary>Resolved spatial parameters of one Conv / ConvTranspose call.</summary>
internal sealed record ConvGeometry(int[] Strides, int[] Dilations, int[] PadBegin, int[] PadEnd, int[] OutShape);

/// <summary>Conv-family attributes as written on the node, resolved against actual shapes per call.</summary>
internal sealed class ConvAttributes
{
    public string AutoPad { get; private init; } = "NOTSET";
    public long[]? KernelShape { get; private init; }
    public long[]? Strides { get; private init; }
    public long[]? Dilations { get; private init; }
    public long[]? Pads { get; private init; }

    public static ConvAttributes Parse(KernelSetup setup)
    {
        var n = setup.Node;
        var a = new ConvAttributes
        {
            AutoPad = n.GetString("auto_pad", "NOTSET"),
            KernelShape = n.GetInts("kernel_shape"),
            Strides = n.GetInts("strides"),
            Dilations = n.GetInts("dilations"),
            Pads = n.GetInts("pads"),
        };
        if (a.AutoPad is not ("NOTSET" or "SAME_UPPER" or "SAME_LOWER" or "VALID"))
            throw setup.Error($"auto_pad '{a.AutoPad}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
        if (a.Strides?.Any(s => s < 1) == true) throw setup.Error("strides must be positive");
        if (a.Dilations?.Any(s => s < 1) == true) throw setup.Error("dilations must be positive");
        if (a.Pads?.Any(s => s < 0) == true) throw setup.Error("negative pads are not supported");
        return a;
    }

    public int[] StridesFor(int r, Func<string, Exception> error) => Expand(Strides, r, 1, "strides", error);
    public int[] DilationsFor(int r, Func<string, Exception> error) => Expand(Dilations, r, 1, "dilations", error);

    public void CheckKernel(int[] kernel, Func<string, Exception> error)
    {
        if (KernelShape is not null && !KernelShape.Select(v => (int)v).SequenceEqual(kernel))
            throw error($"kernel_shape [{string.Join(",", KernelShape)}] does not match the weights' spatial shape [{string.Join(",", kernel)}]");
    }

    /// <summary>Conv output geometry: out = floor((in + padBegin + padEnd - ((k-1)*d + 1)) / s) + 1.</summary>
    public ConvGeometry Resolve(int[] inShape, int[] kernel, Func<string, Exception> error)
    {
        int r = inShape.Length;
        CheckKernel(kernel, error);
        var s = StridesFor(r, error);
        var d = DilationsFor(r, error);
        var pb = new int[r];
        var pe = new int[r];
        var o = new int[r];
        for (int i = 0; i < r; i++)
        {
            int ext = (kernel[i] - 1) * d[i] + 1;
            switch (AutoPad)
            {
                case "SAME_UPPER" or "SAME_LOWER":
                    {
                        o[i] = (inShape[i] + s[i] - 1) / s[i];
                        int total = Math.Max(0, (o[i] - 1) * s[i] + ext - inShape[i]);
                        pb[i] = AutoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
                        pe[i] = total - pb[i];
                        break;
                    }
                case "VALID":
                    o[i] = inShape[i] >= ext ? (inShape[i] - ext) / s[i] + 1 : 0;
                    break;
                default:
                    if (Pads is not null)
                    {
                        if (Pads.Length != 2 * r) throw error($"pads has {Pads.Length} values but {2 * r} are needed for {r} spatial dimensions");
                        pb[i] = (int)Pads[i];
                        pe[i] = (int)Pads[i + r];
                    }
                    int span = inShape[i] + pb[i] + pe[i] - ext;
                    if (span < 0) throw error($"spatial dimension {i} ({inShape[i]} padded by {pb[i]}+{pe[i]}) is smaller than the dilated kernel extent {ext}");
                    o[i] = span / s[i] + 1;
                    break;
            }
        }
        return new ConvGeometry(s, d, pb, pe, o);
    }

    private static int[] Expand(long[]? values, int r, int fallback, string name, Func<string, Exception> error)
    {
        if (values is null) return Enumerable.Repeat(fallback, r).ToArray();
        if (values.Length != r) throw error($"{name} has {values.Length} values but the input has {r} spatial dimensions");
        return values.Select(v => (int)v).ToArray();
    }
}
