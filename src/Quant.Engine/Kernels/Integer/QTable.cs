using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// <c>quant.build.QTable</c> (docs/quantized-model.md, spec §9): <c>y = T[q − qmin]</c>, a gather from the table
/// convert stored (256 entries for int8 X, 65536 for int16). The output has the table's element type: int8, int16,
/// or float (the table a float reader gets). The int8 → int8 gather (the hot one: HardSigmoid gates, Sigmoid) looks up
/// 64 elements per step with AVX-512 VBMI byte permutes over the four 64-byte quarters of the table.
/// </summary>
[KernelFamily]
internal static class QTableKernels
{
    public static void Register(KernelRegistry r) => r.Add("QTable", 1, _ => new Kernel(), QuantBuildOps.Domain);

    private sealed class Kernel : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var table = ctx.Required(1);
            QuantBuildOps.RequireQuantized(ctx, x, "X");
            int entries = x.Type == ElementType.Int8 ? 256 : 65536;
            if (table.Length != entries) throw ctx.Error($"the table has {table.Length} entries; an {x.Type.OnnxName()} input needs {entries}");
            if (table.Type is not (ElementType.Int8 or ElementType.Int16 or ElementType.Float))
                throw ctx.Error($"the table must be int8, int16 or float, not {table.Type.OnnxName()}");
            var y = ctx.Output(0, table.Type, x.Shape);
            ElementwiseChunk.For(ctx, x.Length, (s, e) =>
            {
                switch (table.Type)
                {
                    case ElementType.Int8: Gather(x, table.ReadOnlySpan<sbyte>(), y.Span<sbyte>(), s, e); break;
                    case ElementType.Int16: Gather(x, table.ReadOnlySpan<short>(), y.Span<short>(), s, e); break;
                    default: Gather(x, table.ReadOnlySpan<float>(), y.Span<float>(), s, e); break;
                }
            });
        }
    }

    /// <summary>y[i] = table[x[i] − qmin] over [start, end); the index is always in range (the table covers the type).</summary>
    internal static void Gather<T>(Tensor x, ReadOnlySpan<T> table, Span<T> y, int start, int end, bool vector = true) where T : unmanaged
    {
        if (x.Type == ElementType.Int8)
        {
            var q = x.ReadOnlySpan<sbyte>();
            int i = start;
            if (vector && typeof(T) == typeof(sbyte) && Avx512Vbmi.IsSupported)
                i = Gather8(MemoryMarshal.AsBytes(q), MemoryMarshal.AsBytes(table), MemoryMarshal.AsBytes(y), start, end);
            for (; i < end; i++) y[i] = table[q[i] + 128];
        }
        else
        {
            var q = x.ReadOnlySpan<short>();
            for (int i = start; i < end; i++) y[i] = table[q[i] + 32768];
        }
    }

    /// <summary>
    /// 64 bytes per step: the index q + 128 is the byte q XOR 0x80; vpermi2b picks from entries 0–127 and 128–255 by
    /// its low 7 bits, and bit 7 chooses between the two. Returns where the scalar tail starts.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static int Gather8(ReadOnlySpan<byte> q, ReadOnlySpan<byte> table, Span<byte> y, int start, int end)
    {
        var t0 = Vector512.Create(table[..64]);
        var t1 = Vector512.Create(table.Slice(64, 64));
        var t2 = Vector512.Create(table.Slice(128, 64));
        var t3 = Vector512.Create(table.Slice(192, 64));
        var flip = Vector512.Create((byte)0x80);
        int i = start;
        for (; i <= end - 64; i += 64)
        {
            var idx = Vector512.Create(q.Slice(i, 64)) ^ flip;
            var low = Avx512Vbmi.PermuteVar64x8x2(t0, idx, t1);
            var high = Avx512Vbmi.PermuteVar64x8x2(t2, idx, t3);
            var upper = Vector512.GreaterThanOrEqual(idx, flip);
            Vector512.ConditionalSelect(upper, high, low).CopyTo(y.Slice(i, 64));
        }
        return i;
    }
}
