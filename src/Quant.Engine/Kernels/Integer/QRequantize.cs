using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// <c>quant.build.QRequantize</c> (docs/quantized-model.md): <c>y = clamp(sat_to(RoundShift((x − z_x)·m, n) + z_y))</c>
/// for int8/int16/int32/int64 x, per tensor (one multiplier) or per channel along <c>axis</c>. Format changes of data
/// movement (spec §7), standalone Relu/Clip (§6.4), extra output formats of an accumulator (§4.4).
/// </summary>
[KernelFamily]
internal static class QRequantizeKernels
{
    public static void Register(KernelRegistry r) => r.Add("QRequantize", 1, s => new Kernel(s), QuantBuildOps.Domain);

    private sealed class Kernel : IKernel
    {
        private readonly long _axis;
        private readonly long _zx;
        private readonly OutputFormat _y;

        public Kernel(KernelSetup s)
        {
            _y = QuantBuildOps.Output(s);
            _zx = s.Node.GetInt("x_zero_point", 0);
            _axis = s.Node.GetInt("axis", 1);
        }

        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            if (x.Type is not (ElementType.Int8 or ElementType.Int16 or ElementType.Int32 or ElementType.Int64))
                throw ctx.Error($"X must be int8, int16, int32 or int64, not {x.Type.OnnxName()}");
            var (xmin, xmax) = QuantBuildOps.RangeOf(x.Type);
            if (_zx < xmin || _zx > xmax) throw ctx.Error($"x_zero_point {_zx} lies outside {x.Type.OnnxName()}");
            if (x.Type == ElementType.Int64 && _zx != 0) throw ctx.Error("an int64 accumulator has no zero point (x_zero_point must be 0)");
            var (m, n) = QuantBuildOps.Multipliers(ctx, 1);
            var y = ctx.Output(0, _y.To, x.Shape);
            int zx = (int)_zx;
            // |x − z_x| ≤ 2^31 keeps |v·m| ≤ 2^62 (m < 2^31): the int64 span path; wider inputs take the 128-bit one.
            bool narrow = x.Type != ElementType.Int64 && QuantBuildOps.MaxMagnitude(x.Type, zx) <= 1L << 31;
            if (m.Length == 1)
            {
                ElementwiseChunk.For(ctx, x.Length, (s, e) => Block(x, s, e - s, m[0], n[0], zx, y, narrow));
                return;
            }
            int axis = (int)(_axis < 0 ? _axis + x.Rank : _axis);
            if (axis < 0 || axis >= x.Rank) throw ctx.Error($"axis {_axis} is out of range for a rank-{x.Rank} input");
            int channels = x.Shape[axis];
            if (m.Length != channels) throw ctx.Error($"{m.Length} multipliers for {channels} channels along axis {axis}");
            int inner = 1;
            for (int d = axis + 1; d < x.Rank; d++) inner *= x.Shape[d];
            int rows = inner == 0 ? 0 : x.Length / inner;
            ctx.For(rows, row => Block(x, row * inner, inner, m[row % channels], n[row % channels], zx, y, narrow));
        }

        private void Block(Tensor x, int start, int length, int m, int n, int zx, Tensor y, bool narrow)
        {
            Span<long> v = stackalloc long[QuantBuildOps.Chunk];
            for (int at = start; at < start + length; at += QuantBuildOps.Chunk)
            {
                int len = Math.Min(QuantBuildOps.Chunk, start + length - at);
                if (narrow)
                {
                    QuantBuildOps.Load(x, at, len, true, zx, v);
                    QuantBuildOps.Store(v[..len], m, n, _y.Zy, _y.Lo, _y.Hi, y, at);
                }
                else
                {
                    // int64 inputs (x_zero_point 0, checked in Run) and int32 inputs with a zero point: exact in int64.
                    for (int i = 0; i < len; i++) v[i] = QuantBuildOps.Element(x, at + i) - zx;
                    QuantBuildOps.StoreWide(v[..len], m, n, _y.Zy, _y.Lo, _y.Hi, y, at);
                }
            }
        }
    }
}
