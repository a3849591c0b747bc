using Quant.Engine.Kernels.Common;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// MatMul and Gemm (float32) on the packed GEMM.
/// MatMul: numpy matmul — y[b..., i, j] = Σ_k a[b..., i, k]·b[b..., k, j] with batch dimensions broadcast; a 1-D
/// first operand is a row vector and a 1-D second operand a column vector, their unit axis removed from the result.
/// Gemm: Y = alpha·A'·B' + beta·C with A' = transA ? Aᵀ : A, B' likewise, C broadcast to [M, N] (optional from
/// opset 11); alpha is folded into the packed A (alpha·a rounded, then multiplied), beta·C is the starting value
/// (beta = 0 ignores C entirely, so NaN in C does not propagate, as in ONNX Runtime).
/// Each output is summed over k in increasing order with fused multiply-adds on the vector paths, independent of the
/// thread count. Constant B operands (weights) are packed once when the plan is built.
/// </summary>
[KernelFamily]
internal static class MatMulKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("MatMul", 1, setup => new MatMulKernel(setup));
        r.Add("Gemm", 1, setup => new GemmKernel(setup));
    }

    private sealed class MatMulKernel : IKernel
    {
        private readonly PackedGemm _gemm = PackedGemm.Default;
        private readonly Tensor? _constB;
        private readonly PrepackedB? _packedB;

        public MatMulKernel(KernelSetup setup)
        {
            _constB = setup.Constant(1);
            if (_constB is { Type: ElementType.Float, Rank: 1 or 2 } b)
            {
                int k = b.Shape[0], n = b.Rank == 2 ? b.Shape[1] : 1;
                _packedB = new PrepackedB(_gemm, (float[])b.Buffer, 0, n, 1, k, n);
            }
        }

        public void Run(KernelContext ctx)
        {
            var a = ctx.Required(0);
            var b = ctx.Required(1);
            if (a.Type != ElementType.Float || b.Type != ElementType.Float) throw ctx.Error("MatMul supports float32 tensors only");
            if (a.Rank == 0 || b.Rank == 0) throw ctx.Error("MatMul operands must have rank 1 or more");
            int m = a.Rank == 1 ? 1 : a.Shape[^2], k = a.Shape[^1];
            int kb = b.Rank == 1 ? b.Shape[0] : b.Shape[^2], n = b.Rank == 1 ? 1 : b.Shape[^1];
            if (k != kb) throw ctx.Error($"A has {k} columns but B has {kb} rows");
            var batchA = a.Rank > 2 ? a.Shape[..^2] : [];
            var batchB = b.Rank > 2 ? b.Shape[..^2] : [];
            int br = Math.Max(batchA.Length, batchB.Length);
            var batch = new int[br];
            for (int i = 0; i < br; i++)
            {
                int da = i - (br - batchA.Length) >= 0 ? batchA[i - (br - batchA.Length)] : 1;
                int db = i - (br - batchB.Length) >= 0 ? batchB[i - (br - batchB.Length)] : 1;
                if (da != db && da != 1 && db != 1) throw ctx.Error($"batch dimensions [{string.Join(",", batchA)}] and [{string.Join(",", batchB)}] do not broadcast");
                batch[i] = da == 1 ? db : da;
            }
            var outShape = new List<int>(batch);
            if (a.Rank > 1) outShape.Add(m);
            if (b.Rank > 1) outShape.Add(n);
            var y = ctx.Output(0, ElementType.Float, outShape.ToArray());
            if (y.Length == 0) return;
            var ad = (float[])a.Buffer;
            var bd = (float[])b.Buffer;
            var yd = (float[])y.Buffer;
            int ldb = b.Rank == 1 ? 1 : n;

            if (b.Rank <= 2)
            {
                // Every batch of A meets the same B: one tall GEMM.
                int rows = a.Length / Math.Max(1, k);
                if (k == 0) rows = y.Length / Math.Max(1, n);
                GemmBSource src = _packedB is not null && ReferenceEquals(b, _constB) ? _packedB : new StridedB(bd, 0, ldb, 1);
                var packed = ctx.RentScratch(Math.Max(1, _gemm.PackedASize(rows, k)));
                try
                {
                    _gemm.PackA(ad, 0, k, 1, rows, k, packed, 0);
                    _gemm.Multiply(ctx, rows, n, k, packed, 0, src, yd, 0, n);
                }
                finally { ctx.ReturnScratch(packed); }
                return;
            }

            int batchCount = Tensor.ElementCount(batch);
            var stridesA = BatchStrides(batchA, br, m * k);
            var stridesB = BatchStrides(batchB, br, k * n);
            void One(int t, KernelContext? inner)
            {
                int rem = t, offA = 0, offB = 0;
                for (int i = br - 1; i >= 0; i--)
                {
                    int idx = rem % batch[i];
                    rem /= batch[i];
                    offA += idx * stridesA[i];
                    offB += idx * stridesB[i];
                }
                var packed = ctx.RentScratch(Math.Max(1, _gemm.PackedASize(m, k)));
                try
                {
                    _gemm.PackA(ad, offA, k, 1, m, k, packed, 0);
                    _gemm.Multiply(inner, m, n, k, packed, 0, new StridedB(bd, offB, ldb, 1), yd, t * m * n, n);
                }
                finally { ctx.ReturnScratch(packed); }
            }
            // Whole products per task when they split evenly over the threads (attention heads); otherwise one
            // product after another, each split inside. Small jobs stay on the calling thread either way.
            int tasks = PackedGemm.ParallelTasks(ctx, (long)batchCount * m * n * k, batchCount);
            if (tasks > 1 && (batchCount % ctx.Threads == 0 || batchCount >= 4 * ctx.Threads))
                ctx.For(tasks, t =>
                {
                    int end = (int)((long)batchCount * (t + 1) / tasks);
                    for (int i = (int)((long)batchCount * t / tasks); i < end; i++) One(i, null);
                });
            else
                for (int i = 0; i < batchCount; i++) One(i, ctx);
        }

        private static int[] BatchStrides(int[] dims, int br, int matrix)
        {
            var s = new int[br];
            int stride = matrix;
            for (int i = br - 1; i >= 0; i--)
            {
                int j = i - (br - dims.Length);
                int d = j >= 0 ? dims[j] : 1;
                s[i] = d == 1 ? 0 : stride;
                stride *= d;
            }
            return s;
        }
    }

    private sealed class GemmKernel : IKernel
    {
        private readonly PackedGemm _gemm = PackedGemm.Default;
        private readonly bool _transA, _transB;
        private readonly float _alpha, _beta;
        private readonly Tensor? _constB;
        private readonly PrepackedB? _packedB;

        public GemmKernel(KernelSetup setup)
        {
            var node = setup.Node;
            _transA = node.GetInt("transA", 0) != 0;
            _transB = node.GetInt("transB", 0) != 0;
            _alpha = node.GetFloat("alpha", 1f);
            _beta = node.GetFloat("beta", 1f);
            _constB = setup.Constant(1);
            if (_constB is { Type: ElementType.Float, Rank: 2 } b)
            {
                int k = _transB ? b.Shape[1] : b.Shape[0], n = _transB ? b.Shape[0] : b.Shape[1];
                _packedB = _transB
                    ? new PrepackedB(_gemm, (float[])b.Buffer, 0, 1, k, k, n)
                    : new PrepackedB(_gemm, (float[])b.Buffer, 0, n, 1, k, n);
            }
        }

        public void Run(KernelContext ctx)
        {
            var a = ctx.Required(0);
            var b = ctx.Required(1);
            var c = ctx.Input(2);
            if (a.Type != ElementType.Float || b.Type != ElementType.Float || (c is not null && c.Type != ElementType.Float))
                throw ctx.Error("Gemm supports float32 tensors only");
            if (a.Rank != 2 || b.Rank != 2) throw ctx.Error($"A and B must be matrices, got ranks {a.Rank} and {b.Rank}");
            int m = _transA ? a.Shape[1] : a.Shape[0], k = _transA ? a.Shape[0] : a.Shape[1];
            int kb = _transB ? b.Shape[1] : b.Shape[0], n = _transB ? b.Shape[0] : b.Shape[1];
            if (k != kb) throw ctx.Error($"A' has {k} columns but B' has {kb} rows (transA={(_transA ? 1 : 0)}, transB={(_transB ? 1 : 0)})");
            var y = ctx.Output(0, ElementType.Float, [m, n]);
            if (y.Length == 0) return;
            var yd = (float[])y.Buffer;
            bool accumulate = false;
            if (c is not null && _beta != 0f)
            {
                if (c.Rank > 2) throw ctx.Error($"C must have rank 2 or less, got rank {c.Rank}");
                int cr = c.Rank == 2 ? c.Shape[0] : 1, cc = c.Rank >= 1 ? c.Shape[^1] : 1;
                if ((cr != 1 && cr != m) || (cc != 1 && cc != n)) throw ctx.Error($"C of shape [{string.Join(",", c.Shape)}] does not broadcast to [{m},{n}]");
                var cs = c.ReadOnlySpan<float>();
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++)
                        yd[i * n + j] = _beta * cs[(cr == 1 ? 0 : i) * cc + (cc == 1 ? 0 : j)];
                accumulate = true;
            }
            var ad = (float[])a.Buffer;
            GemmBSource src = _packedB is not null && ReferenceEquals(b, _constB) ? _packedB
                : _transB ? new StridedB((float[])b.Buffer, 0, 1, k) : new StridedB((float[])b.Buffer, 0, n, 1);
            var packed = ctx.RentScratch(Math.Max(1, _gemm.PackedASize(m, k)));
            try
            {
                _gemm.PackA(ad, 0, _transA ? 1 : k, _transA ? m : 1, m, k, packed, 0, _alpha);
                _gemm.Multiply(ctx, m, n, k, packed, 0, src, yd, 0, n, accumulate: accumulate);
            }
            finally { ctx.ReturnScratch(packed); }
        }
    }
}
