using System.Numerics.Tensors;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Softmax: y_i = exp(x_i − max) · (1 / Σ_j exp(x_j − max)), the max taken over the softmax set
/// (numerically stable: no overflow for large inputs; an all −inf set gives NaN, as does any NaN in it).
/// Opset 1/11: the input is coerced to 2-D [d_0·…·d_{axis−1}, d_axis·…·d_{n−1}] (axis default 1) and
/// each row is one set. Opset 13: each set runs along the single dimension <c>axis</c> (default −1).
/// float32 vectorized; float16 through float; double in double.
/// </summary>
[KernelFamily]
internal static class SoftmaxKernels
{
    public static void Register(KernelRegistry r)
    {
        foreach (var v in new[] { 1, 11 }) r.Add("Softmax", v, s => new Softmax((int)s.Node.GetInt("axis", 1), coerce2D: true));
        r.Add("Softmax", 13, s => new Softmax((int)s.Node.GetInt("axis", -1), coerce2D: false));
    }

    private sealed class Softmax(int axis, bool coerce2D) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            int rank = x.Rank;
            int a = axis < 0 ? axis + rank : axis;
            if (rank == 0 ? a != 0 && a != -1 : a < 0 || a >= rank + (coerce2D ? 1 : 0))
                throw ctx.Error($"axis {axis} is out of range for rank {rank}");
            int outer = 1, n = 1, inner = 1;
            for (int d = 0; d < rank; d++)
            {
                if (d < a) outer *= x.Shape[d];
                else if (coerce2D || d == a) n *= x.Shape[d];
                else inner *= x.Shape[d];
            }
            var y = ctx.Output(0, x.Type, x.Shape);
            if (x.Length == 0) return;
            switch (x.Type)
            {
                case ElementType.Float:
                    Compute(ctx, (float[])x.Buffer, (float[])y.Buffer, outer, n, inner);
                    return;
                case ElementType.Float16:
                    {
                        var xf = new float[x.Length];
                        var yf = new float[x.Length];
                        TensorPrimitives.ConvertToSingle(x.ReadOnlySpan<Half>(), xf);
                        Compute(ctx, xf, yf, outer, n, inner);
                        TensorPrimitives.ConvertToHalf(yf, y.Span<Half>());
                        return;
                    }
                case ElementType.Double:
                    ComputeDouble(x.ReadOnlySpan<double>(), y.Span<double>(), outer, n, inner);
                    return;
                default:
                    throw ctx.Error($"element type {x.Type.OnnxName()} is not supported");
            }
        }
    }

    /// <summary>Softmax over sets of <paramref name="n"/> elements with stride <paramref name="inner"/>.</summary>
    internal static void Compute(KernelContext? ctx, float[] x, float[] y, int outer, int n, int inner)
    {
        if (inner == 1)
        {
            // Contiguous rows: split rows over threads.
            int rowsPerChunk = Math.Max(1, ElementwiseChunk.MinElements / 4 / Math.Max(1, n));
            int chunks = (outer + rowsPerChunk - 1) / rowsPerChunk;
            void Rows(int c)
            {
                int r1 = Math.Min(outer, (c + 1) * rowsPerChunk);
                for (int r = c * rowsPerChunk; r < r1; r++) Row(x.AsSpan(r * n, n), y.AsSpan(r * n, n));
            }
            if (ctx is null || chunks == 1) for (int c = 0; c < chunks; c++) Rows(c);
            else ctx.For(chunks, Rows);
            return;
        }
        void Block(int o)
        {
            // Along a strided axis: keep running max and sum per inner position, vectorized across them.
            var max = new float[inner];
            var sum = new float[inner];
            int baseOff = o * n * inner;
            x.AsSpan(baseOff, inner).CopyTo(max);
            for (int j = 1; j < n; j++) TensorPrimitives.Max(max, x.AsSpan(baseOff + j * inner, inner), max);
            Array.Clear(sum);
            for (int j = 0; j < n; j++)
            {
                var dst = y.AsSpan(baseOff + j * inner, inner);
                TensorPrimitives.Subtract(x.AsSpan(baseOff + j * inner, inner), max, dst);
                TensorPrimitives.Exp(dst, dst);
                TensorPrimitives.Add(sum, dst, sum);
            }
            TensorPrimitives.Reciprocal(sum, sum);
            for (int j = 0; j < n; j++)
            {
                var dst = y.AsSpan(baseOff + j * inner, inner);
                TensorPrimitives.Multiply(dst, sum, dst);
            }
        }
        if (ctx is null || outer == 1 || (long)outer * n * inner < ElementwiseChunk.MinElements) for (int o = 0; o < outer; o++) Block(o);
        else ctx.For(outer, Block);
    }

    private static void Row(ReadOnlySpan<float> x, Span<float> y)
    {
        float max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, y);
        TensorPrimitives.Exp(y, y);
        float sum = TensorPrimitives.Sum<float>(y);
        TensorPrimitives.Multiply(y, 1f / sum, y);
    }

    private static void ComputeDouble(ReadOnlySpan<double> x, Span<double> y, int outer, int n, int inner)
    {
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++)
            {
                int b = o * n * inner + i;
                double max = double.NegativeInfinity;
                bool nan = false;
                for (int j = 0; j < n; j++) { double v = x[b + j * inner]; nan |= double.IsNaN(v); max = Math.Max(max, v); }
                double sum = 0;
                for (int j = 0; j < n; j++) sum += y[b + j * inner] = Math.Exp(x[b + j * inner] - max);
                double inv = nan ? double.NaN : 1 / sum;
                for (int j = 0; j < n; j++) y[b + j * inner] *= inv;
            }
    }
}
