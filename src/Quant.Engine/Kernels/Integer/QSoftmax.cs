using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// <c>quant.build.QSoftmax</c> (docs/quantized-model.md, spec §10), along one <c>axis</c> (ONNX Softmax-13 semantics):
/// per row d_i = max q − q_i, E_i = E[d_i] (0 beyond the stored table), S = Σ E_i in int64, R = ⌊2^62 / S⌋,
/// P_i = RoundShift(E_i·R, 31) (Q31 probability), y_i = Rq(P_i; m, n, z_y). The input zero point cancels.
/// </summary>
[KernelFamily]
internal static class QSoftmaxKernels
{
    public static void Register(KernelRegistry r) => r.Add("QSoftmax", 1, s => new Kernel(s), QuantBuildOps.Domain);

    private sealed class Kernel : IKernel
    {
        private readonly long _axis;
        private readonly OutputFormat _y;

        public Kernel(KernelSetup s)
        {
            _y = QuantBuildOps.Output(s);
            _axis = s.Node.GetInt("axis", -1);
        }

        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var et = ctx.Required(1);
            QuantBuildOps.RequireQuantized(ctx, x, "X");
            if (et.Type != ElementType.Int32 || et.Length == 0) throw ctx.Error($"the exp table E must be a non-empty int32 tensor, not {et}");
            var (m, n) = QuantBuildOps.Multipliers(ctx, 2);
            if (m.Length != 1) throw ctx.Error($"QSoftmax is per tensor: multiplier has {m.Length} entries, not 1");
            int axis = (int)(_axis < 0 ? _axis + x.Rank : _axis);
            if (axis < 0 || axis >= x.Rank) throw ctx.Error($"axis {_axis} is out of range for a rank-{x.Rank} input");
            int len = x.Shape[axis], inner = 1;
            for (int d = axis + 1; d < x.Rank; d++) inner *= x.Shape[d];
            int rows = len == 0 ? 0 : x.Length / len;
            var table = et.ReadOnlySpan<int>().ToArray();
            // E_i·R ≤ 2^30·2^32 = 2^62 needs every entry in [0, 2^30], and S ≥ 2^30 needs E[0] = 2^30 (spec §10).
            if (table[0] != 1 << 30 || table.Any(e => e < 0 || e > 1 << 30))
                throw ctx.Error("the exp table E must hold E[0] = 2^30 and entries in [0, 2^30]");
            var y = ctx.Output(0, _y.To, x.Shape);
            bool bytes = x.Type == ElementType.Int8 && inner == 1;
            ctx.For(rows, row =>
            {
                int start = row / inner * len * inner + row % inner;
                if (bytes) RowInt8(x.ReadOnlySpan<sbyte>().Slice(start, len), y, start, table, m[0], n[0], _y);
                else Row(x, y, start, len, inner, table, m[0], n[0], _y);
            });
        }
    }

    /// <summary>One row of <paramref name="len"/> elements from <paramref name="start"/>, <paramref name="stride"/> apart.</summary>
    internal static void Row(Tensor x, Tensor y, int start, int len, int stride, int[] table, int m, int n, OutputFormat f)
    {
        long max = long.MinValue;
        for (int i = 0; i < len; i++) max = Math.Max(max, QuantBuildOps.Element(x, start + i * stride));
        long sum = 0;
        for (int i = 0; i < len; i++) sum += Exp(table, max - QuantBuildOps.Element(x, start + i * stride));
        long r = (long)(((UInt128)1 << 62) / (ulong)sum);
        var t = y.Type;
        for (int i = 0; i < len; i++)
        {
            long p = Requantize.RoundShift(Exp(table, max - QuantBuildOps.Element(x, start + i * stride)) * r, 31);
            QuantBuildOps.Set(y, start + i * stride, Math.Clamp(Requantize.Rq(p, m, n, f.Zy, t), f.Lo, f.Hi));
        }
    }

    /// <summary>
    /// A contiguous int8 row (the last axis): d = max − q takes at most 256 values, so the sum is Σ_d count[d]·E[d] and,
    /// for rows longer than 256, every output is looked up from the ≤ 256 distinct results of the row. The same exact
    /// integers as <see cref="Row"/> (rec's 6625-class softmax runs 256 requantizations per row instead of 6625).
    /// </summary>
    internal static void RowInt8(ReadOnlySpan<sbyte> q, Tensor y, int start, int[] table, int m, int n, OutputFormat f)
    {
        int len = q.Length;
        if (len == 0) return;
        int max = System.Numerics.Tensors.TensorPrimitives.Max(q);
        Span<int> count = stackalloc int[256];
        count.Clear();
        for (int i = 0; i < len; i++) count[max - q[i]]++;
        long sum = 0;
        for (int d = 0; d < 256; d++) if (count[d] != 0) sum += count[d] * Exp(table, d);
        long r = (long)(((UInt128)1 << 62) / (ulong)sum);
        Span<int> result = stackalloc int[256];
        for (int d = 0; d < 256; d++)
            if (count[d] != 0)
                result[d] = Math.Clamp(Requantize.Rq(Requantize.RoundShift(Exp(table, d) * r, 31), m, n, f.Zy, f.To), f.Lo, f.Hi);
        if (f.To == ElementType.Int8)
        {
            var o = y.Span<sbyte>().Slice(start, len);
            for (int i = 0; i < len; i++) o[i] = (sbyte)result[max - q[i]];
        }
        else
        {
            var o = y.Span<short>().Slice(start, len);
            for (int i = 0; i < len; i++) o[i] = (short)result[max - q[i]];
        }
    }

    private static long Exp(int[] table, long d) => d < table.Length ? table[d] : 0;
}
