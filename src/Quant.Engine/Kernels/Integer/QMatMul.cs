using System.Buffers;
using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// <c>quant.build</c> QMatMul (docs/quantized-model.md): A, B (int8/int16; B a constant weight or a second
/// activation), multiplier, shift; acc = Σ_k (a − z_a)(b − z_b) with ONNX MatMul broadcasting (operands of rank ≥ 2),
/// then the requantization of <see cref="QGemmOutput"/>, per channel along the last axis.
/// </summary>
[KernelFamily]
internal static class QMatMulKernels
{
    public static void Register(KernelRegistry r) => r.Add("QMatMul", 1, s => new Kernel(new QMatMulPlan(s, gemm: false)), QuantBuildOps.Domain);

    internal sealed class Kernel(QMatMulPlan plan) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var a = ctx.Required(0);
            var b = ctx.Required(1);
            var shape = plan.OutputShape(a, b, m => ctx.Error(m));
            plan.Run(a, b, ctx.Output(0, plan.Output.To, shape), vector: true, ctx.For);
        }
    }
}

/// <summary>
/// A QMatMul or QGemm node prepared once. Constant B is widened to int and packed for the VNNI GEMMs (as B[K, N]);
/// QGemm's transB is resolved here and transA at run time, its C becomes the per-column bias.
/// <para>Paths: the int64 reference (any types); int8 × int8 via <see cref="Int8Gemm"/>; anything with int16 via
/// <see cref="Int16Gemm"/> (int32 lanes when acc_bits is 32, else the blocked int64 path). The zero points come back
/// as constants: Σ(a − z_a)(b − z_b) = Σab − z_b·Σ_k a − z_a·Σ_k b + K·z_a·z_b (spec §5.1).</para>
/// </summary>
internal sealed class QMatMulPlan
{
    private readonly bool _gemm, _transA;
    private readonly int _za, _zb;
    private readonly int[]? _b;          // constant B as [K, N]
    private readonly int _k, _n;
    private readonly long[] _bias;       // per column (length N) or empty
    private readonly long[]? _colSum;
    private readonly ElementType _bType;
    private readonly Lazy<Int8Weights>? _b8;
    private readonly Lazy<Int16Weights>? _b16;
    public QGemmOutput Output { get; }

    public QMatMulPlan(KernelSetup s, bool gemm)
    {
        _gemm = gemm;
        var node = s.Node;
        _za = (int)node.GetInt("a_zero_point", 0);
        _zb = (int)node.GetInt("b_zero_point", 0);
        _transA = gemm && node.GetInt("transA", 0) != 0;
        bool transB = gemm && node.GetInt("transB", 0) != 0;
        Output = QGemmOutput.Parse(s, gemm ? 3 : 2);
        _bias = [];
        var b = s.Constant(1);
        if (b is null)
        {
            if (gemm) throw s.Error("QGemm's B must be a constant initializer");
            return;
        }
        if (!QGemmOutput.IsData(b.Type)) throw s.Error($"B must be int8 or int16, not {b.Type.OnnxName()}");
        if (b.Rank != 2) { if (gemm) throw s.Error($"QGemm's B must be 2-D, got rank {b.Rank}"); return; }
        _bType = b.Type;
        var raw = QGemmOutput.Widen(b);
        _k = transB ? b.Shape[1] : b.Shape[0];
        _n = transB ? b.Shape[0] : b.Shape[1];
        _b = new int[_k * _n];
        for (int k = 0; k < _k; k++)
            for (int j = 0; j < _n; j++) _b[k * _n + j] = transB ? raw[j * _k + k] : raw[k * _n + j];
        Output.CheckChannels(_n, m => s.Error(m));
        if (gemm && node.InputOrNull(2) is not null)
        {
            var c = QGemmOutput.ConstInts(s, 2, "bias C");
            if (c.Length != _n && c.Length != 1) throw s.Error($"bias C has {c.Length} values for {_n} columns");
            _bias = Enumerable.Range(0, _n).Select(j => (long)c[c.Length == 1 ? 0 : j]).ToArray();
        }
        _colSum = new long[_n];
        for (int k = 0; k < _k; k++)
            for (int j = 0; j < _n; j++) _colSum[j] += _b[k * _n + j];
        var bw = _b;
        int kk = _k, nn = _n;
        _b8 = s.Packed("int8", kk, nn, () => Int8Weights.Pack(bw.Select(v => (sbyte)v).ToArray(), kk, nn));
        _b16 = s.Packed("int16", kk, nn, () => _bType == ElementType.Int8
            ? Int16Weights.Pack(bw.Select(v => (sbyte)v).ToArray(), kk, nn)
            : Int16Weights.Pack(bw.Select(v => (short)v).ToArray(), kk, nn));
    }

    private readonly record struct Shapes(int[] Out, int Batches, int M, int K, int N, int[] ABatch, int[] BBatch);

    private Shapes Resolve(Tensor a, Tensor b, Func<string, Exception> error)
    {
        if (!QGemmOutput.IsData(a.Type)) throw error($"A must be int8 or int16, not {a.Type.OnnxName()}");
        if (!QGemmOutput.IsData(b.Type)) throw error($"B must be int8 or int16, not {b.Type.OnnxName()}");
        if (a.Rank < 2 || b.Rank < 2) throw error($"operands must have rank 2 or more (A rank {a.Rank}, B rank {b.Rank})");
        int m = _transA ? a.Shape[^1] : a.Shape[^2], k = _transA ? a.Shape[^2] : a.Shape[^1];
        if (_gemm && a.Rank != 2) throw error($"QGemm's A must be 2-D, got rank {a.Rank}");
        int bk = _b is not null ? _k : b.Shape[^2], n = _b is not null ? _n : b.Shape[^1];
        if (k != bk) throw error($"A's inner dimension {k} differs from B's {bk}");
        // Broadcast the batch dimensions (everything before the last two).
        int ra = a.Rank - 2, rb = _b is not null ? 0 : b.Rank - 2, r = Math.Max(ra, rb);
        var batch = new int[r];
        for (int i = 0; i < r; i++)
        {
            int da = i - (r - ra) >= 0 ? a.Shape[i - (r - ra)] : 1, db = i - (r - rb) >= 0 ? b.Shape[i - (r - rb)] : 1;
            if (da != db && da != 1 && db != 1) throw error($"batch dimension {i} does not broadcast ({da} vs {db})");
            batch[i] = Math.Max(da, db);
        }
        int batches = 1;
        foreach (var d in batch) batches *= d;
        var aIdx = new int[batches];
        var bIdx = new int[batches];
        for (int t = 0; t < batches; t++)
        {
            int rest = t, ai = 0, bi = 0, aStride = 1, bStride = 1;
            for (int i = r - 1; i >= 0; i--)
            {
                int pos = rest % batch[i];
                rest /= batch[i];
                int ia = i - (r - ra), ib = i - (r - rb);
                if (ia >= 0) { if (a.Shape[ia] != 1) ai += pos * aStride; aStride *= a.Shape[ia]; }
                if (ib >= 0) { if (b.Shape[ib] != 1) bi += pos * bStride; bStride *= b.Shape[ib]; }
            }
            aIdx[t] = ai;
            bIdx[t] = bi;
        }
        Output.CheckChannels(n, error);
        return new Shapes([.. batch, m, n], batches, m, k, n, aIdx, bIdx);
    }

    public int[] OutputShape(Tensor a, Tensor b, Func<string, Exception> error) => Resolve(a, b, error).Out;

    public void Run(Tensor a, Tensor b, Tensor y, bool vector, Action<int, Action<int>> forEach)
    {
        var sh = Resolve(a, b, m => new EngineException(m));
        int m = sh.M, k = sh.K, n = sh.N;
        var ai = QGemmOutput.Widen(a);
        if (_transA)
        {
            var t = new int[ai.Length];
            for (int i = 0; i < m; i++)
                for (int kk = 0; kk < k; kk++) t[i * k + kk] = ai[kk * m + i];
            ai = t;
        }
        var bi = _b ?? QGemmOutput.Widen(b);
        forEach = QGemmOutput.Threading(forEach, (long)sh.Batches * m * n * k);
        forEach(sh.Batches, t =>
        {
            var A = new ReadOnlySpan<int>(ai, sh.ABatch[t] * m * k, m * k);
            var B = new ReadOnlySpan<int>(bi, sh.BBatch[t] * k * n, k * n);
            int yOffset = t * m * n;
            bool wide = Output.Wide;
            if (!vector)
            {
                var acc = new long[m * n];
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++)
                    {
                        long s = _bias.Length > 0 ? _bias[j] : 0;
                        for (int kk = 0; kk < k; kk++) s += (long)(A[i * k + kk] - _za) * (B[kk * n + j] - _zb);
                        acc[i * n + j] = s;
                    }
                Output.WriteRows(acc, n, y, yOffset);
                return;
            }
            // Σab by the GEMM, then the constants of the zero points and the bias, per row and column.
            bool int8 = a.Type == ElementType.Int8 && (_b is not null ? _bType : b.Type) == ElementType.Int8 && !wide;
            var colSum = _colSum ?? ColumnSums(B, k, n);
            var rowSum = _zb == 0 ? null : RowSums(A, m, k);
            long Constant(int i, int j) =>
                (_bias.Length > 0 ? _bias[j] : 0) - (long)_za * colSum[j] - (rowSum is null ? 0 : _zb * rowSum[i]) + (long)k * _za * _zb;
            if (!wide)
            {
                var acc = ArrayPool<int>.Shared.Rent(m * n);
                var accSpan = acc.AsSpan(0, m * n);
                if (int8)
                {
                    var packed = _b8?.Value ?? Int8Weights.Pack(Narrow<sbyte>(B), k, n);
                    Int8Gemm.Run(Narrow<sbyte>(A), packed, m, accSpan);
                }
                else
                {
                    var packed = _b16?.Value ?? Pack16(B, b.Type, k, n);
                    Int16Gemm.RunInt32(Narrow<short>(A), packed, m, accSpan);
                }
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) accSpan[i * n + j] = unchecked(accSpan[i * n + j] + (int)Constant(i, j));
                Output.WriteRows(accSpan, n, y, yOffset, true);
                ArrayPool<int>.Shared.Return(acc);
            }
            else
            {
                var acc = new long[m * n];
                var packed = _b16?.Value ?? Pack16(B, b.Type, k, n);
                Int16Gemm.RunInt64(Narrow<short>(A), packed, m, acc);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) acc[i * n + j] += Constant(i, j);
                Output.WriteRows(acc, n, y, yOffset);
            }
        });
    }

    private static Int16Weights Pack16(ReadOnlySpan<int> b, ElementType type, int k, int n) =>
        type == ElementType.Int8 ? Int16Weights.Pack(Narrow<sbyte>(b), k, n) : Int16Weights.Pack(Narrow<short>(b), k, n);

    private static T[] Narrow<T>(ReadOnlySpan<int> s) where T : unmanaged, System.Numerics.IBinaryInteger<T>
    {
        var r = new T[s.Length];
        for (int i = 0; i < s.Length; i++) r[i] = T.CreateTruncating(s[i]);
        return r;
    }

    private static long[] ColumnSums(ReadOnlySpan<int> b, int k, int n)
    {
        var s = new long[n];
        for (int kk = 0; kk < k; kk++)
            for (int j = 0; j < n; j++) s[j] += b[kk * n + j];
        return s;
    }

    private static long[] RowSums(ReadOnlySpan<int> a, int m, int k)
    {
        var s = new long[m];
        for (int i = 0; i < m; i++)
            for (int kk = 0; kk < k; kk++) s[i] += a[i * k + kk];
        return s;
    }
}
