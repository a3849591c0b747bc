using System.Numerics;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// BatchNormalization in inference mode (opset 1..15):
/// <c>y = scale * (x - mean) / sqrt(var + epsilon) + B</c>, applied per channel (axis 1) as one
/// multiply-add <c>y = x * a[c] + b[c]</c> with <c>a = scale / sqrt(var + epsilon)</c> and
/// <c>b = B - mean * a</c>. a and b are computed in double and rounded to float once; when all four
/// parameters are constants (as in exported models) that happens at plan time.
/// NaN in x propagates; a negative var + epsilon gives NaN like the formula.
/// Opset 6/7 with spatial = 0 (parameters shaped like one sample, C x D1 x ...) is applied element-wise.
/// training_mode = 1 (opset 14+; running statistics outputs) is not supported.
/// </summary>
[KernelFamily]
internal static class BatchNormalizationKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("BatchNormalization", 1, Create);
        r.Add("BatchNormalization", 6, Create);
        r.Add("BatchNormalization", 7, Create);
        r.Add("BatchNormalization", 9, Create);
        r.Add("BatchNormalization", 14, Create);
        r.Add("BatchNormalization", 15, Create);
    }

    private static IKernel Create(KernelSetup setup)
    {
        var node = setup.Node;
        if (node.GetInt("training_mode", 0) != 0)
            throw setup.Error("training_mode = 1 (batch statistics and running mean/var outputs) is not supported; export the model for inference");
        if (setup.Opset < 7 && node.GetInt("is_test", 1) == 0 && node.Outputs.Count > 1)
            throw setup.Error("is_test = 0 (training outputs) is not supported; export the model for inference");
        float epsilon = node.GetFloat("epsilon", 1e-5f);
        bool spatial = setup.Opset >= 9 || node.GetInt("spatial", 1) != 0;
        (float[] A, float[] B)? folded = null;
        if (setup.Constant(1) is { } s && setup.Constant(2) is { } b && setup.Constant(3) is { } m && setup.Constant(4) is { } v
            && s.Type == ElementType.Float && b.Type == ElementType.Float && m.Type == ElementType.Float && v.Type == ElementType.Float)
        {
            if (s.Length != b.Length || s.Length != m.Length || s.Length != v.Length)
                throw setup.Error($"scale, B, mean and var have {s.Length}, {b.Length}, {m.Length} and {v.Length} elements; they must match");
            folded = Fold(s.ReadOnlySpan<float>(), b.ReadOnlySpan<float>(), m.ReadOnlySpan<float>(), v.ReadOnlySpan<float>(), epsilon);
        }
        return new Kernel(epsilon, spatial, folded);
    }

    internal static (float[] A, float[] B) Fold(ReadOnlySpan<float> scale, ReadOnlySpan<float> bias, ReadOnlySpan<float> mean, ReadOnlySpan<float> var, float epsilon)
    {
        var a = new float[scale.Length];
        var b = new float[scale.Length];
        for (int c = 0; c < a.Length; c++)
        {
            double k = scale[c] / Math.Sqrt((double)var[c] + epsilon);
            a[c] = (float)k;
            b[c] = (float)(bias[c] - mean[c] * k);
        }
        return (a, b);
    }

    private sealed class Kernel(float epsilon, bool spatial, (float[] A, float[] B)? folded) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            if (x.Type != ElementType.Float)
                throw ctx.Error($"only float input is supported, not {x.Type.OnnxName()}");
            if (x.Rank < 2) throw ctx.Error($"input must have rank 2 or more (N x C x ...), not {x.Rank}");
            var (a, b) = folded ?? Params(ctx);
            int n = x.Shape[0], c = x.Shape[1];
            int inner = x.Length / Math.Max(1, n * c);
            int expected = spatial ? c : c * inner;
            if (a.Length != expected)
                throw ctx.Error(spatial
                    ? $"input has {c} channels but the parameters have {a.Length} elements"
                    : $"spatial = 0 needs parameters of {c * inner} elements (one sample), not {a.Length}");
            var y = ctx.Output(0, ElementType.Float, x.Shape);
            var xs = (float[])x.Buffer;
            var ys = (float[])y.Buffer;
            if (spatial)
            {
                ctx.For(n * c, p =>
                {
                    int ch = p % c;
                    Apply(xs.AsSpan(p * inner, inner), ys.AsSpan(p * inner, inner), a[ch], b[ch]);
                });
            }
            else
            {
                int sample = c * inner;
                ctx.For(n, i =>
                {
                    var xi = xs.AsSpan(i * sample, sample);
                    var yi = ys.AsSpan(i * sample, sample);
                    for (int k = 0; k < sample; k++) yi[k] = MathF.FusedMultiplyAdd(xi[k], a[k], b[k]);
                });
            }
        }

        private (float[] A, float[] B) Params(KernelContext ctx)
        {
            var s = ctx.Required(1); var b = ctx.Required(2); var m = ctx.Required(3); var v = ctx.Required(4);
            foreach (var t in new[] { s, b, m, v })
                if (t.Type != ElementType.Float) throw ctx.Error($"parameters must be float, not {t.Type.OnnxName()}");
            if (s.Length != b.Length || s.Length != m.Length || s.Length != v.Length)
                throw ctx.Error($"scale, B, mean and var have {s.Length}, {b.Length}, {m.Length} and {v.Length} elements; they must match");
            return Fold(s.ReadOnlySpan<float>(), b.ReadOnlySpan<float>(), m.ReadOnlySpan<float>(), v.ReadOnlySpan<float>(), epsilon);
        }
    }

    /// <summary>y[i] = x[i] * a + b (fused), vectorized.</summary>
    internal static void Apply(ReadOnlySpan<float> x, Span<float> y, float a, float b)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<float>.Count)
        {
            var va = new Vector<float>(a);
            var vb = new Vector<float>(b);
            for (; i <= x.Length - Vector<float>.Count; i += Vector<float>.Count)
                Vector.FusedMultiplyAdd(new Vector<float>(x[i..]), va, vb).CopyTo(y[i..]);
        }
        for (; i < x.Length; i++) y[i] = MathF.FusedMultiplyAdd(x[i], a, b);
    }
}
