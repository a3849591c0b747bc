using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// <c>quant.build</c> QConv (docs/quantized-model.md): X (int8/int16), W (int8/int16 constant, symmetric),
/// B (int32, optional), multiplier, shift. acc = B[m] + Σ (x − z_x)·w over ONNX Conv's taps (padding contributes 0),
/// then the requantization of <see cref="QGemmOutput"/> per output channel. 1-D and 2-D convolutions.
/// <para>Three paths give the same bits (the accumulator is the exact integer sum, spec §4.1): the reference
/// (int64 sums, any types), the direct depthwise path (int32 planes of x − z_x, vectorized along rows), and
/// im2col + the VNNI GEMMs (<see cref="Int8Gemm"/> for int8 × int8, <see cref="Int16Gemm"/> otherwise), where the
/// padding holds z_x and the zero point comes back as the per-channel constant B[m] − z_x·Σ_k w[m, k].</para>
/// </summary>
[KernelFamily]
internal static class QConvKernels
{
    public static void Register(KernelRegistry r) => r.Add("QConv", 1, s => new Kernel(new QConvPlan(s)), QuantBuildOps.Domain);

    private sealed class Kernel(QConvPlan plan) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var shape = plan.OutputShape(x, m => ctx.Error(m));
            var y = ctx.Output(0, plan.Output.To, shape);
            plan.Run(x, y, vector: true, ctx.For);
        }
    }
}

/// <summary>A QConv node prepared once: geometry attributes, weights (widened and packed), bias, output parameters.</summary>
internal sealed class QConvPlan
{
    /// <summary>Output pixels per im2col panel: small enough to stay in cache, large enough to amortize a GEMM call.</summary>
    private const int RowsPerPanel = 128;

    private readonly ConvAttributes _attr;
    private readonly int _group, _zx, _m, _cg, _kh, _kw, _rank;
    private readonly ElementType _wType;
    private readonly int[] _w;
    private readonly long[] _bias;
    private readonly long[] _colSum;
    private readonly Lazy<Int8Weights[]> _w8;
    private readonly Lazy<Int16Weights[]> _w16;
    /// <summary>Input channels in quads of 4 (the blocked input of <see cref="RunPixelLanes"/>).</summary>
    private readonly int _quads;
    /// <summary>Dense int8 weights for <see cref="Int8PixelGemm"/>: rows [m][(kh, kw, quad)] of 4 bytes, padded rows zero; null when the node cannot take that path.</summary>
    private readonly int[]? _rows;
    /// <summary>Per padded row: B[m] − z_x·Σ w[m] − 128·Σ w[m] (the VNNI offset), wrapped to int32 like the sums.</summary>
    private readonly int[]? _rowConstants;
    public QGemmOutput Output { get; }

    public QConvPlan(KernelSetup s)
    {
        _attr = ConvAttributes.Parse(s);
        _group = (int)s.Node.GetInt("group", 1);
        _zx = (int)s.Node.GetInt("x_zero_point", 0);
        Output = QGemmOutput.Parse(s, 3);
        var w = s.Constant(1) ?? throw s.Error("the weights W must be a constant initializer");
        if (!QGemmOutput.IsData(w.Type)) throw s.Error($"the weights must be int8 or int16, not {w.Type.OnnxName()}");
        if (w.Rank is not (3 or 4)) throw s.Error($"QConv supports 1-D and 2-D convolutions; W has rank {w.Rank}");
        _rank = w.Rank - 2;
        _wType = w.Type;
        _m = w.Shape[0];
        _cg = w.Shape[1];
        _kh = _rank == 2 ? w.Shape[2] : 1;
        _kw = w.Shape[^1];
        if (_group < 1 || _m % _group != 0) throw s.Error($"{_m} output channels do not divide into {_group} groups");
        Output.CheckChannels(_m, m => s.Error(m));
        _w = QGemmOutput.Widen(w);
        _bias = QGemmOutput.Bias(s, 2, _m);
        int k = K;
        _colSum = new long[_m];
        for (int m = 0; m < _m; m++)
            for (int t = 0; t < k; t++) _colSum[m] += _w[m * k + t];
        _w8 = s.Packed("int8", _group, K, Mg, () => PackGroups(b => Int8Weights.Pack(b.Select(v => (sbyte)v).ToArray(), K, Mg)));
        _quads = (_cg + 3) / 4;
        if (_wType == ElementType.Int8 && _group == 1 && !Output.Wide) (_rows, _rowConstants) = PixelLaneRows();
        _w16 = s.Packed("int16", _group, K, Mg, () => PackGroups(b => _wType == ElementType.Int8
            ? Int16Weights.Pack(b.Select(v => (sbyte)v).ToArray(), K, Mg)
            : Int16Weights.Pack(b.Select(v => (short)v).ToArray(), K, Mg)));
    }

    private int K => _cg * _kh * _kw;
    private int Mg => _m / _group;

    /// <summary>Per group, B[K, Mg] = the group's weights transposed (column j is output channel g·Mg + j).</summary>
    private T[] PackGroups<T>(Func<int[], T> pack)
    {
        var result = new T[_group];
        int k = K, mg = Mg;
        for (int g = 0; g < _group; g++)
        {
            var b = new int[k * mg];
            for (int j = 0; j < mg; j++)
                for (int t = 0; t < k; t++) b[t * mg + j] = _w[(g * mg + j) * k + t];
            result[g] = pack(b);
        }
        return result;
    }

    /// <summary>
    /// The weights as <see cref="Int8PixelGemm"/> rows: group (kh, kw, q) holds channels 4q..4q+3 of tap (kh, kw), the
    /// order <see cref="GatherTaps"/> writes; channels past C hold zero weights, so the sums are W's own. Built from W
    /// when the plan is made (a reorder of M·K bytes), so a compiled model needs no packed copy.
    /// </summary>
    private (int[] Rows, int[] Constants) PixelLaneRows()
    {
        int k = K, groups = _kh * _kw * _quads, mp = Int8PixelGemm.PaddedRows(_m);
        var rows = new int[mp * groups];
        var bytes = System.Runtime.InteropServices.MemoryMarshal.Cast<int, sbyte>(rows.AsSpan());
        var constants = new int[mp];
        for (int m = 0; m < _m; m++)
        {
            for (int c = 0; c < _cg; c++)
                for (int kh = 0; kh < _kh; kh++)
                    for (int kw = 0; kw < _kw; kw++)
                        bytes[(m * groups + (kh * _kw + kw) * _quads + c / 4) * 4 + c % 4] = (sbyte)_w[m * k + (c * _kh + kh) * _kw + kw];
            constants[m] = unchecked((int)(_bias[m] - _zx * _colSum[m] - 128 * _colSum[m]));
        }
        return (rows, constants);
    }

    private readonly record struct Geometry(int H, int W, int OH, int OW, int SH, int SW, int DH, int DW, int PT, int PL);

    private Geometry Resolve(Tensor x, Func<string, Exception> error)
    {
        if (!QGemmOutput.IsData(x.Type)) throw error($"X must be int8 or int16, not {x.Type.OnnxName()}");
        if (x.Rank != _rank + 2) throw error($"X has rank {x.Rank} but the weights are for a {_rank}-D convolution");
        if (x.Shape[1] != _cg * _group) throw error($"X has {x.Shape[1]} channels but the weights expect {_cg * _group}");
        int[] kernel = _rank == 2 ? [_kh, _kw] : [_kw];
        var g = _attr.Resolve(x.Shape[2..], kernel, error);
        return _rank == 2
            ? new Geometry(x.Shape[2], x.Shape[3], g.OutShape[0], g.OutShape[1], g.Strides[0], g.Strides[1], g.Dilations[0], g.Dilations[1], g.PadBegin[0], g.PadBegin[1])
            : new Geometry(1, x.Shape[2], 1, g.OutShape[0], 1, g.Strides[0], 1, g.Dilations[0], 0, g.PadBegin[0]);
    }

    public int[] OutputShape(Tensor x, Func<string, Exception> error)
    {
        var g = Resolve(x, error);
        return _rank == 2 ? [x.Shape[0], _m, g.OH, g.OW] : [x.Shape[0], _m, g.OW];
    }

    /// <summary>Computes y from x. <paramref name="vector"/> false runs the int64 reference; true the fast paths.</summary>
    public void Run(Tensor x, Tensor y, bool vector, Action<int, Action<int>> forEach)
    {
        var g = Resolve(x, m => new EngineException(m));
        // The int view of X serves the reference, the int16 panels and int16 depthwise; int8 is read as stored.
        bool x8 = x.Type == ElementType.Int8;
        var xi = !vector || !x8 || Output.Wide || !(_cg == 1 && Mg == 1) && _wType != ElementType.Int8 ? QGemmOutput.Widen(x) : [];
        int batch = x.Shape[0], c = _cg * _group, plane = g.H * g.W, ohw = g.OH * g.OW;
        forEach = QGemmOutput.Threading(forEach, (long)_m * ohw * K);
        for (int n = 0; n < batch; n++)
        {
            var xn = xi.Length == 0 ? default : new ReadOnlyMemory<int>(xi, n * c * plane, c * plane);
            int yOffset = n * _m * ohw;
            if (!vector)
            {
                var acc = new long[_m * ohw];
                Reference(xn.Span, g, acc);
                for (int m = 0; m < _m; m++) Output.Write(acc.AsSpan(m * ohw, ohw), m, y, yOffset + m * ohw);
            }
            else if (Output.Wide && _cg == 1 && Mg == 1)
            {
                // int16 × int16 depthwise: the same taps in int64 lanes (the int32 bound is not provable there, §4.3).
                forEach(_m, m =>
                {
                    var acc = ArrayPool<long>.Shared.Rent(ohw);
                    Depthwise<int, long>(xn.Span, g, m, acc.AsSpan(0, ohw));
                    Output.Write(acc.AsSpan(0, ohw), m, y, yOffset + m * ohw);
                    ArrayPool<long>.Shared.Return(acc);
                });
            }
            else if (!Output.Wide && _cg == 1 && Mg == 1)
            {
                int xAt = n * c * plane;
                forEach(_m, m =>
                {
                    if (x8)
                    {
                        var shape = new QConvDepthwise.Shape(g.H, g.W, g.OH, g.OW, g.SH, g.SW, g.DH, g.DW, g.PT, g.PL, _kh, _kw);
                        QConvDepthwise.Run(x.ReadOnlySpan<sbyte>().Slice(xAt + m * plane, plane), shape, _w.AsSpan(m * _kh * _kw, _kh * _kw),
                            unchecked((int)_bias[m]), _zx, true, (acc, row) => Output.Write(acc, m, y, yOffset + m * ohw + row * g.OW, true));
                        return;
                    }
                    var acc = ArrayPool<int>.Shared.Rent(ohw);
                    Depthwise<int, int>(xn.Span, g, m, acc.AsSpan(0, ohw));
                    Output.Write(acc.AsSpan(0, ohw), m, y, yOffset + m * ohw, true);
                    ArrayPool<int>.Shared.Return(acc);
                });
            }
            else if (_rows is not null && x8)
                RunPixelLanes(x, n * c * plane, g, y, yOffset, forEach);
            else if (!Output.Wide)
            {
                var rented = ArrayPool<int>.Shared.Rent(_m * ohw);
                var acc = rented;
                bool int8 = x8 && _wType == ElementType.Int8;
                Panels(g, ohw, forEach, (grp, p0, rows) =>
                {
                    int k = K, mg = Mg;
                    var tmp = ArrayPool<int>.Shared.Rent(rows * mg);
                    if (int8)
                    {
                        var col = ArrayPool<sbyte>.Shared.Rent(rows * k);
                        Im2Col(x.ReadOnlySpan<sbyte>().Slice(n * c * plane, c * plane), g, grp, p0, rows, col.AsSpan());
                        Int8Gemm.Run(col.AsSpan(0, rows * k), _w8.Value[grp], rows, tmp.AsSpan(0, rows * mg));
                        ArrayPool<sbyte>.Shared.Return(col);
                    }
                    else
                    {
                        var col = ArrayPool<short>.Shared.Rent(rows * k);
                        Im2Col(xn.Span, g, grp, p0, rows, col.AsSpan());
                        Int16Gemm.RunInt32(col.AsSpan(0, rows * k), _w16.Value[grp], rows, tmp.AsSpan(0, rows * mg));
                        ArrayPool<short>.Shared.Return(col);
                    }
                    for (int j = 0; j < mg; j++)
                    {
                        int m = grp * mg + j;
                        int corr = unchecked((int)(_bias[m] - _zx * _colSum[m]));
                        var dst = acc.AsSpan(m * ohw + p0, rows);
                        for (int r = 0; r < rows; r++) dst[r] = unchecked(tmp[r * mg + j] + corr);
                    }
                    ArrayPool<int>.Shared.Return(tmp);
                });
                forEach(_m, m => Output.Write(acc.AsSpan(m * ohw, ohw), m, y, yOffset + m * ohw, true));
                ArrayPool<int>.Shared.Return(rented);
            }
            else
            {
                var acc = new long[_m * ohw];
                Panels(g, ohw, forEach, (grp, p0, rows) =>
                {
                    int k = K, mg = Mg;
                    var tmp = ArrayPool<long>.Shared.Rent(rows * mg);
                    var col = ArrayPool<short>.Shared.Rent(rows * k);
                    Im2Col(xn.Span, g, grp, p0, rows, col.AsSpan());
                    Int16Gemm.RunInt64(col.AsSpan(0, rows * k), _w16.Value[grp], rows, tmp.AsSpan(0, rows * mg));
                    ArrayPool<short>.Shared.Return(col);
                    for (int j = 0; j < mg; j++)
                    {
                        int m = grp * mg + j;
                        long corr = _bias[m] - _zx * _colSum[m];
                        var dst = acc.AsSpan(m * ohw + p0, rows);
                        for (int r = 0; r < rows; r++) dst[r] = tmp[r * mg + j] + corr;
                    }
                    ArrayPool<long>.Shared.Return(tmp);
                });
                forEach(_m, m => Output.Write(acc.AsSpan(m * ohw, ohw), m, y, yOffset + m * ohw));
            }
        }
    }

    /// <summary>
    /// Dense int8 × int8 (one group): the input once as blocked offset bytes (quads of 4 channels per pixel, spec §5.1's
    /// x + 128, <see cref="Int8PixelGemm.Block"/>), then per panel of output pixels the taps gathered from it (a 1x1
    /// stride-1 convolution reads the blocked input itself) and <see cref="Int8PixelGemm"/> with pixels in the lanes, so
    /// each channel's accumulators come out as one contiguous run and are requantized straight into Y.
    /// </summary>
    private void RunPixelLanes(Tensor x, int xOffset, Geometry g, Tensor y, int yOffset, Action<int, Action<int>> forEach)
    {
        int plane = g.H * g.W, ohw = g.OH * g.OW, groups = _kh * _kw * _quads, mp = Int8PixelGemm.PaddedRows(_m);
        // The slack past the plane is read (and dropped) as the padding pixels of the last 16-pixel tile.
        int pitch = plane + Int8PixelGemm.Pixels;
        var blocked = ArrayPool<int>.Shared.Rent(_quads * pitch);
        Int8PixelGemm.Block(x, xOffset, _cg, plane, pitch, blocked, forEach);
        bool direct = _kh == 1 && _kw == 1 && g.SH == 1 && g.SW == 1 && g.PT == 0 && g.PL == 0 && g.OH == g.H && g.OW == g.W;
        int panel = PanelPixels(ohw, mp), panels = (ohw + panel - 1) / panel;
        forEach(panels, job =>
        {
            int p0 = job * panel, count = Math.Min(panel, ohw - p0), padded = Int8PixelGemm.PaddedPixels(count);
            var acc = ArrayPool<int>.Shared.Rent(mp * padded);
            if (direct)
                Int8PixelGemm.Run(blocked.AsSpan(p0), pitch, groups, padded, _rows!, _rowConstants!, _m, acc, padded);
            else
            {
                var col = ArrayPool<int>.Shared.Rent(groups * padded);
                GatherTaps(blocked, pitch, g, p0, count, col, padded);
                Int8PixelGemm.Run(col.AsSpan(0, groups * padded), padded, groups, padded, _rows!, _rowConstants!, _m, acc, padded);
                ArrayPool<int>.Shared.Return(col);
            }
            for (int m = 0; m < _m; m++) Output.Write(acc.AsSpan(m * padded, count), m, y, yOffset + m * ohw + p0, true);
            ArrayPool<int>.Shared.Return(acc);
        });
        ArrayPool<int>.Shared.Return(blocked);
    }

    /// <summary>
    /// Output pixels per panel: the panel's accumulators (padded rows × pixels) stay within 256 KiB, and a small image
    /// still splits into about four panels so two threads share it.
    /// </summary>
    private static int PanelPixels(int ohw, int paddedRows)
    {
        int most = Math.Clamp(65536 / paddedRows / Int8PixelGemm.Pixels * Int8PixelGemm.Pixels, 2 * Int8PixelGemm.Pixels, 512);
        return Math.Min(most, Int8PixelGemm.PaddedPixels((ohw + 3) / 4));
    }

    /// <summary>
    /// Pixels [p0, p0 + count) of the tap matrix: group (kh, kw, q) of pixel p at (group · stride + p − p0), read from the
    /// blocked input; taps in the padding hold z_x + 128 in every byte. Runs of one output row are copied whole.
    /// </summary>
    private void GatherTaps(int[] blocked, int pitch, Geometry g, int p0, int count, int[] col, int stride)
    {
        int pad = (byte)(_zx + 128) * 0x01010101;
        for (int p = p0; p < p0 + count;)
        {
            int oh = p / g.OW, ow0 = p % g.OW, len = Math.Min(g.OW - ow0, p0 + count - p), j0 = p - p0;
            for (int kh = 0; kh < _kh; kh++)
            {
                int ih = oh * g.SH - g.PT + kh * g.DH;
                for (int kw = 0; kw < _kw; kw++)
                {
                    int first = (kh * _kw + kw) * _quads;
                    if ((uint)ih >= (uint)g.H)
                    {
                        for (int q = 0; q < _quads; q++) col.AsSpan((first + q) * stride + j0, len).Fill(pad);
                        continue;
                    }
                    // Output columns whose tap lands inside the row: iw = ow·SW − PL + kw·DW in [0, W).
                    int shift = kw * g.DW - g.PL, need = -shift, last = g.W - 1 - shift;
                    int lo = need <= 0 ? 0 : (need + g.SW - 1) / g.SW, hi = last < 0 ? 0 : last / g.SW + 1;
                    lo = Math.Clamp(lo, ow0, ow0 + len);
                    hi = Math.Clamp(hi, lo, ow0 + len);
                    for (int q = 0; q < _quads; q++)
                    {
                        var dst = col.AsSpan((first + q) * stride + j0, len);
                        dst[..(lo - ow0)].Fill(pad);
                        dst[(hi - ow0)..].Fill(pad);
                        var src = blocked.AsSpan(q * pitch + ih * g.W);
                        if (hi == lo) continue;
                        if (g.SW == 1) src.Slice(lo + shift, hi - lo).CopyTo(dst[(lo - ow0)..]);
                        else for (int ow = lo; ow < hi; ow++) dst[ow - ow0] = src[ow * g.SW + shift];
                    }
                }
            }
            p += len;
        }
    }

    /// <summary>Splits the output pixels of every group into panels and runs <paramref name="body"/>(group, first pixel, count) on each.</summary>
    private void Panels(Geometry g, int ohw, Action<int, Action<int>> forEach, Action<int, int, int> body)
    {
        int panels = (ohw + RowsPerPanel - 1) / RowsPerPanel;
        forEach(_group * panels, job =>
        {
            int grp = job / panels, p0 = job % panels * RowsPerPanel;
            body(grp, p0, Math.Min(RowsPerPanel, ohw - p0));
        });
    }

    /// <summary>The exact sum in int64, tap by tap: the definition of spec §4.1.</summary>
    private void Reference(ReadOnlySpan<int> x, Geometry g, Span<long> acc)
    {
        int k = K, mg = Mg;
        for (int m = 0; m < _m; m++)
        {
            int grp = m / mg;
            for (int oh = 0; oh < g.OH; oh++)
                for (int ow = 0; ow < g.OW; ow++)
                {
                    long s = _bias[m];
                    for (int c = 0; c < _cg; c++)
                    {
                        int plane = (grp * _cg + c) * g.H * g.W;
                        for (int kh = 0; kh < _kh; kh++)
                        {
                            int ih = oh * g.SH - g.PT + kh * g.DH;
                            if ((uint)ih >= (uint)g.H) continue;
                            for (int kw = 0; kw < _kw; kw++)
                            {
                                int iw = ow * g.SW - g.PL + kw * g.DW;
                                if ((uint)iw >= (uint)g.W) continue;
                                s += (long)(x[plane + ih * g.W + iw] - _zx) * _w[m * k + (c * _kh + kh) * _kw + kw];
                            }
                        }
                    }
                    acc[m * g.OH * g.OW + oh * g.OW + ow] = s;
                }
        }
    }

    /// <summary>
    /// One depthwise channel in int32 (the proven bound of acc_bits 32 covers every partial sum): a zero-bordered
    /// plane of x − z_x, then per tap a multiply-add of whole output rows (vectorized when the stride is 1).
    /// </summary>
    private void Depthwise<TX, TA>(ReadOnlySpan<TX> x, Geometry g, int m, Span<TA> acc)
        where TX : unmanaged, IBinaryInteger<TX> where TA : unmanaged, IBinaryInteger<TA>
    {
        int ph = (g.OH - 1) * g.SH + (_kh - 1) * g.DH + 1, pw = (g.OW - 1) * g.SW + (_kw - 1) * g.DW + 1;
        var padded = ArrayPool<TA>.Shared.Rent(ph * pw);
        var p = padded.AsSpan(0, ph * pw);
        p.Clear();
        var src = x.Slice(m * g.H * g.W, g.H * g.W);
        int x0 = Math.Max(0, g.PL), x1 = Math.Min(pw, g.PL + g.W);
        for (int py = 0; py < ph; py++)
        {
            int ih = py - g.PT;
            if ((uint)ih >= (uint)g.H || x1 <= x0) continue;
            var row = p.Slice(py * pw + x0, x1 - x0);
            TensorPrimitives.ConvertTruncating(src.Slice(ih * g.W + x0 - g.PL, x1 - x0), row);
            if (_zx != 0) TensorPrimitives.Subtract(row, TA.CreateTruncating(_zx), row);
        }
        acc.Fill(TA.CreateTruncating(_bias[m]));
        int taps = _kh * _kw;
        if (g.SW == 1 && g.SH == 1)
        {
            // Stride 1: output (oh, ow) reads padded (oh + kh·dh, ow + kw·dw), so one tap is one multiply-add over the
            // plane laid out with the padded row pitch; the columns beyond OW are scratch, dropped when compacting.
            int span = (g.OH - 1) * pw + g.OW;
            var wide = ArrayPool<TA>.Shared.Rent(span);
            var ws = wide.AsSpan(0, span);
            ws.Fill(TA.CreateTruncating(_bias[m]));
            for (int kh = 0; kh < _kh; kh++)
                for (int kw = 0; kw < _kw; kw++)
                    TensorPrimitives.MultiplyAdd(p.Slice(kh * g.DH * pw + kw * g.DW, span), TA.CreateTruncating(_w[m * taps + kh * _kw + kw]), ws, ws);
            for (int oh = 0; oh < g.OH; oh++) ws.Slice(oh * pw, g.OW).CopyTo(acc.Slice(oh * g.OW, g.OW));
            ArrayPool<TA>.Shared.Return(wide);
            ArrayPool<TA>.Shared.Return(padded);
            return;
        }
        if (g.SW > 1)
        {
            // Wider strides: split the padded plane's columns into SW phases (column q·SW + f goes to phase f), so
            // tap kw reads phase (kw·dw) mod SW at offset (kw·dw) / SW with unit stride, and stays one multiply-add.
            int qw = (pw + g.SW - 1) / g.SW;
            var phases = ArrayPool<TA>.Shared.Rent(g.SW * ph * qw);
            var phs = phases.AsSpan(0, g.SW * ph * qw);
            phs.Clear();
            for (int py = 0; py < ph; py++)
            {
                var src2 = p.Slice(py * pw, pw);
                for (int f = 0; f < g.SW; f++)
                {
                    var dst = phs.Slice((f * ph + py) * qw, qw);
                    for (int col = f, q = 0; col < pw; col += g.SW, q++) dst[q] = src2[col];
                }
            }
            for (int oh = 0; oh < g.OH; oh++)
            {
                var row = acc.Slice(oh * g.OW, g.OW);
                for (int kh = 0; kh < _kh; kh++)
                {
                    int py = oh * g.SH + kh * g.DH;
                    for (int kw = 0; kw < _kw; kw++)
                    {
                        int e = kw * g.DW;
                        var w = TA.CreateTruncating(_w[m * taps + kh * _kw + kw]);
                        TensorPrimitives.MultiplyAdd(phs.Slice((e % g.SW * ph + py) * qw + e / g.SW, g.OW), w, row, row);
                    }
                }
            }
            ArrayPool<TA>.Shared.Return(phases);
            ArrayPool<TA>.Shared.Return(padded);
            return;
        }
        for (int oh = 0; oh < g.OH; oh++)
        {
            var row = acc.Slice(oh * g.OW, g.OW);
            for (int kh = 0; kh < _kh; kh++)
            {
                int rowStart = (oh * g.SH + kh * g.DH) * pw;
                for (int kw = 0; kw < _kw; kw++)
                {
                    var w = TA.CreateTruncating(_w[m * taps + kh * _kw + kw]);
                    int start = rowStart + kw * g.DW;
                    if (g.SW == 1)
                        TensorPrimitives.MultiplyAdd(p.Slice(start, g.OW), w, row, row);
                    else
                        for (int ow = 0; ow < g.OW; ow++) row[ow] += w * p[start + ow * g.SW];
                }
            }
        }
        ArrayPool<TA>.Shared.Return(padded);
    }

    /// <summary>Rows [p0, p0 + rows) of the group's im2col matrix [pixels, K] (K in W's (c, kh, kw) order); padding holds z_x.</summary>
    private void Im2Col<TX, T>(ReadOnlySpan<TX> x, Geometry g, int grp, int p0, int rows, Span<T> col)
        where TX : unmanaged, IBinaryInteger<TX> where T : unmanaged, IBinaryInteger<T>
    {
        int k = K;
        var pad = T.CreateTruncating(_zx);
        if (_kh == 1 && _kw == 1 && g.SH == 1 && g.SW == 1 && g.PT == 0 && g.PL == 0 && g.OH == g.H && g.OW == g.W)
        {
            // 1x1, stride 1, no padding: the panel is the input transposed, [pixels, channels].
            for (int c = 0; c < _cg; c++)
            {
                var src = x.Slice((grp * _cg + c) * g.H * g.W + p0, rows);
                for (int r = 0; r < rows; r++) col[r * k + c] = T.CreateTruncating(src[r]);
            }
            return;
        }
        for (int r = 0; r < rows; r++)
        {
            int p = p0 + r, oh = p / g.OW, ow = p % g.OW;
            var dst = col.Slice(r * k, k);
            int at = 0;
            for (int c = 0; c < _cg; c++)
            {
                int plane = (grp * _cg + c) * g.H * g.W;
                for (int kh = 0; kh < _kh; kh++)
                {
                    int ih = oh * g.SH - g.PT + kh * g.DH;
                    if ((uint)ih >= (uint)g.H)
                    {
                        dst.Slice(at, _kw).Fill(pad);
                        at += _kw;
                        continue;
                    }
                    int rowBase = plane + ih * g.W, iw0 = ow * g.SW - g.PL;
                    if (g.DW == 1 && iw0 >= 0 && iw0 + _kw <= g.W)
                    {
                        // The common interior case: _kw consecutive values of one input row.
                        var src = x.Slice(rowBase + iw0, _kw);
                        for (int kw = 0; kw < _kw; kw++) dst[at + kw] = T.CreateTruncating(src[kw]);
                        at += _kw;
                        continue;
                    }
                    for (int kw = 0; kw < _kw; kw++, at++)
                    {
                        int iw = iw0 + kw * g.DW;
                        dst[at] = (uint)iw < (uint)g.W ? T.CreateTruncating(x[rowBase + iw]) : pad;
                    }
                }
            }
        }
    }
}
