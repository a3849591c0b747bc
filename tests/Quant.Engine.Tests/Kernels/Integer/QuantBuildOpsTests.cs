using System.Numerics;
using Quant.Engine.Kernels.Integer;
using Quant.Onnx;
using static Quant.Engine.Tests.Kernels.Integer.IntegerReference;

namespace Quant.Engine.Tests.Kernels.Integer;

/// <summary>The span steps every quant.build elementwise kernel is made of: AVX-512 equals scalar equals BigInteger, on odd sizes.</summary>
public class QuantBuildOpsTests
{
    [Theory]
    [InlineData(ElementType.Int8)]
    [InlineData(ElementType.Int16)]
    public void Load_vector_equals_scalar_for_lengths_0_to_67(ElementType t)
    {
        var rng = new Random(3);
        for (int len = 0; len <= 67; len++)
        {
            var x = RandomInts(rng, t, [len + 5]);
            int z = rng.Next(-100, 100);
            var fast = new long[len];
            var slow = new long[len];
            QuantBuildOps.Load(x, 5, len, true, z, fast, vector: true);
            QuantBuildOps.Load(x, 5, len, true, z, slow, vector: false);
            for (int i = 0; i < len; i++) Assert.Equal(At(x, 5 + i) - z, slow[i]);
            Assert.Equal(slow, fast);
        }
    }

    [Theory]
    [InlineData(ElementType.Int8)]
    [InlineData(ElementType.Int16)]
    public void Store_vector_equals_scalar_equals_exact_rounding(ElementType t)
    {
        var rng = new Random(4);
        int compared = 0;
        for (int len = 0; len <= 67; len++)
        {
            for (int rep = 0; rep < 6; rep++)
            {
                // Values and multipliers as the kernels form them: |v·m| ≤ 2^62, signed m for QDiv, m = 1 for QAdd.
                int n = rep == 5 ? rng.Next(63, 95) : rng.Next(0, 63);
                long m = rep switch { 0 => 1, 1 => -rng.Next(1 << 30, int.MaxValue), _ => rng.Next(1 << 30, int.MaxValue) };
                long bound = m == 1 ? 1L << 48 : 1L << 31;
                var v = new long[len];
                for (int i = 0; i < len; i++) v[i] = rng.NextInt64(-bound, bound) >> rng.Next(0, 40);
                // Exact ties of the rounding at the shift: v·m = (k + 1/2)·2^n.
                if (len > 0 && m == 1 && n >= 1 && n <= 40) v[0] = ((long)rng.Next(-1000, 1000) << n) + (1L << (n - 1));
                int zy = rng.Next(-20, 20);
                var (qmin, qmax) = Range(t);
                int lo = rep == 3 ? rng.Next(qmin, 0) : qmin, hi = rep == 3 ? rng.Next(1, qmax) : qmax;
                var fast = Tensor.Zeros(t, [len]);
                var slow = Tensor.Zeros(t, [len]);
                QuantBuildOps.Store(v, m, n, zy, lo, hi, fast, 0, vector: true);
                QuantBuildOps.Store(v, m, n, zy, lo, hi, slow, 0, vector: false);
                for (int i = 0; i < len; i++)
                {
                    Assert.Equal(Rq((BigInteger)v[i], m, n, zy, t, lo, hi), At(slow, i));
                    Assert.Equal(At(slow, i), At(fast, i));
                    compared++;
                }
            }
        }
        Assert.True(compared > 3000);
    }

    [Fact]
    public void MultiplyAdd_and_Multiply_vector_equal_scalar_equal_exact_for_lengths_0_to_67()
    {
        var rng = new Random(6);
        for (int len = 0; len <= 67; len++)
        {
            var a = Enumerable.Range(0, len).Select(_ => (long)rng.Next(-65535, 65536)).ToArray();
            var b = Enumerable.Range(0, len).Select(_ => (long)rng.Next(-65535, 65536)).ToArray();
            long ma = rng.Next(0, int.MaxValue), mb = -rng.Next(0, int.MaxValue);
            var fast = a.ToArray();
            var slow = a.ToArray();
            QuantBuildOps.MultiplyAdd(fast, ma, b, mb, vector: true);
            QuantBuildOps.MultiplyAdd(slow, ma, b, mb, vector: false);
            for (int i = 0; i < len; i++) Assert.Equal((BigInteger)a[i] * ma + (BigInteger)b[i] * mb, (BigInteger)slow[i]);
            Assert.Equal(slow, fast);
            fast = a.ToArray();
            slow = a.ToArray();
            QuantBuildOps.Multiply(fast, b, vector: true);
            QuantBuildOps.Multiply(slow, b, vector: false);
            for (int i = 0; i < len; i++) Assert.Equal(a[i] * b[i], slow[i]);
            Assert.Equal(slow, fast);
        }
    }
}
