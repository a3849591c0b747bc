using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Pad (1: <c>paddings</c> attribute; 2: <c>pads</c> attribute and float <c>value</c>; 11: pads and
/// constant_value inputs; 18: axes input). pads = [b_1..b_n, e_1..e_n] for the padded axes (all axes unless
/// given); negative pads crop. Output axis length d + b + e; output index i maps to input index j = i - b.
/// Outside [0, d): constant mode writes the constant (default 0 / "" / false; the float attribute is cast
/// to the data type as Cast does), edge uses clamp(j, 0, d-1), reflect mirrors about the first and last
/// element without repeating them (period 2(d-1), as numpy.pad 'reflect'). Edge and reflect need d &gt; 0.
/// </summary>
[KernelFamily]
internal static class PadKernels
{
    private enum Mode { Constant, Reflect, Edge }

    public static void Register(KernelRegistry r)
    {
        r.Add("Pad", 1, s => new PadKernel(ParseMode(s), s.Node.GetInts("paddings") ?? throw s.Error("attribute 'paddings' is required"), s.Node.GetFloat("value", 0f)));
        r.Add("Pad", 2, s => new PadKernel(ParseMode(s), s.Node.GetInts("pads") ?? throw s.Error("attribute 'pads' is required"), s.Node.GetFloat("value", 0f)));
        r.Add("Pad", 11, s => new PadKernel(ParseMode(s), null, 0f));
    }

    private static Mode ParseMode(KernelSetup s) => s.Node.GetString("mode", "constant") switch
    {
        "constant" => Mode.Constant,
        "reflect" => Mode.Reflect,
        "edge" => Mode.Edge,
        var m => throw s.Error($"mode '{m}' is not supported (constant, reflect, edge are)"),
    };

    private sealed class PadKernel(Mode mode, long[]? attributePads, float attributeValue) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            int r = x.Rank;
            long[] pads;
            Tensor? constant = null;
            long[]? axes = null;
            if (attributePads is not null)
            {
                pads = attributePads;
                if (mode == Mode.Constant && attributeValue != 0f && x.Type != ElementType.String)
                {
                    constant = Tensor.Zeros(x.Type, []);
                    CastKernels.Convert(Tensor.From(new[] { attributeValue }), constant);
                }
            }
            else
            {
                pads = ShapeUtil.ReadInts(ctx, ctx.Required(1), "pads");
                if (ctx.Input(2) is { } c && mode == Mode.Constant)
                {
                    if (c.Type != x.Type) throw ctx.Error($"constant_value is {c.Type.OnnxName()} but the data is {x.Type.OnnxName()}");
                    if (c.Length != 1) throw ctx.Error($"constant_value must hold one element but has shape {ShapeUtil.Format(c.Shape)}");
                    constant = c;
                }
                if (ctx.Input(3) is { } at) axes = ShapeUtil.ReadInts(ctx, at, "axes");
            }

            int n = axes?.Length ?? r;
            if (pads.Length != 2 * n)
                throw ctx.Error($"pads [{string.Join(",", pads)}] must have {2 * n} entries (begin and end for {(axes is null ? $"each of the {r} axes" : $"each of the {n} axes given")})");
            var begin = new long[r];
            var end = new long[r];
            var seen = new bool[r];
            for (int i = 0; i < n; i++)
            {
                int k = axes is null ? i : ShapeUtil.Axis(ctx, axes[i], r, "axis");
                if (seen[k]) throw ctx.Error($"axis {k} is padded twice");
                seen[k] = true;
                begin[k] = pads[i];
                end[k] = pads[n + i];
            }

            var outShape = new int[r];
            var maps = new int[r][];
            for (int k = 0; k < r; k++)
            {
                long d = x.Shape[k];
                long o = d + begin[k] + end[k];
                if (o < 0 || o > int.MaxValue) throw ctx.Error($"pads {begin[k]} and {end[k]} make axis {k} of length {d} have length {o}");
                outShape[k] = (int)o;
                var map = maps[k] = new int[o];
                for (int i = 0; i < o; i++)
                {
                    long j = i - begin[k];
                    if (j >= 0 && j < d) { map[i] = (int)j; continue; }
                    if (mode == Mode.Constant) { map[i] = -1; continue; }
                    if (d == 0) throw ctx.Error($"{(mode == Mode.Edge ? "edge" : "reflect")} padding needs a non-empty axis {k}");
                    map[i] = mode == Mode.Edge ? (int)Math.Clamp(j, 0, d - 1) : Reflect(j, d);
                }
            }

            var y = ctx.Output(0, x.Type, outShape);
            switch (Elements.Width(x.Type))
            {
                case 1: Fill<byte>(x, y, maps, begin, constant); break;
                case 2: Fill<ushort>(x, y, maps, begin, constant); break;
                case 4: Fill<uint>(x, y, maps, begin, constant); break;
                case 8: Fill<ulong>(x, y, maps, begin, constant); break;
                default: Fill<string>(x, y, maps, begin, constant); break;
            }
        }

        private static int Reflect(long j, long d)
        {
            if (d == 1) return 0;
            long period = 2 * (d - 1);
            long m = ((j % period) + period) % period;
            return (int)(m < d ? m : period - m);
        }

        private static void Fill<T>(Tensor x, Tensor y, int[][] maps, long[] begin, Tensor? constant)
        {
            var src = Elements.View<T>(x);
            var dst = Elements.View<T>(y);
            T value = constant is not null ? Elements.View<T>(constant)[0] : typeof(T) == typeof(string) ? (T)(object)"" : default!;
            int r = x.Rank;
            if (r == 0)
            {
                dst[0] = src[0];
                return;
            }
            if (y.Length == 0) return;
            var inStrides = ShapeUtil.Strides(x.Shape);
            var last = maps[r - 1];
            int width = last.Length;
            // The stretch of the last axis that maps 1:1 onto the input is copied as one span.
            int lo = (int)Math.Clamp(begin[r - 1], 0, width);
            int hi = (int)Math.Clamp(begin[r - 1] + x.Shape[r - 1], lo, width);
            int rows = y.Length / width;
            var idx = new int[r];
            for (int row = 0; row < rows; row++)
            {
                var dRow = dst.Slice(row * width, width);
                int srcRow = 0;
                bool inside = true;
                for (int k = 0; k < r - 1; k++)
                {
                    int m = maps[k][idx[k]];
                    if (m < 0) { inside = false; break; }
                    srcRow += m * inStrides[k];
                }
                if (!inside) dRow.Fill(value);
                else
                {
                    for (int i = 0; i < lo; i++) dRow[i] = last[i] < 0 ? value : src[srcRow + last[i]];
                    if (hi > lo) src.Slice(srcRow + last[lo], hi - lo).CopyTo(dRow[lo..hi]);
                    for (int i = hi; i < width; i++) dRow[i] = last[i] < 0 ? value : src[srcRow + last[i]];
                }
                for (int k = r - 2; k >= 0; k--)
                {
                    if (++idx[k] < maps[k].Length) break;
                    idx[k] = 0;
                }
            }
        }
    }
}
