using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// <c>quant.build.QTable</c> (docs/quantized-model.md, spec §9): <c>y = T[q − qmin]</c>, a gather from the table
/// convert stored (256 entries for int8 X, 65536 for int16). The output has the table's element type: int8, int16,
/// or float (the table a float reader gets).
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
    internal static void Gather<T>(Tensor x, ReadOnlySpan<T> table, Span<T> y, int start, int end) where T : unmanaged
    {
        if (x.Type == ElementType.Int8)
        {
            var q = x.ReadOnlySpan<sbyte>();
            for (int i = start; i < end; i++) y[i] = table[q[i] + 128];
        }
        else
        {
            var q = x.ReadOnlySpan<short>();
            for (int i = start; i < end; i++) y[i] = table[q[i] + 32768];
        }
    }
}
