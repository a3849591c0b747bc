using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// What the <c>quant.build</c> kernels share (docs/quantized-model.md, "Conventions"): the domain, the output type,
/// zero points and clamp bounds from attributes, the multiplier/shift inputs, and the span steps every elementwise
/// kernel is built from: load integers as <c>q − z</c> in int64 lanes, then requantize them into the output.
/// Both steps have a scalar reference and an AVX-512 path that give the same bits (exact integer arithmetic).
/// </summary>
internal static class QuantBuildOps
{
    /// <summary>The quantized model's operator domain: the one definition (convert's <c>LoweringEmitter.Domain</c> and
    /// compile's cost families read it from here).</summary>
    public const string Domain = "quant.build";

    /// <summary>Elements per step of the chunked span pipeline (two int64 buffers of this size live on the stack).</summary>
    public const int Chunk = 512;

    /// <summary>The <c>to</c> attribute: int8 or int16 (the integer outputs of the elementwise and averaging ops).</summary>
    public static ElementType OutputType(KernelSetup s)
    {
        if (!s.Node.Attributes.TryGetValue("to", out var a)) throw s.Error("the 'to' attribute (output type) is required");
        var t = (ElementType)a.Int;
        if (t is not (ElementType.Int8 or ElementType.Int16))
            throw s.Error($"'to' is {t.OnnxName()} (code {a.Int}); this op writes int8 (3) or int16 (5)");
        return t;
    }

    /// <summary>The output attributes every requantizing op carries: <c>to</c>, <c>y_zero_point</c> and the clamp bounds.</summary>
    public static OutputFormat Output(KernelSetup s)
    {
        var to = OutputType(s);
        var (lo, hi) = Clamp(s, to);
        return new OutputFormat(to, ZeroPoint(s, "y_zero_point", to), lo, hi);
    }

    /// <summary>A zero-point attribute (default 0), which must lie in <paramref name="t"/>'s range.</summary>
    public static int ZeroPoint(KernelSetup s, string name, ElementType t)
    {
        long z = s.Node.GetInt(name, 0);
        var (lo, hi) = RangeOf(t);
        if (z < lo || z > hi) throw s.Error($"{name} {z} lies outside {t.OnnxName()} [{lo}, {hi}]");
        return (int)z;
    }

    /// <summary>The range of an integer input or output type.</summary>
    public static (long Min, long Max) RangeOf(ElementType t) => t switch
    {
        ElementType.Int8 => (sbyte.MinValue, sbyte.MaxValue),
        ElementType.Int16 => (short.MinValue, short.MaxValue),
        ElementType.Int32 => (int.MinValue, int.MaxValue),
        ElementType.Int64 => (long.MinValue, long.MaxValue),
        _ => (0, 0),
    };

    /// <summary><c>clamp_min</c>/<c>clamp_max</c> (defaults: the type's range), applied after saturation.</summary>
    public static (int Lo, int Hi) Clamp(KernelSetup s, ElementType t)
    {
        var (qmin, qmax) = Requantize.Range(t);
        long lo = s.Node.GetInt("clamp_min", qmin), hi = s.Node.GetInt("clamp_max", qmax);
        if (lo > hi) throw s.Error($"clamp_min {lo} is above clamp_max {hi}");
        // Saturating, then clamping, equals clamping to the intersection of the two ranges.
        return ((int)Math.Clamp(lo, qmin, qmax), (int)Math.Clamp(hi, qmin, qmax));
    }

    /// <summary>The int32 <c>multiplier</c> and <c>shift</c> inputs at <paramref name="at"/> and at + 1 (spec §2.1 pairs).</summary>
    public static (int[] M, int[] N) Multipliers(KernelContext ctx, int at, bool signedAllowed = false)
    {
        var mt = ctx.Required(at);
        var nt = ctx.Required(at + 1);
        if (mt.Type != ElementType.Int32 || nt.Type != ElementType.Int32)
            throw ctx.Error($"multiplier and shift must be int32, not {mt.Type.OnnxName()} and {nt.Type.OnnxName()}");
        if (mt.Length != nt.Length || mt.Length == 0)
            throw ctx.Error($"multiplier has {mt.Length} entries and shift {nt.Length}; they must be equal and non-empty");
        var m = mt.ReadOnlySpan<int>().ToArray();
        var n = nt.ReadOnlySpan<int>().ToArray();
        for (int i = 0; i < m.Length; i++)
        {
            // A zero divisor entry of QDiv carries shift −1 (docs/quantized-model.md); everything else is Mult's range.
            if (signedAllowed && n[i] == -1) continue;
            if (n[i] < 0 || n[i] > Requantize.MaxShift)
                throw ctx.Error($"shift[{i}] = {n[i]} lies outside [0, {Requantize.MaxShift}]");
            if (m[i] < 0 && !signedAllowed) throw ctx.Error($"multiplier[{i}] = {m[i]} is negative");
        }
        return (m, n);
    }

    /// <summary>
    /// <paramref name="length"/> elements of an integer tensor from <paramref name="offset"/> as <c>q − z</c> in int64;
    /// with <paramref name="steps"/> false the one element at <paramref name="offset"/> fills the span (a broadcast run).
    /// </summary>
    public static void Load(Tensor t, int offset, int length, bool steps, int zeroPoint, Span<long> dst, bool vector = true)
    {
        dst = dst[..length];
        if (!steps) { dst.Fill(Element(t, offset) - zeroPoint); return; }
        switch (t.Type)
        {
            case ElementType.Int8: Load(t.ReadOnlySpan<sbyte>().Slice(offset, length), zeroPoint, dst, vector); break;
            case ElementType.Int16: Load(t.ReadOnlySpan<short>().Slice(offset, length), zeroPoint, dst, vector); break;
            case ElementType.Int32: { var s = t.ReadOnlySpan<int>().Slice(offset, length); for (int i = 0; i < s.Length; i++) dst[i] = (long)s[i] - zeroPoint; break; }
            case ElementType.Int64: { var s = t.ReadOnlySpan<long>().Slice(offset, length); for (int i = 0; i < s.Length; i++) dst[i] = s[i] - zeroPoint; break; }
            default: throw new InvalidOperationException($"{t.Type.OnnxName()} is not an integer input of a quant.build op");
        }
    }

    /// <summary>va ← va·a + vb·b in int64 lanes (exact for the operands the kernels form: |va·a|, |vb·b| &lt; 2^47).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MultiplyAdd(Span<long> va, long a, ReadOnlySpan<long> vb, long b, bool vector = true)
    {
        int i = 0;
        if (vector && Avx512DQ.IsSupported)
        {
            var (ca, cb) = (Vector512.Create(a), Vector512.Create(b));
            ref long pa = ref MemoryMarshal.GetReference(va);
            ref long pb = ref MemoryMarshal.GetReference(vb);
            for (; i <= va.Length - 8; i += 8)
                (Avx512DQ.MultiplyLow(Vector512.LoadUnsafe(ref pa, (nuint)i), ca) + Avx512DQ.MultiplyLow(Vector512.LoadUnsafe(ref pb, (nuint)i), cb))
                    .StoreUnsafe(ref pa, (nuint)i);
        }
        for (; i < va.Length; i++) va[i] = va[i] * a + vb[i] * b;
    }

    /// <summary>va ← va·vb in int64 lanes (exact: |q − z| &lt; 2^17 on both sides).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Multiply(Span<long> va, ReadOnlySpan<long> vb, bool vector = true)
    {
        int i = 0;
        if (vector && Avx512DQ.IsSupported)
        {
            ref long pa = ref MemoryMarshal.GetReference(va);
            ref long pb = ref MemoryMarshal.GetReference(vb);
            for (; i <= va.Length - 8; i += 8)
                Avx512DQ.MultiplyLow(Vector512.LoadUnsafe(ref pa, (nuint)i), Vector512.LoadUnsafe(ref pb, (nuint)i)).StoreUnsafe(ref pa, (nuint)i);
        }
        for (; i < va.Length; i++) va[i] *= vb[i];
    }

    /// <summary>One element of an int8/int16/int32/int64 tensor.</summary>
    public static long Element(Tensor t, int i) => t.Type switch
    {
        ElementType.Int8 => t.ReadOnlySpan<sbyte>()[i],
        ElementType.Int16 => t.ReadOnlySpan<short>()[i],
        ElementType.Int32 => t.ReadOnlySpan<int>()[i],
        ElementType.Int64 => t.ReadOnlySpan<long>()[i],
        _ => throw new InvalidOperationException($"{t.Type.OnnxName()} is not an integer input of a quant.build op"),
    };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Load<T>(ReadOnlySpan<T> q, int zeroPoint, Span<long> dst, bool vector) where T : unmanaged
    {
        int i = 0;
        if (vector && Avx512F.IsSupported)
        {
            var z = Vector512.Create((long)zeroPoint);
            ref T src = ref MemoryMarshal.GetReference(q);
            ref long d = ref MemoryMarshal.GetReference(dst);
            for (; i <= q.Length - 8; i += 8)
            {
                // Eight values sign-extended to int64 lanes (vpmovsxbq / vpmovsxwq read only the low 8 elements).
                var w = typeof(T) == typeof(sbyte)
                    ? Avx512F.ConvertToVector512Int64(Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<long>(ref Unsafe.As<T, byte>(ref Unsafe.Add(ref src, i)))).AsSByte())
                    : Avx512F.ConvertToVector512Int64(Vector128.LoadUnsafe(ref Unsafe.As<T, short>(ref Unsafe.Add(ref src, i))));
                (w - z).StoreUnsafe(ref d, (nuint)i);
            }
        }
        for (; i < q.Length; i++)
            dst[i] = (typeof(T) == typeof(sbyte) ? Unsafe.As<T, sbyte>(ref Unsafe.AsRef(in q[i])) : (long)Unsafe.As<T, short>(ref Unsafe.AsRef(in q[i]))) - zeroPoint;
    }

    /// <summary>
    /// Spec §2.2 over a span: <c>y = clamp(RoundShift(v·m, n) + z_y, lo, hi)</c> written to <paramref name="y"/> (int8 or
    /// int16) from <paramref name="offset"/>. The caller proves |v·m| ≤ 2^62 for every element (the branch-free
    /// RoundShift of spec §1 on int64 lanes); a signed m is allowed (QDiv's σ). Wider products use <see cref="StoreWide"/>.
    /// </summary>
    public static void Store(ReadOnlySpan<long> v, long m, int n, int zy, int lo, int hi, Tensor y, int offset, bool vector = true)
    {
        // With |v·m| ≤ 2^62 a shift of 63 or more leaves |v·m / 2^n| ≤ 1/2, which rounds to the even 0.
        if (n >= 63) { m = 0; n = 0; }
        if (y.Type == ElementType.Int8) Store(v, m, n, zy, lo, hi, y.Span<sbyte>().Slice(offset, v.Length), vector);
        else Store(v, m, n, zy, lo, hi, y.Span<short>().Slice(offset, v.Length), vector);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Store<T>(ReadOnlySpan<long> v, long m, int n, int zy, int lo, int hi, Span<T> y, bool vector) where T : unmanaged
    {
        int i = 0;
        if (vector && Avx512DQ.IsSupported)
        {
            var vm = Vector512.Create(m);
            var bias = Vector512.Create(n == 0 ? 0L : (1L << (n - 1)) - 1);
            var parity = Vector512.Create(n == 0 ? 0L : 1L);
            var z = Vector512.Create((long)zy);
            var vlo = Vector512.Create((long)lo);
            var vhi = Vector512.Create((long)hi);
            ref long src = ref MemoryMarshal.GetReference(v);
            ref T dst = ref MemoryMarshal.GetReference(y);
            for (; i <= v.Length - 8; i += 8)
            {
                var p = Vector512.LoadUnsafe(ref src, (nuint)i) * vm;
                var r = Vector512.ShiftRightArithmetic(p + bias + (Vector512.ShiftRightArithmetic(p, n) & parity), n) + z;
                r = Vector512.Min(Vector512.Max(r, vlo), vhi);
                // The lanes are already inside the output range, so the truncating down-conversions are exact.
                if (typeof(T) == typeof(sbyte))
                    Unsafe.WriteUnaligned(ref Unsafe.As<T, byte>(ref Unsafe.Add(ref dst, i)), Avx512F.ConvertToVector128SByte(r).AsUInt64().ToScalar());
                else
                    Avx512F.ConvertToVector128Int16(r).StoreUnsafe(ref Unsafe.As<T, short>(ref Unsafe.Add(ref dst, i)));
            }
        }
        for (; i < v.Length; i++)
            y[i] = Narrow<T>(Math.Clamp(Requantize.RoundShift(v[i] * m, n) + zy, lo, hi));
    }

    /// <summary>The same rule for products that may exceed 2^62 (int64 inputs, int16 products with zero points): 128-bit, scalar.</summary>
    public static void StoreWide(ReadOnlySpan<long> v, int m, int n, int zy, int lo, int hi, Tensor y, int offset)
    {
        var t = y.Type;
        for (int i = 0; i < v.Length; i++)
        {
            long r = Math.Clamp(Requantize.Rq(v[i], m, n, zy, t), lo, hi);
            if (t == ElementType.Int8) y.Span<sbyte>()[offset + i] = (sbyte)r;
            else y.Span<short>()[offset + i] = (short)r;
        }
    }

    /// <summary>Writes one already-final integer (inside the output's range) at <paramref name="i"/>.</summary>
    public static void Set(Tensor y, int i, long value)
    {
        if (y.Type == ElementType.Int8) y.Span<sbyte>()[i] = (sbyte)value;
        else y.Span<short>()[i] = (short)value;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static T Narrow<T>(long x) where T : unmanaged
    {
        if (typeof(T) == typeof(sbyte)) { sbyte b = (sbyte)x; return Unsafe.As<sbyte, T>(ref b); }
        short s = (short)x;
        return Unsafe.As<short, T>(ref s);
    }

    /// <summary>The largest |q − z| of an integer type with zero point <paramref name="z"/>.</summary>
    public static long MaxMagnitude(ElementType t, long z)
    {
        var (lo, hi) = RangeOf(t);
        return t == ElementType.Int64 ? long.MaxValue : Math.Max(hi - z, z - lo);
    }

    /// <summary>Requires an int8 or int16 data input.</summary>
    public static void RequireQuantized(KernelContext ctx, Tensor t, string what)
    {
        if (t.Type is not (ElementType.Int8 or ElementType.Int16))
            throw ctx.Error($"{what} must be int8 or int16, not {t.Type.OnnxName()}");
    }
}

/// <summary>An op's output format: type, zero point and clamp bounds (already intersected with the type's range).</summary>
internal readonly record struct OutputFormat(ElementType To, int Zy, int Lo, int Hi);

/// <summary>
/// The shape every two-input quant.build kernel (QAdd, QSub, QMul, QDiv) shares: output format and input zero points
/// from attributes, int8/int16 inputs, and ONNX broadcasting walked in contiguous runs that are loaded as q − z.
/// </summary>
internal abstract class QuantBinaryKernel : IKernel
{
    private readonly BroadcastPlanCache _plans = new();

    protected QuantBinaryKernel(KernelSetup s)
    {
        Y = QuantBuildOps.Output(s);
        Za = (int)s.Node.GetInt("a_zero_point", 0);
        Zb = (int)s.Node.GetInt("b_zero_point", 0);
    }

    protected OutputFormat Y { get; }
    protected int Za { get; }
    protected int Zb { get; }

    public void Run(KernelContext ctx)
    {
        var a = ctx.Required(0);
        var b = ctx.Required(1);
        QuantBuildOps.RequireQuantized(ctx, a, "A");
        QuantBuildOps.RequireQuantized(ctx, b, "B");
        var run = Prepare(ctx, a, b);
        BroadcastPlan plan;
        try { plan = _plans.Get(null, a.Shape, b.Shape); }
        catch (ArgumentException e) { throw ctx.Error(e.Message); }
        var y = ctx.Output(0, Y.To, plan.OutShape);
        plan.Run(ctx, (outOffset, length, offsets) =>
        {
            Span<long> va = stackalloc long[QuantBuildOps.Chunk];
            Span<long> vb = stackalloc long[QuantBuildOps.Chunk];
            for (int done = 0; done < length; done += QuantBuildOps.Chunk)
            {
                int len = Math.Min(QuantBuildOps.Chunk, length - done);
                int atA = offsets[0] + (plan.InnerSteps[0] ? done : 0), atB = offsets[1] + (plan.InnerSteps[1] ? done : 0);
                QuantBuildOps.Load(a, atA, len, plan.InnerSteps[0], Za, va);
                QuantBuildOps.Load(b, atB, len, plan.InnerSteps[1], Zb, vb);
                run(va[..len], vb[..len], !plan.InnerSteps[1], y, outOffset + done);
            }
        });
    }

    /// <summary>One run: a − z_a and b − z_b (b constant over the run when <c>bConstant</c>), written to y from the offset.</summary>
    protected delegate void Chunk(Span<long> a, Span<long> b, bool bConstant, Tensor y, int offset);

    /// <summary>Reads the run-time parameters (multiplier inputs) and returns the per-chunk arithmetic.</summary>
    protected abstract Chunk Prepare(KernelContext ctx, Tensor a, Tensor b);
}
