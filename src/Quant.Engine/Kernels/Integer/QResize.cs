using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// <c>quant.build.QResize</c> (docs/quantized-model.md, spec §8.4): ONNX Resize in mode <c>linear</c> on int8/int16.
/// The coordinates are the engine's Resize code (same inputs and attributes); per resized axis the fraction λ of the
/// source coordinate (in double) becomes the Q20 weights w1 = rne(λ·2^20), w0 = 2^20 − w1, and over the d ≤ 2
/// interpolated axes S = Σ_corners (Π w)·(q − z_x) (exact in int64, below 2^56), then
/// <c>y = Rq(S; Mult(x_scale / (2^(20d)·y_scale)), z_y)</c>. Antialias and tf_crop_and_resize are not integer rules.
/// </summary>
[KernelFamily]
internal static class QResizeKernels
{
    public static void Register(KernelRegistry r) => r.Add("QResize", 1, s => new Kernel(s), QuantBuildOps.Domain);

    /// <summary>Fraction bits of the interpolation weights.</summary>
    private const int WeightBits = 20;

    private sealed class Kernel : IKernel
    {
        private readonly ResizeKernels.Kernel _geometry;
        private readonly OutputFormat _y;
        private readonly int _zx;
        private readonly float _xScale, _yScale;

        public Kernel(KernelSetup s)
        {
            var attrs = ResizeKernels.Parse(s, legacy: false);
            if (attrs.Mode != ResizeKernels.Mode.Linear) throw s.Error("QResize computes mode 'linear' (nearest is plain Resize on integers)");
            if (attrs.Antialias) throw s.Error("QResize has no antialias rule");
            if (attrs.Coord == ResizeKernels.Coord.TfCropAndResize) throw s.Error("QResize has no tf_crop_and_resize rule");
            _geometry = new ResizeKernels.Kernel(attrs, ResizeKernels.ScalesSource.Inputs2And3, null);
            _y = QuantBuildOps.Output(s);
            _zx = (int)s.Node.GetInt("x_zero_point", 0);
            _xScale = s.Node.GetFloat("x_scale", float.NaN);
            _yScale = s.Node.GetFloat("y_scale", float.NaN);
            if (!(_xScale > 0) || !float.IsFinite(_xScale) || !(_yScale > 0) || !float.IsFinite(_yScale))
                throw s.Error($"x_scale {_xScale} and y_scale {_yScale} must be given, positive and finite");
        }

        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            QuantBuildOps.RequireQuantized(ctx, x, "X");
            if (x.Rank == 0) throw ctx.Error("cannot resize a scalar");
            var tables = _geometry.Tables(ctx, x, out var outShape);
            var y = ctx.Output(0, _y.To, outShape);
            if (y.Length == 0) return;
            if (x.Length == 0) throw ctx.Error("cannot resize an empty tensor to a non-empty one");
            int rank = x.Rank;
            var active = Enumerable.Range(0, rank).Where(d => !tables[d].IsIdentity).ToArray();
            if (active.Length > 2) throw ctx.Error($"{active.Length} axes are interpolated; the integer rule allows at most 2 (int64 sums)");
            // Per active axis and output position: the two source indices and their Q20 weights.
            var idx = active.Select(d => tables[d].Index).ToArray();
            var w1 = active.Select(d => tables[d].Fraction!.Select(f => (long)Math.Round(Math.ScaleB(f, WeightBits), MidpointRounding.ToEven)).ToArray()).ToArray();
            var (m, n) = Requantize.Mult((double)_xScale / (Math.ScaleB(1.0, WeightBits * active.Length) * _yScale));
            var inStride = new int[rank];
            for (int d = rank - 1, st = 1; d >= 0; d--) { inStride[d] = st; st *= x.Shape[d]; }
            bool[] isActive = new bool[rank];
            foreach (var d in active) isActive[d] = true;
            int last = outShape[rank - 1];
            int rows = y.Length / last;
            ctx.For(rows, row =>
            {
                // Output coordinates of this row (all but the last axis).
                var o = new int[rank];
                for (int d = rank - 2, rem = row; d >= 0; d--) { o[d] = rem % outShape[d]; rem /= outShape[d]; }
                for (int ol = 0; ol < last; ol++)
                {
                    o[rank - 1] = ol;
                    int baseOff = 0;
                    for (int d = 0; d < rank; d++) if (!isActive[d]) baseOff += o[d] * inStride[d];
                    long sum = 0;
                    int corners = 1 << active.Length;
                    for (int c = 0; c < corners; c++)
                    {
                        long weight = 1;
                        int off = baseOff;
                        for (int k = 0; k < active.Length; k++)
                        {
                            int d = active[k], tap = (c >> k) & 1, outLen = outShape[d];
                            long wk = w1[k][o[d]];
                            weight *= tap == 1 ? wk : (1L << WeightBits) - wk;
                            off += idx[k][tap * outLen + o[d]] * inStride[d];
                        }
                        if (weight != 0) sum += weight * (QuantBuildOps.Element(x, off) - _zx);
                    }
                    QuantBuildOps.Set(y, row * last + ol, Math.Clamp(Requantize.Rq(sum, m, n, _y.Zy, _y.To), _y.Lo, _y.Hi));
                }
            });
        }
    }
}
