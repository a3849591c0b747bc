using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Quant.Engine.Kernels.Common;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// ConvTranspose (float32, any spatial rank):
/// y[n, g*M/group + m, i*stride - padBegin + k*dilation] += Σ_{c in group g} x[n, c, i]·W[c, m, k], started from B[m].
/// Output size per axis is stride*(in-1) + output_padding + (k-1)*dilation + 1 - padBegin - padEnd, or output_shape
/// when given (then the total padding is derived and split begin = total - floor(total/2) for NOTSET/SAME_LOWER,
/// begin = floor(total/2) for SAME_UPPER); auto_pad SAME_* without output_shape targets in*stride.
/// Computed as a packed GEMM into a column buffer (W^T·x per group) followed by a scatter-add (col2im) per
/// output channel, taps in increasing order, so results do not depend on the thread count. When the kernel equals
/// the stride (no padding, no dilation) each output is bias + one tap's sum, computed in the GEMM, and the
/// scatter is a copy. Subnormal weights are used as zero (see <see cref="ConvKernels"/>).
/// </summary>
[KernelFamily]
internal static class ConvTransposeKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("ConvTranspose", 1, setup => new ConvTransposeKernel(setup));
    }

    private sealed class ConvTransposeKernel : IKernel
    {
        private readonly ConvAttributes _attr;
        private readonly int _group;
        private readonly long[]? _outputPadding;
        private readonly long[]? _outputShape;
        private readonly PackedGemm _gemm = PackedGemm.Default;
        private readonly Tensor? _constW;
        private readonly float[]? _packedW;

        public ConvTransposeKernel(KernelSetup setup)
        {
            _attr = ConvAttributes.Parse(setup);
            _group = (int)setup.Node.GetInt("group", 1);
            if (_group < 1) throw setup.Error($"group must be at least 1, got {_group}");
            _outputPadding = setup.Node.GetInts("output_padding");
            _outputShape = setup.Node.GetInts("output_shape");
            _constW = setup.Constant(1);
            if (_constW is { Type: ElementType.Float, Rank: >= 3 } w && w.Shape[0] % _group == 0)
                _packedW = PackWeights(w, _group);
        }

        private float[] PackWeights(Tensor w, int group)
        {
            int cin = w.Shape[0], cg = cin / group, rows = w.Length / Math.Max(1, cin);
            int per = _gemm.PackedASize(rows, cg);
            var packed = new float[Math.Max(1, per * group)];
            for (int g = 0; g < group; g++)
                _gemm.PackA((float[])w.Buffer, g * cg * rows, 1, rows, rows, cg, packed, g * per, flushSubnormals: true);
            return packed;
        }

        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var w = ctx.Required(1);
            var b = ctx.Input(2);
            if (x.Type != ElementType.Float || w.Type != ElementType.Float || (b is not null && b.Type != ElementType.Float))
                throw ctx.Error("ConvTranspose supports float32 tensors only");
            if (x.Rank < 3) throw ctx.Error($"input X must have rank 3 or more (N, C, spatial...), got rank {x.Rank}");
            if (w.Rank != x.Rank) throw ctx.Error($"weights W have rank {w.Rank} but input X has rank {x.Rank}");
            int group = _group, r = x.Rank - 2;
            int batch = x.Shape[0], cin = x.Shape[1], mg = w.Shape[1], m = mg * group;
            if (w.Shape[0] != cin) throw ctx.Error($"input X has {cin} channels but the weights expect {w.Shape[0]}");
            if (cin % group != 0) throw ctx.Error($"{cin} input channels do not divide into {group} groups");
            if (b is not null && (b.Rank != 1 || b.Length != m)) throw ctx.Error($"bias B must have {m} elements, got shape [{string.Join(",", b.Shape)}]");
            int cg = cin / group;
            var inShape = x.Shape[2..];
            var kernel = w.Shape[2..];
            Func<string, Exception> err = msg => ctx.Error(msg);
            _attr.CheckKernel(kernel, err);
            var s = _attr.StridesFor(r, err);
            var d = _attr.DilationsFor(r, err);
            var op = new int[r];
            if (_outputPadding is not null)
            {
                if (_outputPadding.Length != r) throw ctx.Error($"output_padding has {_outputPadding.Length} values but the input has {r} spatial dimensions");
                for (int i = 0; i < r; i++) op[i] = (int)_outputPadding[i];
            }
            var pb = new int[r];
            var outShape = new int[r];
            long[]? target = _outputShape is null ? null : _outputShape.Length == r + 2 ? _outputShape[2..] : _outputShape;
            if (target is not null && target.Length != r) throw ctx.Error($"output_shape has {_outputShape!.Length} values but the input has {r} spatial dimensions");
            for (int i = 0; i < r; i++)
            {
                int full = s[i] * (inShape[i] - 1) + op[i] + (kernel[i] - 1) * d[i] + 1;
                if (target is not null || _attr.AutoPad is "SAME_UPPER" or "SAME_LOWER")
                {
                    outShape[i] = target is not null ? (int)target[i] : inShape[i] * s[i];
                    int total = full - outShape[i];
                    int half = total >> 1; // floor division, also for negative totals
                    pb[i] = _attr.AutoPad == "SAME_UPPER" ? half : total - half;
                }
                else
                {
                    int pe = 0;
                    if (_attr.AutoPad == "NOTSET" && _attr.Pads is not null)
                    {
                        if (_attr.Pads.Length != 2 * r) throw ctx.Error($"pads has {_attr.Pads.Length} values but {2 * r} are needed");
                        pb[i] = (int)_attr.Pads[i];
                        pe = (int)_attr.Pads[i + r];
                    }
                    outShape[i] = full - pb[i] - pe;
                }
                if (outShape[i] < 0) throw ctx.Error($"spatial dimension {i} would have negative size {outShape[i]}");
            }
            var y = ctx.Output(0, ElementType.Float, [batch, m, .. outShape]);
            if (y.Length == 0) return;
            int inPlane = Im2ColNd.Prod(inShape), outPlane = Im2ColNd.Prod(outShape), kProd = Im2ColNd.Prod(kernel);
            int rows = mg * kProd;
            var xd = (float[])x.Buffer;
            var yd = (float[])y.Buffer;
            var bias = b is null ? null : (float[])b.Buffer;
            int perA = _gemm.PackedASize(rows, cg);
            float[]? rentedW = null;
            float[] packed;
            if (_packedW is not null && ReferenceEquals(w, _constW)) packed = _packedW;
            else
            {
                rentedW = ctx.RentScratch(Math.Max(1, perA * group));
                for (int g = 0; g < group; g++) _gemm.PackA((float[])w.Buffer, g * cg * rows, 1, rows, rows, cg, rentedW, g * perA, flushSubnormals: true);
                packed = rentedW;
            }
            var col = ctx.RentScratch(Math.Max(1, group * rows * inPlane));
            // Kernel == stride with no padding or dilation (the det upsampling): every output is exactly one
            // tap of one input, so the GEMM adds the bias itself and the scatter is a plain interleaving copy.
            bool tiles = r == 2 && kernel[0] == s[0] && kernel[1] == s[1] && d[0] == 1 && d[1] == 1 && pb[0] == 0 && pb[1] == 0
                && outShape[0] == inShape[0] * s[0] && outShape[1] == inShape[1] * s[1];
            float[]? rowBias = null;
            int perBias = _gemm.PaddedRows(rows);
            if (tiles && bias is not null)
            {
                rowBias = ctx.RentScratch(perBias * group);
                for (int g = 0; g < group; g++)
                    for (int i = 0; i < rows; i++) rowBias[g * perBias + i] = bias[g * mg + i / kProd];
            }
            try
            {
                for (int n = 0; n < batch; n++)
                {
                    if (tiles)
                    {
                        for (int g = 0; g < group; g++)
                            _gemm.Multiply(ctx, rows, inPlane, cg, packed, g * perA, new StridedB(xd, (n * cin + g * cg) * inPlane, inPlane, 1),
                                col, g * rows * inPlane, inPlane, rowBias, g * perBias);
                        int nb = n;
                        ctx.For(m, o => Interleave(col, (o / mg * rows + o % mg * kProd) * inPlane, inShape[0], inShape[1], s[0], s[1],
                            yd, (nb * m + o) * outPlane));
                        continue;
                    }
                    for (int g = 0; g < group; g++)
                        _gemm.Multiply(ctx, rows, inPlane, cg, packed, g * perA, new StridedB(xd, (n * cin + g * cg) * inPlane, inPlane, 1),
                            col, g * rows * inPlane, inPlane);
                    int nn = n;
                    ctx.For(m, o =>
                    {
                        var yPlane = yd.AsSpan((nn * m + o) * outPlane, outPlane);
                        yPlane.Fill(bias is null ? 0f : bias[o]);
                        int g = o / mg, oc = o % mg;
                        var colG = col.AsSpan(g * rows * inPlane, rows * inPlane);
                        if (r == 2)
                            Col2Im2D(colG, oc, inShape[0], inShape[1], kernel[0], kernel[1], s[0], s[1], d[0], d[1], pb[0], pb[1], outShape[0], outShape[1], yPlane);
                        else if (r == 1)
                            Col2Im2D(colG, oc, 1, inShape[0], 1, kernel[0], 1, s[0], 1, d[0], 0, pb[0], 1, outShape[0], yPlane);
                        else
                            Im2ColNd.Col2Im(colG, oc, inShape, kernel, s, d, pb, outShape, yPlane);
                    });
                }
            }
            finally
            {
                ctx.ReturnScratch(col);
                if (rowBias is not null) ctx.ReturnScratch(rowBias);
                if (rentedW is not null) ctx.ReturnScratch(rentedW);
            }
        }

        /// <summary>y[(iy*sh + ky)*W*sw + ix*sw + kx] = col[((ky*sw + kx)*h + iy)*w + ix] (one output channel's taps).</summary>
        private static unsafe void Interleave(float[] col, int colOffset, int h, int w, int sh, int sw, float[] y, int yOffset)
        {
            int plane = h * w, ow = w * sw;
            if (colOffset + sh * sw * plane > col.Length || yOffset + h * sh * ow > y.Length) throw new ArgumentException("interleave buffers are too small");
            bool v512 = Vector512.IsHardwareAccelerated && Avx512F.IsSupported;
            var lo = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            var hi = Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
            fixed (float* cb = col)
            fixed (float* yb = y)
            {
                for (int iy = 0; iy < h; iy++)
                    for (int ky = 0; ky < sh; ky++)
                    {
                        float* yr = yb + yOffset + (nint)(iy * sh + ky) * ow;
                        float* c0 = cb + colOffset + (nint)(ky * sw) * plane + (nint)iy * w;
                        int ix = 0;
                        if (sw == 2 && v512)
                        {
                            float* c1 = c0 + plane;
                            for (; ix + 16 <= w; ix += 16)
                            {
                                var a = Vector512.Load(c0 + ix);
                                var b = Vector512.Load(c1 + ix);
                                Avx512F.PermuteVar16x32x2(a, lo, b).Store(yr + 2 * ix);
                                Avx512F.PermuteVar16x32x2(a, hi, b).Store(yr + 2 * ix + 16);
                            }
                        }
                        for (; ix < w; ix++)
                            for (int kx = 0; kx < sw; kx++)
                                yr[ix * sw + kx] = c0[(nint)kx * plane + ix];
                    }
            }
        }

        private static unsafe void Col2Im2D(ReadOnlySpan<float> col, int channel, int h, int w, int kh, int kw, int sh, int sw, int dh, int dw,
            int pt, int pl, int oh, int ow, Span<float> y)
        {
            int plane = h * w;
            if (col.Length < (channel + 1) * kh * kw * plane || y.Length < oh * ow) throw new ArgumentException("col2im buffers are too small");
            fixed (float* colBase = col)
            fixed (float* yBase = y)
            {
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++)
                    {
                        float* row = colBase + (nint)((channel * kh + ky) * kw + kx) * plane;
                        int xOff = kx * dw - pl;
                        // ix with 0 <= ix*sw + xOff < ow
                        int lo = xOff >= 0 ? 0 : Math.Min(w, (-xOff + sw - 1) / sw);
                        int hi = ow - xOff <= 0 ? 0 : Math.Min(w, (ow - xOff - 1) / sw + 1);
                        for (int iy = 0; iy < h; iy++)
                        {
                            int oy = iy * sh - pt + ky * dh;
                            if ((uint)oy >= (uint)oh) continue;
                            float* yr = yBase + (nint)oy * ow + xOff;
                            float* cr = row + (nint)iy * w;
                            if (sw == 1)
                                for (int ix = lo; ix < hi; ix++) yr[ix] += cr[ix];
                            else
                                for (int ix = lo; ix < hi; ix++) yr[(nint)ix * sw] += cr[ix];
                        }
                    }
            }
        }
    }
}
