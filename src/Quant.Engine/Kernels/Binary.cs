using System.Numerics;
using System.Numerics.Tensors;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Elementwise arithmetic with numpy broadcasting: Add, Sub, Mul, Div (exactly two inputs) and
/// Max, Min (one or more inputs), for every numeric type (float, double, float16, signed and
/// unsigned 8–64-bit integers). Results are computed in the element type with IEEE rounding for
/// floats and wrap-around for integers; integer Div truncates toward zero and division by zero is
/// an error. Max/Min of floats propagate NaN (if either operand is NaN the result is NaN) and
/// order -0 below +0. Opset 7+ semantics (the legacy broadcast/axis attributes of opset 1–6 are rejected).
/// </summary>
[KernelFamily]
internal static class BinaryKernels
{
    public static void Register(KernelRegistry r)
    {
        foreach (var v in new[] { 1, 6, 7 })
        {
            r.Add("Add", v, s => Arith<AddOp>.Create(s, false));
            r.Add("Sub", v, s => Arith<SubOp>.Create(s, false));
            r.Add("Mul", v, s => Arith<MulOp>.Create(s, false));
            r.Add("Div", v, s => Arith<DivOp>.Create(s, false));
        }
        foreach (var v in new[] { 1, 6, 8 })
        {
            r.Add("Max", v, s => Arith<MaxOp>.Create(s, true));
            r.Add("Min", v, s => Arith<MinOp>.Create(s, true));
        }
    }

    /// <summary>One arithmetic op over contiguous runs: both operands walking, or one held constant.</summary>
    internal interface IOp
    {
        static abstract void VV<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> d) where T : unmanaged, INumber<T>;
        static abstract void VS<T>(ReadOnlySpan<T> a, T b, Span<T> d) where T : unmanaged, INumber<T>;
        static abstract void SV<T>(T a, ReadOnlySpan<T> b, Span<T> d) where T : unmanaged, INumber<T>;
    }

    internal readonly struct AddOp : IOp
    {
        public static void VV<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Add(a, b, d);
        public static void VS<T>(ReadOnlySpan<T> a, T b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Add(a, b, d);
        public static void SV<T>(T a, ReadOnlySpan<T> b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Add(b, a, d);
    }

    internal readonly struct SubOp : IOp
    {
        public static void VV<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Subtract(a, b, d);
        public static void VS<T>(ReadOnlySpan<T> a, T b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Subtract(a, b, d);
        public static void SV<T>(T a, ReadOnlySpan<T> b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Subtract(a, b, d);
    }

    internal readonly struct MulOp : IOp
    {
        public static void VV<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Multiply(a, b, d);
        public static void VS<T>(ReadOnlySpan<T> a, T b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Multiply(a, b, d);
        public static void SV<T>(T a, ReadOnlySpan<T> b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Multiply(b, a, d);
    }

    internal readonly struct DivOp : IOp
    {
        public static void VV<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Divide(a, b, d);
        public static void VS<T>(ReadOnlySpan<T> a, T b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Divide(a, b, d);
        public static void SV<T>(T a, ReadOnlySpan<T> b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Divide(a, b, d);
    }

    internal readonly struct MaxOp : IOp
    {
        public static void VV<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Max(a, b, d);
        public static void VS<T>(ReadOnlySpan<T> a, T b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Max(a, b, d);
        public static void SV<T>(T a, ReadOnlySpan<T> b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Max(b, a, d);
    }

    internal readonly struct MinOp : IOp
    {
        public static void VV<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Min(a, b, d);
        public static void VS<T>(ReadOnlySpan<T> a, T b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Min(a, b, d);
        public static void SV<T>(T a, ReadOnlySpan<T> b, Span<T> d) where T : unmanaged, INumber<T> => TensorPrimitives.Min(b, a, d);
    }

    /// <summary>
    /// d = op(a, b) over a plan of two inputs. <paramref name="d"/> may be the same array as
    /// <paramref name="a"/> when a is dense (in-place folding of variadic inputs).
    /// </summary>
    internal static void Apply<TOp, T>(KernelContext? ctx, BroadcastPlan plan, T[] a, T[] b, T[] d)
        where TOp : IOp where T : unmanaged, INumber<T>
    {
        bool sa = plan.InnerSteps[0], sb = plan.InnerSteps[1];
        plan.Run(ctx, (o, len, offs) =>
        {
            var dst = d.AsSpan(o, len);
            if (sa && sb) TOp.VV<T>(a.AsSpan(offs[0], len), b.AsSpan(offs[1], len), dst);
            else if (sa) TOp.VS(a.AsSpan(offs[0], len), b[offs[1]], dst);
            else if (sb) TOp.SV(a[offs[0]], b.AsSpan(offs[1], len), dst);
            else
            {
                // Only when the output's inner run is a single element (both operands constant over it).
                TOp.VV<T>(a.AsSpan(offs[0], 1), b.AsSpan(offs[1], 1), dst[..1]);
                dst[1..].Fill(dst[0]);
            }
        });
    }

    private sealed class Arith<TOp> : IKernel where TOp : IOp
    {
        private readonly BroadcastPlanCache _pairCache = new();

        public static IKernel Create(KernelSetup s, bool variadic)
        {
            if (s.Opset < 7 && s.Node.GetInt("broadcast", 0) != 0)
                throw s.Error("the legacy 'broadcast'/'axis' attributes (opset < 7) are not supported; re-export with opset 7 or later");
            if (!variadic && s.Node.Inputs.Count != 2) throw s.Error($"expects 2 inputs, got {s.Node.Inputs.Count}");
            if (variadic && s.Node.Inputs.Count < 1) throw s.Error("expects at least one input");
            return new Arith<TOp>();
        }

        public void Run(KernelContext ctx)
        {
            int n = ctx.InputCount;
            var inputs = new Tensor[n];
            for (int i = 0; i < n; i++)
            {
                inputs[i] = ctx.Required(i);
                if (inputs[i].Type != inputs[0].Type)
                    throw ctx.Error($"input {i} is {inputs[i].Type.OnnxName()} but input 0 is {inputs[0].Type.OnnxName()}");
            }
            var v = new Visitor { Ctx = ctx, Inputs = inputs, Cache = _pairCache };
            if (!ElementDispatch.Numeric(inputs[0].Type, ref v))
                throw ctx.Error($"element type {inputs[0].Type.OnnxName()} is not supported");
        }

        private struct Visitor : INumericVisitor
        {
            public KernelContext Ctx;
            public Tensor[] Inputs;
            public BroadcastPlanCache Cache;

            public readonly void Visit<T>() where T : unmanaged, INumber<T>
            {
                var shapes = Inputs.Select(t => t.Shape).ToArray();
                var outShape = Broadcast.TryShape(shapes, out var error) ?? throw Ctx.Error(error!);
                var y = Ctx.Output(0, Inputs[0].Type, outShape);
                var d = (T[])y.Buffer;
                if (y.Length == 0) return;
                try
                {
                    if (Inputs.Length == 1)
                    {
                        Array.Copy(Inputs[0].Buffer, d, y.Length);
                        return;
                    }
                    var plan = Cache.Get(outShape, Inputs[0].Shape, Inputs[1].Shape);
                    Apply<TOp, T>(Ctx, plan, (T[])Inputs[0].Buffer, (T[])Inputs[1].Buffer, d);
                    for (int k = 2; k < Inputs.Length; k++)
                    {
                        var p = BroadcastPlan.CreateTo(outShape, outShape, Inputs[k].Shape);
                        Apply<TOp, T>(Ctx, p, d, (T[])Inputs[k].Buffer, d);
                    }
                }
                catch (DivideByZeroException)
                {
                    throw Ctx.Error("integer division by zero");
                }
                catch (AggregateException e) when (e.Flatten().InnerExceptions.Any(x => x is DivideByZeroException))
                {
                    throw Ctx.Error("integer division by zero");
                }
            }
        }
    }
}

/// <summary>
/// Pow(X, Y) = X^Y with numpy broadcasting; the result has X's type. float X with a float, integer
/// or unsigned exponent: y = MathF.Pow(x, (float)e), except that a single exponent of 1, 2, 3 or 0.5
/// becomes x, x*x, x*x*x, sqrt(x) (what ONNX Runtime does; for 2 and 0.5 this is the correctly
/// rounded result). Other X types (int32, int64, double, float16): computed as Math.Pow in double and
/// converted back (integers truncate toward zero and saturate).
/// </summary>
[KernelFamily]
internal static class PowKernels
{
    public static void Register(KernelRegistry r)
    {
        foreach (var v in new[] { 1, 7 })
            r.Add("Pow", v, s =>
            {
                if (s.Opset < 7 && s.Node.GetInt("broadcast", 0) != 0)
                    throw s.Error("the legacy 'broadcast'/'axis' attributes (opset < 7) are not supported");
                return new Pow();
            });
    }

    private sealed class Pow : IKernel
    {
        private readonly BroadcastPlanCache _cache = new();

        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var e = ctx.Required(1);
            var outShape = Broadcast.TryShape([x.Shape, e.Shape], out var error) ?? throw ctx.Error(error!);
            var plan = _cache.Get(outShape, x.Shape, e.Shape);
            var y = ctx.Output(0, x.Type, outShape);
            if (y.Length == 0) return;
            if (x.Type == ElementType.Float)
            {
                var xs = (float[])x.Buffer;
                var es = e.Type == ElementType.Float ? (float[])e.Buffer : ToFloat(e);
                var ys = (float[])y.Buffer;
                if (plan.IsScalar(1) && es[0] is 1f or 2f or 3f or 0.5f && plan.IsDense(0))
                {
                    float p = es[0];
                    ElementwiseChunk.For(ctx, y.Length, (s0, s1) =>
                    {
                        var src = xs.AsSpan(s0, s1 - s0);
                        var dst = ys.AsSpan(s0, s1 - s0);
                        if (p == 1f) src.CopyTo(dst);
                        else if (p == 0.5f) TensorPrimitives.Sqrt(src, dst);
                        else
                        {
                            TensorPrimitives.Multiply(src, src, dst);
                            if (p == 3f) TensorPrimitives.Multiply(dst, src, dst);
                        }
                    });
                    return;
                }
                plan.Run(ctx, (o, len, offs) =>
                {
                    bool sx = plan.InnerSteps[0], se = plan.InnerSteps[1];
                    for (int i = 0; i < len; i++)
                        ys[o + i] = MathF.Pow(xs[offs[0] + (sx ? i : 0)], es[offs[1] + (se ? i : 0)]);
                });
                return;
            }
            var xd = ToDouble(x);
            var ed = ToDouble(e);
            var r = new double[y.Length];
            plan.Walk(0, y.Length, (o, len, offs) =>
            {
                bool sx = plan.InnerSteps[0], se = plan.InnerSteps[1];
                for (int i = 0; i < len; i++)
                    r[o + i] = Math.Pow(xd[offs[0] + (sx ? i : 0)], ed[offs[1] + (se ? i : 0)]);
            });
            var back = new FromDouble { Source = r, Target = y };
            if (!ElementDispatch.Numeric(y.Type, ref back)) throw ctx.Error($"Pow does not support base type {x.Type.OnnxName()}");
        }

        private static float[] ToFloat(Tensor t)
        {
            var d = ToDouble(t);
            var f = new float[d.Length];
            for (int i = 0; i < d.Length; i++) f[i] = (float)d[i];
            return f;
        }

        private static double[] ToDouble(Tensor t)
        {
            var v = new ToDoubleVisitor { Source = t };
            if (!ElementDispatch.Numeric(t.Type, ref v)) throw new NotSupportedException($"Pow does not support {t.Type.OnnxName()} operands");
            return v.Result!;
        }

        private struct ToDoubleVisitor : INumericVisitor
        {
            public Tensor Source;
            public double[]? Result;

            public void Visit<T>() where T : unmanaged, INumber<T>
            {
                var s = Source.ReadOnlySpan<T>();
                Result = new double[s.Length];
                for (int i = 0; i < s.Length; i++) Result[i] = double.CreateTruncating(s[i]);
            }
        }

        private struct FromDouble : INumericVisitor
        {
            public double[] Source;
            public Tensor Target;

            public readonly void Visit<T>() where T : unmanaged, INumber<T>
            {
                var d = Target.Span<T>();
                for (int i = 0; i < d.Length; i++) d[i] = T.CreateSaturating(Source[i]);
            }
        }
    }
}
