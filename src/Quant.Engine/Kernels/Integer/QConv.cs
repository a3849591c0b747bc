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
    /// <summary>Channels rounded up to 4: the pixel pitch of the channels-last input of <see cref="RunChannelsLast"/>.</summary>
    private readonly int _cp;
    private readonly Lazy<Int8Weights> _w8Last;
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
        _cp = (_cg + 3) & ~3;
        _w8Last = s.Packed("int8.channels_last", _kh * _kw * _cp, _m, PackChannelsLast);
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
    /// B[K', M] for <see cref="RunChannelsLast"/>: K' runs over (kh, kw, c) with c padded to <see cref="_cp"/>, the
    /// order of a channels-last panel row; the padding channels hold zero weights, so Σ_k w (and the correction) is
    /// the same as in W's own order.
    /// </summary>
    private Int8Weights PackChannelsLast()
    {
        int k = K, kp = _kh * _kw * _cp;
        var b = new sbyte[kp * _m];
        for (int m = 0; m < _m; m++)
            for (int c = 0; c < _cg; c++)
                for (int kh = 0; kh < _kh; kh++)
                    for (int kw = 0; kw < _kw; kw++)
                        b[((kh * _kw + kw) * _cp + c) * _m + m] = (sbyte)_w[m * k + (c * _kh + kh) * _kw + kw];
        return Int8Weights.Pack(b, kp, _m);
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
            else if (!Output.Wide && x8 && _wType == ElementType.Int8 && _group == 1)
                RunChannelsLast(x, n * c * plane, g, y, yOffset, forEach);
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
    /// Dense int8 × int8 (one group): the input once as channels-last bytes u = x + 128 (the VNNI offset of §5.1,
    /// applied while transposing), so a panel row is _kh · _kw runs of whole pixels copied from it (a 1x1 stride-1
    /// convolution reads it as the panel itself), and <see cref="Int8Gemm.RunOffset"/> consumes the panels as written.
    /// </summary>
    private void RunChannelsLast(Tensor x, int xOffset, Geometry g, Tensor y, int yOffset, Action<int, Action<int>> forEach)
    {
        int cp = _cp, plane = g.H * g.W, ohw = g.OH * g.OW, kp = _kh * _kw * cp;
        var weights = _w8Last.Value;
        var hwc = ArrayPool<byte>.Shared.Rent(plane * cp);
        QConvChannelsLast.Write(x, xOffset, _cg, plane, cp, hwc, forEach);
        bool direct = _kh == 1 && _kw == 1 && g.SH == 1 && g.SW == 1 && g.PT == 0 && g.PL == 0 && g.OH == g.H && g.OW == g.W;
        int panels = (ohw + RowsPerPanel - 1) / RowsPerPanel;
        forEach(panels, job =>
        {
            int p0 = job * RowsPerPanel, rows = Math.Min(RowsPerPanel, ohw - p0);
            var tmp = ArrayPool<int>.Shared.Rent(rows * _m);
            var channel = ArrayPool<int>.Shared.Rent(rows);
            byte[]? col = null;
            if (direct) Int8Gemm.RunOffset(hwc.AsSpan(p0 * cp, rows * cp), weights, rows, tmp.AsSpan(0, rows * _m));
            else
            {
                col = ArrayPool<byte>.Shared.Rent(rows * kp);
                Im2ColChannelsLast(hwc, g, p0, rows, col.AsSpan(0, rows * kp));
                Int8Gemm.RunOffset(col.AsSpan(0, rows * kp), weights, rows, tmp.AsSpan(0, rows * _m));
                ArrayPool<byte>.Shared.Return(col);
            }
            // Each channel's column of the panel, with its constant, requantized straight into Y: no int32 plane.
            var dst = channel.AsSpan(0, rows);
            for (int m = 0; m < _m; m++)
            {
                int corr = unchecked((int)(_bias[m] - _zx * _colSum[m]));
                for (int r = 0; r < rows; r++) dst[r] = unchecked(tmp[r * _m + m] + corr);
                Output.Write(dst, m, y, yOffset + m * ohw + p0, true);
            }
            ArrayPool<int>.Shared.Return(channel);
            ArrayPool<int>.Shared.Return(tmp);
        });
        ArrayPool<byte>.Shared.Return(hwc);
    }

    /// <summary>Rows [p0, p0 + rows) of the channels-last panel [pixels, (kh, kw, c)]; padding taps hold z_x + 128.</summary>
    private void Im2ColChannelsLast(byte[] hwc, Geometry g, int p0, int rows, Span<byte> col)
    {
        int cp = _cp, kp = _kh * _kw * cp, run = _kw * cp;
        byte pad = (byte)(_zx + 128);
        for (int r = 0; r < rows; r++)
        {
            int p = p0 + r, oh = p / g.OW, ow = p % g.OW, iw0 = ow * g.SW - g.PL;
            var dst = col.Slice(r * kp, kp);
            bool inside = g.DW == 1 && iw0 >= 0 && iw0 + _kw <= g.W;
            for (int kh = 0; kh < _kh; kh++)
            {
                var taps = dst.Slice(kh * run, run);
                int ih = oh * g.SH - g.PT + kh * g.DH;
                if ((uint)ih >= (uint)g.H) { taps.Fill(pad); continue; }
                int rowBase = ih * g.W;
                // Interior: the _kw pixels are adjacent in the input row, so one copy of _kw · cp bytes.
                if (inside) { hwc.AsSpan((rowBase + iw0) * cp, run).CopyTo(taps); continue; }
                for (int kw = 0; kw < _kw; kw++)
                {
                    int iw = iw0 + kw * g.DW;
                    var tap = taps.Slice(kw * cp, cp);
                    if ((uint)iw < (uint)g.W) hwc.AsSpan((rowBase + iw) * cp, cp).CopyTo(tap);
                    else tap.Fill(pad);
                }
            }
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
