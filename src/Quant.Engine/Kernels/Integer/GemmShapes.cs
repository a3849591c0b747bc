namespace Quant.Engine.Kernels.Integer;

/// <summary>The argument checks every integer GEMM (<see cref="Int8Gemm"/>, <see cref="Int16Gemm"/>) shares, with one wording.</summary>
internal static class GemmShapes
{
    /// <summary>Row-major B[K, N]: non-negative K and N, and exactly K·N values.</summary>
    public static void Weights(int length, int k, int n)
    {
        if (k < 0 || n < 0) throw new ArgumentOutOfRangeException(k < 0 ? nameof(k) : nameof(n), "GEMM dimensions cannot be negative");
        WeightsLength(length, k, n);
    }

    /// <summary>Exactly K·N weight values.</summary>
    public static void WeightsLength(int length, int k, int n)
    {
        if (length != (long)k * n) throw new ArgumentException($"weights hold {length} values, not {k} × {n}");
    }

    /// <summary>A[M, K] and C[M, N]: non-negative M, and exactly M·K and M·N values.</summary>
    public static void Operands(int aLength, int m, int k, int n, int cLength)
    {
        if (m < 0) throw new ArgumentOutOfRangeException(nameof(m), m, "GEMM dimensions cannot be negative");
        if (aLength != (long)m * k) throw new ArgumentException($"activations hold {aLength} values, not {m} × {k}");
        if (cLength != (long)m * n) throw new ArgumentException($"output holds {cLength} values, not {m} × {n}");
    }
}
