using System.Numerics.Tensors;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// LayerNormalization (opset 17) over the trailing dimensions from <c>axis</c> (default −1), float32:
/// per set of n = d_axis·…·d_{r−1} elements, mean = Σx/n and var = Σ(x−mean)²/n (both accumulated in
/// double, two passes), InvStdDev = 1/√(var + epsilon) (epsilon default 1e-5), then
/// Y = ((x − mean)·InvStdDev)·Scale + B in float. Scale and B broadcast to the normalized shape
/// (B optional). Optional outputs Mean and InvStdDev (float) have shape [d_0, …, d_{axis−1}, 1, …, 1].
/// Only stash_type = 1 (float) is supported.
/// </summary>
[KernelFamily]
internal static class LayerNormalizationKernels
{
    public static void Register(KernelRegistry r) => r.Add("LayerNormalization", 17, s =>
    {
        long stash = s.Node.GetInt("stash_type", 1);
        if (stash != 1) throw s.Error($"stash_type={stash} is not supported (only 1, float)");
        return new LayerNorm((int)s.Node.GetInt("axis", -1), s.Node.GetFloat("epsilon", 1e-5f));
    });

    private sealed class LayerNorm(int axis, float epsilon) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var scale = ctx.Required(1);
            var bias = ctx.Input(2);
            if (x.Type != ElementType.Float) throw ctx.Error($"element type {x.Type.OnnxName()} is not supported (float only)");
            int rank = x.Rank;
            int a = axis < 0 ? axis + rank : axis;
            if (a < 0 || a >= rank) throw ctx.Error($"axis {axis} is out of range for rank {rank}");
            var normShape = x.Shape[a..];
            int rows = 1, n = 1;
            for (int d = 0; d < rank; d++) { if (d < a) rows *= x.Shape[d]; else n *= x.Shape[d]; }
            var sc = Expand(ctx, scale, normShape, n, "Scale");
            var bs = bias is null ? null : Expand(ctx, bias, normShape, n, "B");

            var y = ctx.Output(0, x.Type, x.Shape);
            var statShape = x.Shape.Select((d, i) => i < a ? d : 1).ToArray();
            float[]? meanOut = ctx.WantsOutput(1) ? (float[])ctx.Output(1, ElementType.Float, statShape).Buffer : null;
            float[]? invOut = ctx.WantsOutput(2) ? (float[])ctx.Output(2, ElementType.Float, statShape).Buffer : null;
            var xs = (float[])x.Buffer;
            var ys = (float[])y.Buffer;
            float eps = epsilon;
            void Row(int r)
            {
                var xr = xs.AsSpan(r * n, n);
                var yr = ys.AsSpan(r * n, n);
                double sum = 0;
                foreach (var v in xr) sum += v;
                double mean = sum / n;
                double sq = 0;
                foreach (var v in xr) { double dv = v - mean; sq += dv * dv; }
                float meanF = (float)mean;
                float inv = (float)(1 / Math.Sqrt(sq / n + eps));
                if (meanOut is not null) meanOut[r] = meanF;
                if (invOut is not null) invOut[r] = inv;
                TensorPrimitives.Subtract(xr, meanF, yr);
                TensorPrimitives.Multiply(yr, inv, yr);
                TensorPrimitives.Multiply(yr, sc, yr);
                if (bs is not null) TensorPrimitives.Add(yr, bs, yr);
            }
            if ((long)rows * n < ElementwiseChunk.MinElements || rows == 1) for (int r = 0; r < rows; r++) Row(r);
            else ctx.For(rows, Row);
        }

        private static float[] Expand(KernelContext ctx, Tensor t, int[] normShape, int n, string what)
        {
            if (t.Type != ElementType.Float) throw ctx.Error($"{what} must be float, not {t.Type.OnnxName()}");
            if (!Broadcast.CanBroadcastTo(t.Shape, normShape))
                throw ctx.Error($"{what} has shape {Broadcast.Format(t.Shape)}, which does not broadcast to the normalized shape {Broadcast.Format(normShape)}");
            var src = (float[])t.Buffer;
            if (t.Length == n) return src;
            var dst = new float[n];
            var plan = BroadcastPlan.CreateTo(normShape, t.Shape);
            plan.Walk(0, n, (o, len, offs) =>
            {
                if (plan.InnerSteps[0]) Array.Copy(src, offs[0], dst, o, len);
                else dst.AsSpan(o, len).Fill(src[offs[0]]);
            });
            return dst;
        }
    }
}
