using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// A float activation a GEMM-type op applies to fl32(acc·S_m) before its output (the <c>activation</c> attribute,
/// docs/quantized-model.md): the same float arithmetic as the engine's own kernel for that op, so a fused QConv gives
/// the bits of QConv(to = float) → HardSwish → QuantizeLinear. Only HardSwish today (the hard-swish graph
/// preparation fuses from PaddleOCR's decomposed form); Relu and Clip are integer clamps already.
/// </summary>
internal sealed class FusedActivation
{
    public string Name { get; }

    private FusedActivation(string name) => Name = name;

    /// <summary>The node's <c>activation</c> attribute, or null when it has none.</summary>
    public static FusedActivation? Parse(KernelSetup s)
    {
        if (!s.Node.Has("activation")) return null;
        var name = s.Node.GetString("activation", "");
        if (name != "HardSwish") throw s.Error($"activation '{name}' is not supported (only \"HardSwish\"; Relu and Clip are the clamp_min/clamp_max attributes)");
        return new FusedActivation(name);
    }

    /// <summary>One element, as <see cref="ActivationKernels.HardSwishOp"/> computes a lane (product and sum rounded separately).</summary>
    /// <remarks>x is finite here (a product of an integer and a finite scale), so Min/Max need no NaN care.</remarks>
    public float Scalar(float x)
    {
        float gate = Sixth * x;
        gate += 0.5f;
        return x * Math.Min(1f, Math.Max(0f, gate));
    }

    private const float Sixth = 1f / 6f;

    /// <summary>Sixteen lanes of the activation: the very lane function <see cref="Map"/> applies.</summary>
    public Vector512<float> Apply(Vector512<float> x) => new ActivationKernels.HardSwishOp().Apply(x);

    /// <summary>Sixteen accumulators to fl32(acc·s): the arithmetic of <see cref="ScaleToFloat"/>'s AVX-512 step.</summary>
    public static Vector512<float> ScaleToFloat(Vector512<int> acc, Vector512<double> s) =>
        Vector512.Create(Avx512F.ConvertToVector256Single(Avx512F.ConvertToVector512Double(acc.GetLower()) * s),
                         Avx512F.ConvertToVector256Single(Avx512F.ConvertToVector512Double(acc.GetUpper()) * s));

    /// <summary>The activation over a run, in place, with the float engine's vector map.</summary>
    public void Map(Span<float> x) => ActivationKernels.Map(new ActivationKernels.HardSwishOp(), x, x);

    /// <summary>
    /// y[i] = fl32((double)acc[i]·s): int32 → double is exact, then one product and one rounding to float (round to
    /// nearest even, as the scalar cast); sixteen per step with AVX-512, eight with AVX.
    /// </summary>
    public static void ScaleToFloat(ReadOnlySpan<int> acc, double s, Span<float> y)
    {
        int i = 0;
        if (Avx512F.IsSupported)
        {
            var sv = Vector512.Create(s);
            ref int ar = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(acc);
            ref float yr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(y);
            for (; i <= acc.Length - 16; i += 16)
                ScaleToFloat(Vector512.LoadUnsafe(ref ar, (nuint)i), sv).StoreUnsafe(ref yr, (nuint)i);
        }
        if (Avx.IsSupported)
        {
            var sv = Vector256.Create(s);
            ref int ar = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(acc);
            ref float yr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(y);
            for (; i <= acc.Length - 8; i += 8)
            {
                var lo = Avx.ConvertToVector128Single(Avx.Multiply(Avx.ConvertToVector256Double(Vector128.LoadUnsafe(ref ar, (nuint)i)), sv));
                var hi = Avx.ConvertToVector128Single(Avx.Multiply(Avx.ConvertToVector256Double(Vector128.LoadUnsafe(ref ar, (nuint)i + 4)), sv));
                Vector256.Create(lo, hi).StoreUnsafe(ref yr, (nuint)i);
            }
        }
        for (; i < acc.Length; i++) y[i] = (float)(acc[i] * s);
    }
}
