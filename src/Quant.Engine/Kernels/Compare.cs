using System.Numerics;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Equal(A, B) → bool with numpy broadcasting: y = (a == b) using the element type's equality
/// (floats: IEEE, so NaN is never equal to anything and -0 equals +0). All numeric types and bool.
/// </summary>
[KernelFamily]
internal static class CompareKernels
{
    public static void Register(KernelRegistry r)
    {
        foreach (var v in new[] { 1, 7 })
            r.Add("Equal", v, s =>
            {
                if (s.Opset < 7 && s.Node.GetInt("broadcast", 0) != 0)
                    throw s.Error("the legacy 'broadcast'/'axis' attributes (opset < 7) are not supported");
                return new EqualKernel();
            });
    }

    private sealed class EqualKernel : IKernel
    {
        private readonly BroadcastPlanCache _cache = new();

        public void Run(KernelContext ctx)
        {
            var a = ctx.Required(0);
            var b = ctx.Required(1);
            if (a.Type != b.Type) throw ctx.Error($"input B is {b.Type.OnnxName()} but input A is {a.Type.OnnxName()}");
            var outShape = Broadcast.TryShape([a.Shape, b.Shape], out var error) ?? throw ctx.Error(error!);
            var plan = _cache.Get(outShape, a.Shape, b.Shape);
            var y = ctx.Output(0, ElementType.Bool, outShape);
            if (a.Type == ElementType.Bool)
            {
                Compare<bool, BoolEq>(ctx, plan, (bool[])a.Buffer, (bool[])b.Buffer, (bool[])y.Buffer);
                return;
            }
            var v = new Visitor { Ctx = ctx, Plan = plan, A = a, B = b, Y = y };
            if (!ElementDispatch.Numeric(a.Type, ref v)) throw ctx.Error($"element type {a.Type.OnnxName()} is not supported");
        }

        private struct Visitor : INumericVisitor
        {
            public KernelContext Ctx;
            public BroadcastPlan Plan;
            public Tensor A, B, Y;

            public readonly void Visit<T>() where T : unmanaged, INumber<T> =>
                Compare<T, NumEq<T>>(Ctx, Plan, (T[])A.Buffer, (T[])B.Buffer, (bool[])Y.Buffer);
        }
    }

    internal interface IEq<T>
    {
        static abstract bool Eq(T a, T b);
    }

    private readonly struct NumEq<T> : IEq<T> where T : INumber<T>
    {
        public static bool Eq(T a, T b) => a == b;
    }

    private readonly struct BoolEq : IEq<bool>
    {
        public static bool Eq(bool a, bool b) => a == b;
    }

    private static void Compare<T, TEq>(KernelContext ctx, BroadcastPlan plan, T[] a, T[] b, bool[] y) where TEq : IEq<T>
    {
        bool sa = plan.InnerSteps[0], sb = plan.InnerSteps[1];
        plan.Run(ctx, (o, len, offs) =>
        {
            int ia = offs[0], ib = offs[1];
            if (sa && sb) for (int i = 0; i < len; i++) y[o + i] = TEq.Eq(a[ia + i], b[ib + i]);
            else if (sa) { var c = b[ib]; for (int i = 0; i < len; i++) y[o + i] = TEq.Eq(a[ia + i], c); }
            else if (sb) { var c = a[ia]; for (int i = 0; i < len; i++) y[o + i] = TEq.Eq(c, b[ib + i]); }
            else y.AsSpan(o, len).Fill(TEq.Eq(a[ia], b[ib]));
        });
    }
}
