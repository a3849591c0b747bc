using System.Buffers;
using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// <c>quant.build</c> QConvTranspose (docs/quantized-model.md): X (int8/int16), W [C, M/group, k...] (int8/int16
/// constant, symmetric), B (int32, optional), multiplier, shift; ONNX ConvTranspose's attributes. acc[m] = B[m] +
/// Σ (x − z_x)·w over the scatter ONNX defines, then the requantization of <see cref="QGemmOutput"/> per output
/// channel. 1-D and 2-D. Two paths with the same bits: the exact scatter in int64 (reference, and every type), and for
/// int8 × int8 with acc_bits 32 the VNNI GEMM Xᵀ[pixels, C/g] × W[C/g, (M/g)·taps] followed by a scatter-add of its
/// columns, each column carrying its zero-point constant −z_x·Σ_c w[c, j, tap].
/// </summary>
[KernelFamily]
internal static class QConvTransposeKernels
{
    public static void Register(KernelRegistry r) => r.Add("QConvTranspose", 1, s => new Kernel(new QConvTransposePlan(s)), QuantBuildOps.Domain);

    private sealed class Kernel(QConvTransposePlan plan) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var shape = plan.OutputShape(x, m => ctx.Error(m));
            plan.Run(x, ctx.Output(0, plan.Output.To, shape), vector: true, ctx.For);
        }
    }
}

internal sealed class QConvTransposePlan
{
    private readonly ConvAttributes _attr;
    private readonly int _group, _zx, _c, _mg, _kh, _kw, _rank;
    private readonly long[]? _outputPadding, _outputShape;
    private readonly int[] _w;
    private readonly long[] _bias;
    private readonly Lazy<(Int8Weights W, long[] ColSum)[]> _packed;
    private readonly ElementType _wType;
    public QGemmOutput Output { get; }

    public QConvTransposePlan(KernelSetup s)
    {
        _attr = ConvAttributes.Parse(s);
        _group = (int)s.Node.GetInt("group", 1);
        _zx = (int)s.Node.GetInt("x_zero_point", 0);
        _outputPadding = s.Node.GetInts("output_padding");
        _outputShape = s.Node.GetInts("output_shape");
        Output = QGemmOutput.Parse(s, 3);
        var w = s.Constant(1) ?? throw s.Error("the weights W must be a constant initializer");
        if (!QGemmOutput.IsData(w.Type)) throw s.Error($"the weights must be int8 or int16, not {w.Type.OnnxName()}");
        if (w.Rank is not (3 or 4)) throw s.Error($"QConvTranspose supports 1-D and 2-D; W has rank {w.Rank}");
        _rank = w.Rank - 2;
        _c = w.Shape[0];
        _mg = w.Shape[1];
        _kh = _rank == 2 ? w.Shape[2] : 1;
        _kw = w.Shape[^1];
        if (_group < 1 || _c % _group != 0) throw s.Error($"{_c} input channels do not divide into {_group} groups");
        Output.CheckChannels(M, m => s.Error(m));
        _w = QGemmOutput.Widen(w);
        _bias = QGemmOutput.Bias(s, 2, M);
        _wType = w.Type;
        var packed = s.Packed("int8", _group, _c / _group, _mg * _kh * _kw, Pack);
        _packed = new Lazy<(Int8Weights, long[])[]>(() => packed.Value.Select(w => (w, w.ColumnSums())).ToArray());
    }

    private int M => _mg * _group;

    private readonly record struct Geometry(int H, int W, int OH, int OW, int SH, int SW, int DH, int DW, int PT, int PL);

    private Geometry Resolve(Tensor x, Func<string, Exception> error)
    {
        if (!QGemmOutput.IsData(x.Type)) throw error($"X must be int8 or int16, not {x.Type.OnnxName()}");
        if (x.Rank != _rank + 2) throw error($"X has rank {x.Rank} but the weights are for a {_rank}-D transposed convolution");
        if (x.Shape[1] != _c) throw error($"X has {x.Shape[1]} channels but the weights expect {_c}");
        int r = _rank;
        int[] inShape = x.Shape[2..], kernel = _rank == 2 ? [_kh, _kw] : [_kw];
        _attr.CheckKernel(kernel, error);
        var s = _attr.StridesFor(r, error);
        var d = _attr.DilationsFor(r, error);
        var pb = new int[r];
        var outShape = new int[r];
        long[]? target = _outputShape is null ? null : _outputShape.Length == r + 2 ? _outputShape[2..] : _outputShape;
        if (target is not null && target.Length != r) throw error($"output_shape has {_outputShape!.Length} values for {r} spatial dimensions");
        if (_outputPadding is not null && _outputPadding.Length != r) throw error($"output_padding has {_outputPadding.Length} values for {r} spatial dimensions");
        for (int i = 0; i < r; i++)
        {
            int op = _outputPadding is null ? 0 : (int)_outputPadding[i];
            int full = s[i] * (inShape[i] - 1) + op + (kernel[i] - 1) * d[i] + 1;
            if (target is not null || _attr.AutoPad is "SAME_UPPER" or "SAME_LOWER")
            {
                outShape[i] = target is not null ? (int)target[i] : inShape[i] * s[i];
                int total = full - outShape[i], half = total >> 1;
                pb[i] = _attr.AutoPad == "SAME_UPPER" ? half : total - half;
            }
            else
            {
                int pe = 0;
                if (_attr.AutoPad == "NOTSET" && _attr.Pads is not null)
                {
                    if (_attr.Pads.Length != 2 * r) throw error($"pads has {_attr.Pads.Length} values but {2 * r} are needed");
                    pb[i] = (int)_attr.Pads[i];
                    pe = (int)_attr.Pads[i + r];
                }
                outShape[i] = full - pb[i] - pe;
            }
            if (outShape[i] < 0) throw error($"spatial dimension {i} of the output would be {outShape[i]}");
        }
        return r == 2
            ? new Geometry(inShape[0], inShape[1], outShape[0], outShape[1], s[0], s[1], d[0], d[1], pb[0], pb[1])
            : new Geometry(1, inShape[0], 1, outShape[0], 1, s[0], 1, d[0], 0, pb[0]);
    }

    public int[] OutputShape(Tensor x, Func<string, Exception> error)
    {
        var g = Resolve(x, error);
        return _rank == 2 ? [x.Shape[0], M, g.OH, g.OW] : [x.Shape[0], M, g.OW];
    }

    /// <summary>Per group: W[C/g, (M/g)·taps] (the group's weight rows as stored) packed for <see cref="Int8Gemm"/>.</summary>
    private Int8Weights[] Pack()
    {
        int cg = _c / _group, n = _mg * _kh * _kw;
        var result = new Int8Weights[_group];
        for (int grp = 0; grp < _group; grp++)
        {
            var b = new sbyte[cg * n];
            for (int i = 0; i < cg * n; i++) b[i] = (sbyte)_w[grp * cg * n + i];
            result[grp] = Int8Weights.Pack(b, cg, n);
        }
        return result;
    }

    public void Run(Tensor x, Tensor y, bool vector, Action<int, Action<int>> forEach)
    {
        if (vector && !Output.Wide && x.Type == ElementType.Int8 && _wType == ElementType.Int8)
        {
            RunGemm(x, y, forEach);
            return;
        }
        var g = Resolve(x, m => new EngineException(m));
        var xi = QGemmOutput.Widen(x);
        int batch = x.Shape[0], plane = g.H * g.W, ohw = g.OH * g.OW, cg = _c / _group, taps = _kh * _kw;
        forEach = QGemmOutput.Threading(forEach, (long)plane * _c * _mg * taps);
        for (int n = 0; n < batch; n++)
        {
            int xOffset = n * _c * plane, yOffset = n * M * ohw;
            forEach(M, m =>
            {
                int grp = m / _mg, j = m % _mg;
                var acc = new long[ohw];
                acc.AsSpan().Fill(_bias[m]);
                for (int c = grp * cg; c < (grp + 1) * cg; c++)
                {
                    var src = xi.AsSpan(xOffset + c * plane, plane);
                    int wBase = (c * _mg + j) * taps;
                    for (int ih = 0; ih < g.H; ih++)
                        for (int iw = 0; iw < g.W; iw++)
                        {
                            long v = src[ih * g.W + iw] - _zx;
                            if (v == 0) continue;
                            for (int kh = 0; kh < _kh; kh++)
                            {
                                int oh = ih * g.SH - g.PT + kh * g.DH;
                                if ((uint)oh >= (uint)g.OH) continue;
                                for (int kw = 0; kw < _kw; kw++)
                                {
                                    int ow = iw * g.SW - g.PL + kw * g.DW;
                                    if ((uint)ow < (uint)g.OW) acc[oh * g.OW + ow] += v * _w[wBase + kh * _kw + kw];
                                }
                            }
                        }
                }
                Output.Write(acc, m, y, yOffset + m * ohw);
            });
        }
    }

    /// <summary>Output pixels' input rows per GEMM job: a panel of the channels-last input and its columns stay in cache.</summary>
    private const int RowsPerPanel = 128;

    /// <summary>
    /// int8 × int8, acc_bits 32: per group, the input once as channels-last offset bytes, the GEMM
    /// col[pixel, (j, tap)] in panels of pixels (parallel), then per output channel (parallel, each job owns its
    /// plane) the scatter-add of its columns and the requantization.
    /// </summary>
    private void RunGemm(Tensor x, Tensor y, Action<int, Action<int>> forEach)
    {
        var g = Resolve(x, m => new EngineException(m));
        if (Tiles(g))
        {
            RunTiled(x, y, g, forEach);
            return;
        }
        int batch = x.Shape[0], plane = g.H * g.W, ohw = g.OH * g.OW, cg = _c / _group, taps = _kh * _kw, n = _mg * taps;
        forEach = QGemmOutput.Threading(forEach, (long)plane * _c * n);
        var packed = _packed.Value;
        for (int b = 0; b < batch; b++)
        {
            int yOffset = b * M * ohw;
            for (int grp = 0; grp < _group; grp++)
            {
                var (w, sums) = packed[grp];
                int pk = w.PaddedK;
                var hwc = ArrayPool<byte>.Shared.Rent(plane * pk);
                QConvChannelsLast.Write(x, (b * _c + grp * cg) * plane, cg, plane, pk, hwc, forEach);
                var col = ArrayPool<int>.Shared.Rent(plane * n);
                forEach((plane + RowsPerPanel - 1) / RowsPerPanel, job =>
                {
                    int p0 = job * RowsPerPanel, rows = Math.Min(RowsPerPanel, plane - p0);
                    Int8Gemm.RunOffset(hwc.AsSpan(p0 * pk, rows * pk), w, rows, col.AsSpan(p0 * n, rows * n));
                });
                ArrayPool<byte>.Shared.Return(hwc);
                int first = grp * _mg;
                forEach(_mg, j => Scatter(col, sums, g, j, first + j, y, yOffset));
                ArrayPool<int>.Shared.Return(col);
            }
        }
    }

    /// <summary>
    /// The upsampling form (det's 2x2 stride-2 layers): kernel equal to the stride, no dilation, padding or extra output,
    /// so every output pixel receives exactly one tap of exactly one input pixel and input row ih alone makes output rows
    /// ih·SH … ih·SH + SH − 1.
    /// </summary>
    private bool Tiles(Geometry g) =>
        g.DH == 1 && g.DW == 1 && _kh == g.SH && _kw == g.SW && g.PT == 0 && g.PL == 0 && g.OH == g.H * g.SH && g.OW == g.W * g.SW;

    /// <summary>Input channels per group from which the GEMM pays (below it, the taps are summed directly).</summary>
    private const int GemmChannels = 4;

    /// <summary>
    /// <see cref="Tiles"/> geometry, one job per input row (parallel; each job owns its output rows): the row's
    /// columns col[iw, (j, tap)] (the VNNI GEMM on the channels-last row, or the direct sum for a few channels per
    /// group), then per output channel and output row the interleave of its taps with bias and zero-point constants,
    /// requantized straight into Y. The row's columns stay in cache, and no int32 plane is written.
    /// </summary>
    private void RunTiled(Tensor x, Tensor y, Geometry g, Action<int, Action<int>> forEach)
    {
        int batch = x.Shape[0], plane = g.H * g.W, ohw = g.OH * g.OW, cg = _c / _group, taps = _kh * _kw, n = _mg * taps;
        bool gemm = cg >= GemmChannels;
        var packed = gemm ? _packed.Value : null;
        forEach = QGemmOutput.Threading(forEach, (long)plane * _c * n);
        for (int b = 0; b < batch; b++)
        {
            int yOffset = b * M * ohw, xOffset = b * _c * plane;
            var hwc = new byte[gemm ? _group : 0][];
            for (int grp = 0; grp < hwc.Length; grp++)
            {
                hwc[grp] = ArrayPool<byte>.Shared.Rent(plane * packed![grp].W.PaddedK);
                QConvChannelsLast.Write(x, xOffset + grp * cg * plane, cg, plane, packed[grp].W.PaddedK, hwc[grp], forEach);
            }
            forEach(g.H, ih =>
            {
                var col = ArrayPool<int>.Shared.Rent(g.W * n);
                var row = ArrayPool<int>.Shared.Rent(g.OW);
                Span<int> corr = stackalloc int[n];
                for (int grp = 0; grp < _group; grp++)
                {
                    if (gemm)
                    {
                        var (w, sums) = packed![grp];
                        Int8Gemm.RunOffset(hwc[grp].AsSpan(ih * g.W * w.PaddedK, g.W * w.PaddedK), w, g.W, col.AsSpan(0, g.W * n));
                        for (int t = 0; t < n; t++) corr[t] = unchecked((int)(-(long)_zx * sums[t]));
                    }
                    else
                    {
                        DirectColumns(x, xOffset + grp * cg * plane + ih * g.W, plane, g.W, grp * cg, cg, n, col);
                        corr.Clear();
                    }
                    for (int j = 0; j < _mg; j++)
                    {
                        int m = grp * _mg + j, bias = unchecked((int)_bias[m]);
                        for (int kh = 0; kh < _kh; kh++)
                        {
                            int first = j * taps + kh * _kw;
                            for (int iw = 0; iw < g.W; iw++)
                            {
                                int src = iw * n + first, dst = iw * _kw;
                                for (int kw = 0; kw < _kw; kw++) row[dst + kw] = unchecked(col[src + kw] + corr[first + kw] + bias);
                            }
                            Output.Write(row.AsSpan(0, g.OW), m, y, yOffset + m * ohw + (ih * _kh + kh) * g.OW, true);
                        }
                    }
                }
                ArrayPool<int>.Shared.Return(row);
                ArrayPool<int>.Shared.Return(col);
            });
            foreach (var h in hwc) ArrayPool<byte>.Shared.Return(h);
        }
    }

    /// <summary>col[iw, jt] = Σ_c (x[c, iw] − z_x)·W[c, jt] over the group's <paramref name="cg"/> channels, for one input row.</summary>
    private void DirectColumns(Tensor x, int at, int plane, int width, int c0, int cg, int n, int[] col)
    {
        var xs = x.ReadOnlySpan<sbyte>();
        col.AsSpan(0, width * n).Clear();
        for (int c = 0; c < cg; c++)
        {
            var src = xs.Slice(at + c * plane, width);
            var w = _w.AsSpan((c0 + c) * n, n);
            for (int iw = 0; iw < width; iw++)
            {
                int v = src[iw] - _zx;
                var dst = col.AsSpan(iw * n, n);
                for (int t = 0; t < n; t++) dst[t] += v * w[t];
            }
        }
    }

    /// <summary>Output channel <paramref name="m"/> (column block <paramref name="j"/> of its group's GEMM): bias, the
    /// scatter-add of every input pixel's taps with their zero-point constants, then the requantization.</summary>
    private void Scatter(int[] col, long[] sums, Geometry g, int j, int m, Tensor y, int yOffset)
    {
        int ohw = g.OH * g.OW, taps = _kh * _kw, n = _mg * taps;
        var acc = ArrayPool<int>.Shared.Rent(ohw);
        acc.AsSpan(0, ohw).Fill(unchecked((int)_bias[m]));
        Span<int> corr = stackalloc int[taps];
        for (int t = 0; t < taps; t++) corr[t] = unchecked((int)(-(long)_zx * sums[j * taps + t]));
        for (int ih = 0; ih < g.H; ih++)
            for (int kh = 0; kh < _kh; kh++)
            {
                int oh = ih * g.SH - g.PT + kh * g.DH;
                if ((uint)oh >= (uint)g.OH) continue;
                for (int iw = 0; iw < g.W; iw++)
                {
                    int row = (ih * g.W + iw) * n + j * taps + kh * _kw, ow0 = iw * g.SW - g.PL, at = oh * g.OW;
                    for (int kw = 0; kw < _kw; kw++)
                    {
                        int ow = ow0 + kw * g.DW;
                        if ((uint)ow < (uint)g.OW) acc[at + ow] += unchecked(col[row + kw] + corr[kh * _kw + kw]);
                    }
                }
            }
        Output.Write(acc.AsSpan(0, ohw), m, y, yOffset + m * ohw, true);
        ArrayPool<int>.Shared.Return(acc);
    }
}
