using System.Numerics;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Resize (opset 10, 11, 13, 18, 19) and Upsample (opset 7, 9). Separable: every output element is
/// <c>y[o_0..o_r] = sum over taps of prod_d w_d(o_d, t_d) * x[i_d(o_d, t_d)...]</c>, with per-axis
/// index/weight tables built once per call from the output size and scale of that axis.
/// <list type="bullet">
/// <item>Coordinates (x = output index, s = scale, as the ONNX reference computes them in double):
/// half_pixel (x+0.5)/s-0.5; half_pixel_symmetric adds center*(1-out/(s*in)) with center = in/2;
/// pytorch_half_pixel as half_pixel but -0.5 when the resized length is 1; align_corners
/// x*(in-1)/(len-1) (0 when len is 1); asymmetric x/s; tf_half_pixel_for_nn (x+0.5)/s;
/// tf_crop_and_resize start*(in-1)+x*(end-start)*(in-1)/(len-1), where a coordinate outside [0, in-1]
/// yields extrapolation_value. "len" is the resized length s*in as a real number when scales are given
/// (the ONNX reference; ONNX Runtime uses the integer size there, which differs only when s*in is fractional).</item>
/// <item>nearest: round_prefer_floor/round_prefer_ceil round halves down/up, floor, ceil; indices clamp to
/// the edge. Opset &lt; 11 (Upsample, Resize-10): asymmetric, and the index is floor(c) when upsampling,
/// ceil(c) when downsampling (ONNX Runtime's rule).</item>
/// <item>linear: taps floor(c) and floor(c)+1 with weights 1-t and t (t = c - floor(c)); cubic: taps
/// floor(c)-1..floor(c)+2 with Keys' kernel of cubic_coeff_a. Out-of-range taps read the edge element, or
/// with exclude_outside get weight 0 and the weights are renormalized. antialias (opset 18) widens the
/// linear/cubic kernel by 1/s when downsampling and normalizes the weights. NaN: rows of weight 0 are skipped
/// (a NaN there does not spread), while the width gather multiplies every tap, so a NaN neighbour of weight 0 gives NaN.</item>
/// <item>Output size: sizes as given (keep_aspect_ratio_policy not_larger/not_smaller use one scale,
/// the min/max of sizes/in, and round(s*in)); from scales floor(in*s) evaluated in float as ONNX Runtime.</item>
/// </list>
/// Float runs vectorized (rows combined along the width, gathers along the width) and in parallel over the
/// planes in front of the last two axes; other element types support nearest only.
/// </summary>
[KernelFamily]
internal static class ResizeKernels
{
    internal enum Mode { Nearest, Linear, Cubic }
    internal enum Coord { HalfPixel, HalfPixelSymmetric, PytorchHalfPixel, AlignCorners, Asymmetric, TfHalfPixelForNn, TfCropAndResize }
    internal enum Rounding { RoundPreferFloor, RoundPreferCeil, Floor, Ceil, Legacy }
    internal enum AspectPolicy { Stretch, NotLarger, NotSmaller }

    public static void Register(KernelRegistry r)
    {
        r.Add("Upsample", 7, s => new Kernel(Parse(s, legacy: true), ScalesSource.Attribute, s.Node.GetFloats("scales")));
        r.Add("Upsample", 9, s => new Kernel(Parse(s, legacy: true), ScalesSource.Input1, null));
        r.Add("Resize", 10, s => new Kernel(Parse(s, legacy: true), ScalesSource.Input1, null));
        foreach (var v in new[] { 11, 13, 18, 19 })
            r.Add("Resize", v, s => new Kernel(Parse(s, legacy: false), ScalesSource.Inputs2And3, null));
    }

    internal enum ScalesSource { Attribute, Input1, Inputs2And3 }

    /// <summary>Parsed attributes of a Resize/Upsample node.</summary>
    internal sealed record Attributes(Mode Mode, Coord Coord, Rounding Rounding, double CubicA, bool ExcludeOutside,
        float Extrapolation, bool Antialias, int[]? Axes, AspectPolicy Policy);

    internal static Attributes Parse(KernelSetup setup, bool legacy)
    {
        var n = setup.Node;
        var mode = n.GetString("mode", "nearest") switch
        {
            "nearest" => Mode.Nearest,
            "linear" or "bilinear" => Mode.Linear,
            "cubic" when !legacy => Mode.Cubic,
            var m => throw setup.Error($"mode '{m}' is not supported (nearest, linear{(legacy ? "" : ", cubic")})"),
        };
        if (legacy) return new Attributes(mode, Coord.Asymmetric, Rounding.Legacy, -0.75, false, 0, false, null, AspectPolicy.Stretch);
        var coord = n.GetString("coordinate_transformation_mode", "half_pixel") switch
        {
            "half_pixel" => Coord.HalfPixel,
            "half_pixel_symmetric" => Coord.HalfPixelSymmetric,
            "pytorch_half_pixel" => Coord.PytorchHalfPixel,
            "align_corners" => Coord.AlignCorners,
            "asymmetric" => Coord.Asymmetric,
            "tf_half_pixel_for_nn" => Coord.TfHalfPixelForNn,
            "tf_crop_and_resize" => Coord.TfCropAndResize,
            var c => throw setup.Error($"coordinate_transformation_mode '{c}' is not supported"),
        };
        var rounding = n.GetString("nearest_mode", "round_prefer_floor") switch
        {
            "round_prefer_floor" => Rounding.RoundPreferFloor,
            "round_prefer_ceil" => Rounding.RoundPreferCeil,
            "floor" => Rounding.Floor,
            "ceil" => Rounding.Ceil,
            var m => throw setup.Error($"nearest_mode '{m}' is not supported"),
        };
        var policy = n.GetString("keep_aspect_ratio_policy", "stretch") switch
        {
            "stretch" => AspectPolicy.Stretch,
            "not_larger" => AspectPolicy.NotLarger,
            "not_smaller" => AspectPolicy.NotSmaller,
            var p => throw setup.Error($"keep_aspect_ratio_policy '{p}' is not supported"),
        };
        var axes = n.GetInts("axes")?.Select(a => checked((int)a)).ToArray();
        return new Attributes(mode, coord, rounding, n.GetFloat("cubic_coeff_a", -0.75f), n.GetInt("exclude_outside", 0) != 0,
            n.GetFloat("extrapolation_value", 0f), n.GetInt("antialias", 0) != 0, axes, policy);
    }

    /// <summary>
    /// One axis: output length, taps per output, tap-major tables (Index[t * Out + o], Weight[t * Out + o]),
    /// and which outputs take the extrapolation value. Identity axes are skipped by the executors.
    /// </summary>
    internal sealed class AxisTable
    {
        public required int In { get; init; }
        public required int Out { get; init; }
        public required int Taps { get; init; }
        public required int[] Index { get; init; }
        public required float[] Weight { get; init; }
        public bool[]? Extrapolate { get; init; }
        public bool IsIdentity { get; init; }
        /// <summary>Linear mode without antialias: per output the fraction λ = c − floor(c) of its coordinate in double,
        /// from which the integer resize (quant.build QResize) derives its Q20 weights; null otherwise.</summary>
        public double[]? Fraction { get; init; }
    }

    /// <summary>Builds the table of one axis. <paramref name="resizedLength"/> is the real-valued resized length the coordinate formulas use.</summary>
    internal static AxisTable BuildAxis(Attributes a, int inLen, int outLen, double scale, double resizedLength, double roiStart, double roiEnd)
    {
        int taps, start;
        double support = a.Antialias && scale < 1 && a.Mode != Mode.Nearest ? scale : 1.0;
        switch (a.Mode)
        {
            case Mode.Nearest: taps = 1; start = 0; break;
            case Mode.Linear: start = (int)Math.Floor(-1 / support) + 1; taps = 2 - 2 * start; break;
            default: start = (int)Math.Floor(-2 / support) + 1; taps = 2 - 2 * start; break;
        }
        var index = new int[taps * outLen];
        var weight = new float[taps * outLen];
        bool[]? extra = a.Coord == Coord.TfCropAndResize ? new bool[outLen] : null;
        var w = new double[taps];
        double[]? fraction = a.Mode == Mode.Linear && support == 1.0 ? new double[outLen] : null;
        bool identity = inLen == outLen;
        for (int o = 0; o < outLen; o++)
        {
            double c = Coordinate(a.Coord, o, scale, inLen, outLen, resizedLength, roiStart, roiEnd);
            if (extra is not null && (c < 0 || c > inLen - 1))
            {
                extra[o] = true;
                identity = false;
                for (int t = 0; t < taps; t++) { index[t * outLen + o] = 0; weight[t * outLen + o] = 0; }
                continue;
            }
            if (a.Mode == Mode.Nearest)
            {
                int i = Math.Clamp(NearestIndex(a.Rounding, c, scale), 0, inLen - 1);
                index[o] = i;
                weight[o] = 1;
                if (i != o) identity = false;
                continue;
            }
            double f = Math.Floor(c);
            if (fraction is not null) fraction[o] = c - f;
            int i0 = (int)f + start;
            double sum = 0;
            for (int t = 0; t < taps; t++)
            {
                int p = i0 + t;
                double d = Math.Abs((p - c) * support);
                double k = a.Mode == Mode.Linear ? Math.Max(0, 1 - d) : Cubic(d, a.CubicA);
                if (a.ExcludeOutside && (p < 0 || p >= inLen)) k = 0;
                w[t] = k;
                sum += k;
            }
            bool normalize = a.ExcludeOutside || support < 1;
            for (int t = 0; t < taps; t++)
            {
                int p = Math.Clamp(i0 + t, 0, inLen - 1);
                float wt = (float)(normalize && sum != 0 ? w[t] / sum : w[t]);
                index[t * outLen + o] = p;
                weight[t * outLen + o] = wt;
                if (wt != 0 && (p != o || wt != 1)) identity = false;
            }
        }
        return new AxisTable { In = inLen, Out = outLen, Taps = taps, Index = index, Weight = weight, Extrapolate = extra, IsIdentity = identity, Fraction = fraction };
    }

    private static double Cubic(double d, double A) =>
        d < 1 ? ((A + 2) * d - (A + 3)) * d * d + 1
        : d < 2 ? ((A * d - 5 * A) * d + 8 * A) * d - 4 * A
        : 0;

    internal static double Coordinate(Coord mode, int x, double s, int inLen, int outLen, double len, double roiStart, double roiEnd) => mode switch
    {
        Coord.HalfPixel => (x + 0.5) / s - 0.5,
        Coord.HalfPixelSymmetric => inLen / 2.0 * (1 - outLen / len) + (x + 0.5) / s - 0.5,
        Coord.PytorchHalfPixel => len == 1 ? -0.5 : (x + 0.5) / s - 0.5,
        Coord.AlignCorners => len == 1 ? 0 : x * (inLen - 1) / (len - 1),
        Coord.Asymmetric => x / s,
        Coord.TfHalfPixelForNn => (x + 0.5) / s,
        Coord.TfCropAndResize => len == 1
            ? (roiEnd - roiStart) * (inLen - 1) / 2 + roiStart * (inLen - 1)
            : x * (roiEnd - roiStart) * (inLen - 1) / (len - 1) + roiStart * (inLen - 1),
        _ => throw new InvalidOperationException(mode.ToString()),
    };

    internal static int NearestIndex(Rounding r, double c, double scale)
    {
        double f = Math.Floor(c);
        return r switch
        {
            Rounding.RoundPreferFloor => (int)(c - f <= 0.5 ? f : f + 1),
            Rounding.RoundPreferCeil => (int)(c - f < 0.5 ? f : f + 1),
            Rounding.Floor => (int)f,
            Rounding.Ceil => (int)Math.Ceiling(c),
            _ => scale < 1 ? (int)Math.Ceiling(c) : (int)f,
        };
    }

    internal sealed class Kernel(Attributes attrs, ScalesSource source, float[]? attrScales) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            int rank = x.Rank;
            if (rank == 0) throw ctx.Error("cannot resize a scalar");
            var tables = Tables(ctx, x, out var outShape);
            var y = ctx.Output(0, x.Type, outShape);
            if (y.Length == 0) return;
            if (x.Length == 0) throw ctx.Error("cannot resize an empty tensor to a non-empty one");
            if (x.Type == ElementType.Float) ResizeFloat(ctx, (float[])x.Buffer, x.Shape, (float[])y.Buffer, tables, attrs.Extrapolation);
            else if (attrs.Mode != Mode.Nearest)
                throw ctx.Error($"{attrs.Mode.ToString().ToLowerInvariant()} mode supports float only, not {x.Type.OnnxName()}");
            else
            {
                switch (x.Type)
                {
                    case ElementType.Double: Nearest(ctx, (double[])x.Buffer, x.Shape, (double[])y.Buffer, tables, attrs.Extrapolation); break;
                    case ElementType.Float16: Nearest(ctx, (Half[])x.Buffer, x.Shape, (Half[])y.Buffer, tables, attrs.Extrapolation); break;
                    case ElementType.Int8: Nearest(ctx, (sbyte[])x.Buffer, x.Shape, (sbyte[])y.Buffer, tables, attrs.Extrapolation); break;
                    case ElementType.UInt8: Nearest(ctx, (byte[])x.Buffer, x.Shape, (byte[])y.Buffer, tables, attrs.Extrapolation); break;
                    case ElementType.Int16: Nearest(ctx, (short[])x.Buffer, x.Shape, (short[])y.Buffer, tables, attrs.Extrapolation); break;
                    case ElementType.UInt16: Nearest(ctx, (ushort[])x.Buffer, x.Shape, (ushort[])y.Buffer, tables, attrs.Extrapolation); break;
                    case ElementType.Int32: Nearest(ctx, (int[])x.Buffer, x.Shape, (int[])y.Buffer, tables, attrs.Extrapolation); break;
                    case ElementType.Int64: Nearest(ctx, (long[])x.Buffer, x.Shape, (long[])y.Buffer, tables, attrs.Extrapolation); break;
                    default: throw ctx.Error($"{x.Type.OnnxName()} is not supported");
                }
            }
        }

        /// <summary>The output shape and the per-axis tables for input <paramref name="x"/> (sizes/scales/roi from the node's inputs).</summary>
        internal AxisTable[] Tables(KernelContext ctx, Tensor x, out int[] outShape)
        {
            int rank = x.Rank;
            var (shape, scales, lengths) = OutputGeometry(ctx, x);
            var roi = Roi(ctx, rank);
            var tables = new AxisTable[rank];
            for (int d = 0; d < rank; d++)
                tables[d] = BuildAxis(attrs, x.Shape[d], shape[d], scales[d], lengths[d], roi[d], roi[d + rank]);
            outShape = shape;
            return tables;
        }

        private (int[] Shape, double[] Scales, double[] Lengths) OutputGeometry(KernelContext ctx, Tensor x)
        {
            int rank = x.Rank;
            var axes = attrs.Axes ?? Enumerable.Range(0, rank).ToArray();
            for (int i = 0; i < axes.Length; i++)
            {
                if (axes[i] < -rank || axes[i] >= rank) throw ctx.Error($"axis {axes[i]} is out of range for rank {rank}");
                if (axes[i] < 0) axes[i] += rank;
            }
            var shape = x.Shape.ToArray();
            var scales = Enumerable.Repeat(1.0, rank).ToArray();
            var lengths = shape.Select(v => (double)v).ToArray();

            Tensor? sizesT = source == ScalesSource.Inputs2And3 ? ctx.Input(3) : null;
            if (sizesT is { Length: > 0 })
            {
                if (sizesT.Type != ElementType.Int64) throw ctx.Error($"sizes must be int64, not {sizesT.Type.OnnxName()}");
                if (ctx.Input(2) is { Length: > 0 }) throw ctx.Error("only one of scales and sizes may be given");
                var sizes = sizesT.ReadOnlySpan<long>();
                if (sizes.Length != axes.Length) throw ctx.Error($"sizes has {sizes.Length} values but {axes.Length} axes are resized");
                if (attrs.Policy == AspectPolicy.Stretch)
                {
                    for (int i = 0; i < axes.Length; i++)
                    {
                        int d = axes[i];
                        if (sizes[i] < 0 || sizes[i] > int.MaxValue) throw ctx.Error($"size {sizes[i]} for axis {d} is invalid");
                        shape[d] = (int)sizes[i];
                        scales[d] = x.Shape[d] == 0 ? 1 : (double)sizes[i] / x.Shape[d];
                        lengths[d] = shape[d];
                    }
                }
                else
                {
                    double s = attrs.Policy == AspectPolicy.NotLarger ? double.MaxValue : double.MinValue;
                    for (int i = 0; i < axes.Length; i++)
                    {
                        double r = (double)sizes[i] / x.Shape[axes[i]];
                        s = attrs.Policy == AspectPolicy.NotLarger ? Math.Min(s, r) : Math.Max(s, r);
                    }
                    foreach (var d in axes)
                    {
                        shape[d] = (int)Math.Round(s * x.Shape[d], MidpointRounding.AwayFromZero);
                        scales[d] = s;
                        lengths[d] = shape[d];
                    }
                }
                return (shape, scales, lengths);
            }

            float[] given;
            if (source == ScalesSource.Attribute)
                given = attrScales ?? throw ctx.Error("the scales attribute is required");
            else
            {
                var st = ctx.Input(source == ScalesSource.Input1 ? 1 : 2);
                if (st is not { Length: > 0 }) throw ctx.Error("either scales or sizes must be given");
                if (st.Type != ElementType.Float) throw ctx.Error($"scales must be float, not {st.Type.OnnxName()}");
                given = st.ReadOnlySpan<float>().ToArray();
            }
            var gAxes = source == ScalesSource.Inputs2And3 ? axes : Enumerable.Range(0, rank).ToArray();
            if (given.Length != gAxes.Length) throw ctx.Error($"scales has {given.Length} values but {gAxes.Length} axes are resized");
            for (int i = 0; i < gAxes.Length; i++)
            {
                int d = gAxes[i];
                if (!(given[i] > 0)) throw ctx.Error($"scale {given[i]} for axis {d} must be positive");
                scales[d] = given[i];
                // As ONNX Runtime: the product in float, truncated.
                float prod = given[i] * x.Shape[d];
                shape[d] = (int)prod;
                lengths[d] = (double)given[i] * x.Shape[d];
            }
            return (shape, scales, lengths);
        }

        private double[] Roi(KernelContext ctx, int rank)
        {
            var roi = new double[2 * rank];
            for (int d = 0; d < rank; d++) roi[rank + d] = 1;
            if (attrs.Coord != Coord.TfCropAndResize || source != ScalesSource.Inputs2And3) return roi;
            var t = ctx.Input(1);
            if (t is not { Length: > 0 }) return roi;
            double[] v = t.Type switch
            {
                ElementType.Float => t.ReadOnlySpan<float>().ToArray().Select(f => (double)f).ToArray(),
                ElementType.Double => t.ReadOnlySpan<double>().ToArray(),
                ElementType.Float16 => t.ReadOnlySpan<Half>().ToArray().Select(f => (double)f).ToArray(),
                _ => throw ctx.Error($"roi must be a float tensor, not {t.Type.OnnxName()}"),
            };
            var axes = attrs.Axes?.Select(a => a < 0 ? a + rank : a).ToArray() ?? Enumerable.Range(0, rank).ToArray();
            if (v.Length != 2 * axes.Length) throw ctx.Error($"roi has {v.Length} values but needs {2 * axes.Length} (starts then ends)");
            for (int i = 0; i < axes.Length; i++) { roi[axes[i]] = v[i]; roi[rank + axes[i]] = v[axes.Length + i]; }
            return roi;
        }
    }

    /// <summary>Float resize: a fused plane kernel when only the last two axes change, else one pass per changed axis.</summary>
    internal static void ResizeFloat(KernelContext? ctx, float[] x, int[] inShape, float[] y, AxisTable[] tables, float extrapolation)
    {
        int rank = inShape.Length;
        var active = Enumerable.Range(0, rank).Where(d => !tables[d].IsIdentity).ToList();
        if (active.Count == 0)
        {
            Array.Copy(x, y, Tensor.ElementCount(inShape));
            return;
        }
        if (rank >= 2 && active[0] >= rank - 2)
        {
            int planes = 1;
            for (int d = 0; d < rank - 2; d++) planes *= inShape[d];
            ResizePlanes(ctx, x, y, planes, tables[rank - 2], tables[rank - 1], extrapolation);
            return;
        }
        if (rank == 1)
        {
            ResizePlanes(ctx, x, y, 1, Identity1, tables[0], extrapolation);
            return;
        }
        // General N-D: resize one axis at a time into scratch, the last pass into y.
        var shape = inShape.ToArray();
        float[] src = x;
        float[]? rented = null;
        for (int k = 0; k < active.Count; k++)
        {
            int d = active[k];
            var t = tables[d];
            var next = shape.ToArray();
            next[d] = t.Out;
            float[] dst = k == active.Count - 1 ? y : (ctx?.RentScratch(Tensor.ElementCount(next)) ?? new float[Tensor.ElementCount(next)]);
            ResizeAxis(ctx, src, shape, dst, d, t, extrapolation);
            if (rented is not null) ctx?.ReturnScratch(rented);
            rented = ReferenceEquals(dst, y) ? null : dst;
            src = dst;
            shape = next;
        }
    }

    private static readonly AxisTable Identity1 = new() { In = 1, Out = 1, Taps = 1, Index = [0], Weight = [1], IsIdentity = true };

    /// <summary>dst[outer, o, inner] = sum_t w[t,o] * src[outer, idx[t,o], inner]; vectorized over inner.</summary>
    private static void ResizeAxis(KernelContext? ctx, float[] src, int[] shape, float[] dst, int axis, AxisTable t, float extrapolation)
    {
        int outer = 1, inner = 1;
        for (int d = 0; d < axis; d++) outer *= shape[d];
        for (int d = axis + 1; d < shape.Length; d++) inner *= shape[d];
        int inLen = shape[axis], outLen = t.Out;
        void Row(int r)
        {
            int b = r / outLen, o = r % outLen;
            var dr = dst.AsSpan(r * inner, inner);
            if (t.Extrapolate?[o] == true) { dr.Fill(extrapolation); return; }
            bool first = true;
            for (int k = 0; k < t.Taps; k++)
            {
                float w = t.Weight[k * outLen + o];
                if (w == 0) continue;
                var sr = src.AsSpan((b * inLen + t.Index[k * outLen + o]) * inner, inner);
                if (first) Scale(sr, w, dr); else Axpy(sr, w, dr);
                first = false;
            }
            if (first) dr.Clear();
        }
        if (ctx is null) for (int r = 0; r < outer * outLen; r++) Row(r);
        else ctx.For(outer * outLen, Row);
    }

    /// <summary>
    /// The last two axes of each plane: for each output row the source rows are combined along the width
    /// (or the single source row is used as is, or the previous output row is copied when it has the
    /// same single source), then the width table is applied with 8-wide gathers.
    /// </summary>
    internal static void ResizePlanes(KernelContext? ctx, float[] x, float[] y, int planes, AxisTable th, AxisTable tw, float extrapolation)
    {
        int H = th.In, W = tw.In, OH = th.Out, OW = tw.Out;
        void Plane(int p)
        {
            float[]? row = null;
            try
            {
                var xp = x.AsSpan(p * H * W, H * W);
                var yp = y.AsSpan(p * OH * OW, OH * OW);
                int prevSingle = -1;
                for (int oh = 0; oh < OH; oh++)
                {
                    var yr = yp.Slice(oh * OW, OW);
                    if (th.Extrapolate?[oh] == true) { yr.Fill(extrapolation); prevSingle = -1; continue; }
                    int single = -1, nonzero = 0;
                    for (int k = 0; k < th.Taps; k++)
                        if (th.Weight[k * OH + oh] != 0) { nonzero++; single = th.Index[k * OH + oh]; }
                    if (nonzero == 1 && SingleWeightIsOne(th, oh))
                    {
                        if (single == prevSingle && oh > 0)
                        {
                            yp.Slice((oh - 1) * OW, OW).CopyTo(yr);
                            continue;
                        }
                        Horizontal(xp.Slice(single * W, W), yr, tw, extrapolation);
                        prevSingle = single;
                        continue;
                    }
                    prevSingle = -1;
                    row ??= ctx?.RentScratch(W) ?? new float[W];
                    var acc = row.AsSpan(0, W);
                    bool first = true;
                    for (int k = 0; k < th.Taps; k++)
                    {
                        float w = th.Weight[k * OH + oh];
                        if (w == 0) continue;
                        var sr = xp.Slice(th.Index[k * OH + oh] * W, W);
                        if (first) Scale(sr, w, acc); else Axpy(sr, w, acc);
                        first = false;
                    }
                    if (first) acc.Clear();
                    Horizontal(acc, yr, tw, extrapolation);
                }
            }
            finally
            {
                if (row is not null) ctx?.ReturnScratch(row);
            }
        }
        if (ctx is null) for (int p = 0; p < planes; p++) Plane(p);
        else ctx.For(planes, Plane);
    }

    private static bool SingleWeightIsOne(AxisTable t, int o)
    {
        for (int k = 0; k < t.Taps; k++)
        {
            float w = t.Weight[k * t.Out + o];
            if (w != 0) return w == 1;
        }
        return false;
    }

    /// <summary>yr[o] = sum_t w[t,o] * src[idx[t,o]] for the width table; the vector loop gathers 8 outputs at a time.</summary>
    internal static unsafe void Horizontal(ReadOnlySpan<float> src, Span<float> yr, AxisTable t, float extrapolation)
    {
        int OW = t.Out;
        if (t.IsIdentity) { src.CopyTo(yr); return; }
        int o = 0;
        if (Avx2.IsSupported && OW >= 8)
        {
            fixed (float* s = src)
            fixed (float* d = yr)
            fixed (int* idx = t.Index)
            fixed (float* wt = t.Weight)
            {
                if (t.Taps == 1)
                {
                    for (; o <= OW - 8; o += 8)
                        Avx.Store(d + o, Avx2.GatherVector256(s, Avx.LoadVector256(idx + o), 4));
                }
                else
                {
                    for (; o <= OW - 8; o += 8)
                    {
                        var acc = Avx.Multiply(Avx2.GatherVector256(s, Avx.LoadVector256(idx + o), 4), Avx.LoadVector256(wt + o));
                        for (int k = 1; k < t.Taps; k++)
                        {
                            var v = Avx2.GatherVector256(s, Avx.LoadVector256(idx + k * OW + o), 4);
                            acc = Fma.IsSupported ? Fma.MultiplyAdd(v, Avx.LoadVector256(wt + k * OW + o), acc) : Avx.Add(acc, Avx.Multiply(v, Avx.LoadVector256(wt + k * OW + o)));
                        }
                        Avx.Store(d + o, acc);
                    }
                }
            }
        }
        for (; o < OW; o++) yr[o] = HorizontalOne(src, t, o);
        if (t.Extrapolate is { } e)
            for (int k = 0; k < OW; k++) if (e[k]) yr[k] = extrapolation;
    }

    /// <summary>The scalar reference of one width output (zero-weight taps included, like the vector loop).</summary>
    internal static float HorizontalOne(ReadOnlySpan<float> src, AxisTable t, int o)
    {
        int OW = t.Out;
        float acc = src[t.Index[o]] * t.Weight[o];
        for (int k = 1; k < t.Taps; k++) acc = MathF.FusedMultiplyAdd(src[t.Index[k * OW + o]], t.Weight[k * OW + o], acc);
        return acc;
    }

    private static void Scale(ReadOnlySpan<float> s, float w, Span<float> d)
    {
        if (w == 1) { s.CopyTo(d); return; }
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vw = new Vector<float>(w);
            for (; i <= s.Length - Vector<float>.Count; i += Vector<float>.Count) (new Vector<float>(s[i..]) * vw).CopyTo(d[i..]);
        }
        for (; i < s.Length; i++) d[i] = s[i] * w;
    }

    private static void Axpy(ReadOnlySpan<float> s, float w, Span<float> d)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vw = new Vector<float>(w);
            for (; i <= s.Length - Vector<float>.Count; i += Vector<float>.Count)
                Vector.FusedMultiplyAdd(new Vector<float>(s[i..]), vw, new Vector<float>(d[i..])).CopyTo(d[i..]);
        }
        for (; i < s.Length; i++) d[i] = MathF.FusedMultiplyAdd(s[i], w, d[i]);
    }

    /// <summary>Nearest for any element type: each output copies the element its per-axis indices select.</summary>
    private static void Nearest<T>(KernelContext ctx, T[] x, int[] inShape, T[] y, AxisTable[] tables, float extrapolation)
        where T : unmanaged, INumberBase<T>
    {
        int rank = inShape.Length;
        var inStride = new int[rank];
        for (int d = rank - 1, s = 1; d >= 0; d--) { inStride[d] = s; s *= inShape[d]; }
        var outShape = tables.Select(t => t.Out).ToArray();
        int lastOut = outShape[rank - 1];
        int rows = Tensor.ElementCount(outShape) / lastOut;
        T extra = T.CreateSaturating(extrapolation);
        var last = tables[rank - 1];
        ctx.For(rows, r =>
        {
            int rem = r, off = 0;
            bool outside = false;
            for (int d = rank - 2; d >= 0; d--)
            {
                int o = rem % outShape[d];
                rem /= outShape[d];
                if (tables[d].Extrapolate?[o] == true) outside = true;
                off += tables[d].Index[o] * inStride[d];
            }
            var yr = y.AsSpan(r * lastOut, lastOut);
            if (outside) { yr.Fill(extra); return; }
            for (int o = 0; o < lastOut; o++)
                yr[o] = last.Extrapolate?[o] == true ? extra : x[off + last.Index[o]];
        });
    }
}
