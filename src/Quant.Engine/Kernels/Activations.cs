using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Activations, float32 vectorized (fused single pass; float16 and double through float/double scalar code):
/// <list type="bullet">
/// <item>Relu: max(0, x) (NaN stays NaN; also integer types).</item>
/// <item>LeakyRelu: x ≥ 0 ? x : alpha·x (alpha default 0.01).</item>
/// <item>Clip: min(max(x, lo), hi); opset &lt; 11 takes attributes min/max (defaults: lowest/highest float),
/// opset ≥ 11 optional scalar inputs (absent: lowest/highest of the type, as ONNX Runtime does).
/// lo &gt; hi gives hi everywhere. NaN stays NaN. All numeric types from opset 12.</item>
/// <item>HardSigmoid: max(0, min(1, alpha·x + beta)) (alpha 0.2, beta 0.5 by default); product and sum rounded
/// separately, not fused, as ONNX Runtime computes it (a fused multiply-add differs in the last bit, and in a
/// quantized graph a last-bit difference before a QuantizeLinear can flip a rounding).</item>
/// <item>HardSwish: x · max(0, min(1, (1/6)·x + 0.5)) with float32 1/6, product and sum rounded separately as
/// ONNX Runtime computes it (measured bit-exact on 2^20 values; the fused multiply-add differed on 6 %).</item>
/// <item>Gelu (opset 20, and com.microsoft Gelu): approximate="none": 0.5·x·(1 + erf(x/√2));
/// "tanh": 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))); evaluated in double, rounded once.</item>
/// </list>
/// </summary>
[KernelFamily]
internal static class ActivationKernels
{
    public static void Register(KernelRegistry r)
    {
        foreach (var v in new[] { 1, 6 })
        {
            r.Add("Relu", v, _ => new Relu());
            r.Add("LeakyRelu", v, s => new FloatMap<LeakyOp>(new LeakyOp(s.Node.GetFloat("alpha", 0.01f)), "LeakyRelu"));
            r.Add("HardSigmoid", v, s => new FloatMap<HardSigmoidOp>(
                new HardSigmoidOp(s.Node.GetFloat("alpha", 0.2f), s.Node.GetFloat("beta", 0.5f)), "HardSigmoid"));
            r.Add("Clip", v, s => new Clip(s.Node.GetFloat("min", float.MinValue), s.Node.GetFloat("max", float.MaxValue), attributeForm: true));
        }
        r.Add("Clip", 11, _ => new Clip(float.MinValue, float.MaxValue, attributeForm: false));
        r.Add("HardSwish", 14, _ => new FloatMap<HardSwishOp>(new HardSwishOp(), "HardSwish"));
        r.Add("Gelu", 20, CreateGelu);
        r.Add("Gelu", 1, CreateGelu, "com.microsoft");
    }

    private static IKernel CreateGelu(KernelSetup s)
    {
        var approx = s.Node.GetString("approximate", "none");
        if (approx is not ("none" or "tanh")) throw s.Error($"approximate='{approx}' is not supported (expected 'none' or 'tanh')");
        return new Gelu(approx == "tanh");
    }

    /// <summary>A float map computed the same way by the 512-bit, 256-bit and tail code.</summary>
    internal interface IVecOp
    {
        Vector256<float> Apply(Vector256<float> x);
        Vector512<float> Apply(Vector512<float> x);
        double Apply(double x);
    }

    internal readonly struct ReluOp : IVecOp
    {
        // MaxNative(0, x) returns x when x is NaN on x86 (maxps returns its second operand), so NaN propagates.
        public Vector256<float> Apply(Vector256<float> x) => Vector256.MaxNative(Vector256<float>.Zero, x);
        public Vector512<float> Apply(Vector512<float> x) => Vector512.MaxNative(Vector512<float>.Zero, x);
        public double Apply(double x) => double.IsNaN(x) ? x : Math.Max(0, x);
    }

    internal readonly struct LeakyOp(float alpha) : IVecOp
    {
        public Vector256<float> Apply(Vector256<float> x) =>
            Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(x, Vector256<float>.Zero), x, x * alpha);
        public Vector512<float> Apply(Vector512<float> x) =>
            Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(x, Vector512<float>.Zero), x, x * alpha);
        public double Apply(double x) => x >= 0 ? x : (double)alpha * x;
    }

    internal readonly struct ClipOp(float lo, float hi) : IVecOp
    {
        public Vector256<float> Apply(Vector256<float> x) =>
            Vector256.MinNative(Vector256.Create(hi), Vector256.MaxNative(Vector256.Create(lo), x));
        public Vector512<float> Apply(Vector512<float> x) =>
            Vector512.MinNative(Vector512.Create(hi), Vector512.MaxNative(Vector512.Create(lo), x));
        public double Apply(double x) => double.IsNaN(x) ? x : Math.Min(hi, Math.Max(lo, x));
    }

    internal readonly struct HardSigmoidOp(float alpha, float beta) : IVecOp
    {
        public Vector256<float> Apply(Vector256<float> x) =>
            Vector256.MinNative(Vector256<float>.One, Vector256.MaxNative(Vector256<float>.Zero,
                Vector256.Create(alpha) * x + Vector256.Create(beta)));
        public Vector512<float> Apply(Vector512<float> x) =>
            Vector512.MinNative(Vector512<float>.One, Vector512.MaxNative(Vector512<float>.Zero,
                Vector512.Create(alpha) * x + Vector512.Create(beta)));
        public double Apply(double x) => double.IsNaN(x) ? x : Math.Min(1, Math.Max(0, (double)alpha * x + beta));
    }

    internal readonly struct HardSwishOp : IVecOp
    {
        private const float Sixth = 1f / 6f;
        // Product and sum rounded separately, like HardSigmoid: bit for bit what ONNX Runtime computes.
        public Vector256<float> Apply(Vector256<float> x) =>
            x * Vector256.MinNative(Vector256<float>.One, Vector256.MaxNative(Vector256<float>.Zero,
                Vector256.Create(Sixth) * x + Vector256.Create(0.5f)));
        public Vector512<float> Apply(Vector512<float> x) =>
            x * Vector512.MinNative(Vector512<float>.One, Vector512.MaxNative(Vector512<float>.Zero,
                Vector512.Create(Sixth) * x + Vector512.Create(0.5f)));
        public double Apply(double x) => double.IsNaN(x) ? x : x * Math.Min(1, Math.Max(0, x / 6 + 0.5));
    }

    /// <summary>y = op(x) over spans of equal length (y may be x). Fully optimized from the first call: unoptimized tier-0 vector code is ~10x slower.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Map<TOp>(in TOp op, ReadOnlySpan<float> x, Span<float> y) where TOp : struct, IVecOp
    {
        int n = x.Length, i = 0;
        ref float xr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(x);
        ref float yr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(y);
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= n - 16; i += 16)
                op.Apply(Vector512.LoadUnsafe(ref xr, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
        }
        for (; i <= n - 8; i += 8)
            op.Apply(Vector256.LoadUnsafe(ref xr, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
        if (i < n)
        {
            // The tail goes through the same vector code on a padded copy, so every element is
            // computed identically whatever its position.
            Span<float> tmp = stackalloc float[8];
            tmp.Clear();
            x[i..].CopyTo(tmp);
            var v = op.Apply(Vector256.LoadUnsafe(ref tmp[0]));
            v.StoreUnsafe(ref tmp[0]);
            tmp[..(n - i)].CopyTo(y[i..]);
        }
    }

    private static void ApplyTo<TOp>(KernelContext ctx, in TOp op, Tensor x, Tensor y) where TOp : struct, IVecOp
    {
        switch (x.Type)
        {
            case ElementType.Float:
                {
                    var xs = (float[])x.Buffer;
                    var ys = (float[])y.Buffer;
                    var o = op;
                    ElementwiseChunk.For(ctx, x.Length, (s, e) => Map(o, xs.AsSpan(s, e - s), ys.AsSpan(s, e - s)));
                    return;
                }
            case ElementType.Double:
                {
                    var xs = x.ReadOnlySpan<double>(); var ys = y.Span<double>();
                    for (int i = 0; i < xs.Length; i++) ys[i] = op.Apply(xs[i]);
                    return;
                }
            case ElementType.Float16:
                {
                    var xs = x.ReadOnlySpan<Half>(); var ys = y.Span<Half>();
                    for (int i = 0; i < xs.Length; i++) ys[i] = (Half)op.Apply((double)xs[i]);
                    return;
                }
            default:
                throw ctx.Error($"element type {x.Type.OnnxName()} is not supported");
        }
    }

    private sealed class FloatMap<TOp>(TOp op, string name) : IKernel where TOp : struct, IVecOp
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            if (!ElementDispatch.IsFloat(x.Type)) throw ctx.Error($"{name} does not support {x.Type.OnnxName()}");
            var y = ctx.Output(0, x.Type, x.Shape);
            ApplyTo(ctx, op, x, y);
        }
    }

    private sealed class Relu : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var y = ctx.Output(0, x.Type, x.Shape);
            if (ElementDispatch.IsFloat(x.Type)) { ApplyTo(ctx, new ReluOp(), x, y); return; }
            var v = new IntRelu { X = x, Y = y };
            if (!ElementDispatch.Numeric(x.Type, ref v)) throw ctx.Error($"element type {x.Type.OnnxName()} is not supported");
        }

        private struct IntRelu : INumericVisitor
        {
            public Tensor X, Y;
            public readonly void Visit<T>() where T : unmanaged, INumber<T> => TensorPrimitives.Max(X.ReadOnlySpan<T>(), T.Zero, Y.Span<T>());
        }
    }

    private sealed class Clip(float attrMin, float attrMax, bool attributeForm) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var y = ctx.Output(0, x.Type, x.Shape);
            var lo = attributeForm ? null : ctx.Input(1);
            var hi = attributeForm ? null : ctx.Input(2);
            foreach (var (b, what) in new[] { (lo, "min"), (hi, "max") })
            {
                if (b is null) continue;
                if (b.Length != 1) throw ctx.Error($"{what} must be a single value, got shape {Broadcast.Format(b.Shape)}");
                if (b.Type != x.Type) throw ctx.Error($"{what} is {b.Type.OnnxName()} but the input is {x.Type.OnnxName()}");
            }
            if (x.Type == ElementType.Float)
            {
                float l = lo is null ? attrMin : lo.ReadOnlySpan<float>()[0];
                float h = hi is null ? attrMax : hi.ReadOnlySpan<float>()[0];
                ApplyTo(ctx, new ClipOp(l, h), x, y);
                return;
            }
            var v = new ClipVisitor { X = x, Y = y, Lo = lo, Hi = hi };
            if (!ElementDispatch.Numeric(x.Type, ref v)) throw ctx.Error($"element type {x.Type.OnnxName()} is not supported");
        }

        private struct ClipVisitor : INumericVisitor
        {
            public Tensor X, Y;
            public Tensor? Lo, Hi;

            public readonly void Visit<T>() where T : unmanaged, INumber<T>
            {
                T lo = Lo is null ? T.CreateSaturating(double.NegativeInfinity) : Lo.ReadOnlySpan<T>()[0];
                T hi = Hi is null ? T.CreateSaturating(double.PositiveInfinity) : Hi.ReadOnlySpan<T>()[0];
                if (typeof(T) == typeof(double) || typeof(T) == typeof(Half))
                {
                    // Lowest/highest finite values, as for float.
                    if (Lo is null) lo = T.CreateSaturating(typeof(T) == typeof(double) ? double.MinValue : (double)Half.MinValue);
                    if (Hi is null) hi = T.CreateSaturating(typeof(T) == typeof(double) ? double.MaxValue : (double)Half.MaxValue);
                }
                TensorPrimitives.Max(X.ReadOnlySpan<T>(), lo, Y.Span<T>());
                TensorPrimitives.Min(Y.Span<T>(), hi, Y.Span<T>());
            }
        }
    }

    private sealed class Gelu(bool tanh) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            if (!ElementDispatch.IsFloat(x.Type)) throw ctx.Error($"Gelu does not support {x.Type.OnnxName()}");
            var y = ctx.Output(0, x.Type, x.Shape);
            if (x.Type == ElementType.Float)
            {
                var xs = (float[])x.Buffer; var ys = (float[])y.Buffer;
                ElementwiseChunk.For(ctx, x.Length, (s, e) =>
                {
                    for (int i = s; i < e; i++) ys[i] = (float)Apply(xs[i]);
                }, 8 * 1024);
            }
            else if (x.Type == ElementType.Double)
            {
                var xs = x.ReadOnlySpan<double>(); var ys = y.Span<double>();
                for (int i = 0; i < xs.Length; i++) ys[i] = Apply(xs[i]);
            }
            else
            {
                var xs = x.ReadOnlySpan<Half>(); var ys = y.Span<Half>();
                for (int i = 0; i < xs.Length; i++) ys[i] = (Half)Apply((double)xs[i]);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private double Apply(double x)
        {
            if (tanh)
            {
                const double k = 0.7978845608028654; // sqrt(2/pi)
                return 0.5 * x * (1 + Math.Tanh(k * (x + 0.044715 * x * x * x)));
            }
            return 0.5 * x * (1 + UnaryKernels.ErfScalar(x * 0.7071067811865476));
        }
    }
}
