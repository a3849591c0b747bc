namespace Quant.Engine;

/// <summary>
/// The packed layouts of the integer GEMMs' weights B[K, N] (docs/artifact-format.md, "PackedWeights"). Columns come
/// in blocks of 16 lanes; K is padded with zero weights to the kernel's group of k (4 for int8, 2 for int16) and N to
/// a multiple of 16. A kernel whose packing changes must get a new code, so a file packed for the old layout is
/// refused at load instead of misread.
/// </summary>
public enum PackedLayout : byte
{
    /// <summary>int8 bytes [block][k / 4][lane][k % 4] (the lane order of <c>vpdpbusd</c>).</summary>
    Int8Vnni = 1,
    /// <summary>int16 words [block][k / 2][lane][k % 2] of int16 weights (the lane order of <c>vpdpwssd</c>).</summary>
    Int16Vnni = 2,
    /// <summary>The same words holding sign-extended int8 weights: the kernels' 16 × 8 paths rely on |w| ≤ 128.</summary>
    Int16VnniFromInt8 = 3,
}

/// <summary>
/// One weight matrix B[K, N] in a kernel's packed layout: what a compiled model stores so that loading hands the
/// weights to the kernels as they are, without packing.
/// </summary>
public sealed class PackedGemmWeights
{
    public const int Lanes = 16;

    public PackedGemmWeights(PackedLayout layout, int k, int n, byte[] data)
    {
        long need = Bytes(layout, k, n);
        if (need < 0) throw new ArgumentException($"unknown packed layout {(int)layout} or bad size K {k}, N {n}");
        if (data.LongLength != need)
            throw new ArgumentException($"{layout} weights of K {k}, N {n} take {need} bytes, not {data.LongLength}");
        Layout = layout;
        K = k;
        N = n;
        Data = data;
    }

    public PackedLayout Layout { get; }
    public int K { get; }
    public int N { get; }
    /// <summary>The packed elements, little-endian, padding included.</summary>
    public byte[] Data { get; }

    public static bool IsKnown(PackedLayout layout) => layout is PackedLayout.Int8Vnni or PackedLayout.Int16Vnni or PackedLayout.Int16VnniFromInt8;

    /// <summary>The packed size in bytes, or −1 for an unknown layout or a non-positive K or N.</summary>
    public static long Bytes(PackedLayout layout, long k, long n)
    {
        if (k < 1 || n < 1 || k > int.MaxValue || n > int.MaxValue) return -1;
        long blocks = (n + Lanes - 1) / Lanes;
        return layout switch
        {
            PackedLayout.Int8Vnni => blocks * ((k + 3) & ~3L) * Lanes,
            PackedLayout.Int16Vnni or PackedLayout.Int16VnniFromInt8 => blocks * ((k + 1) & ~1L) * Lanes * 2,
            _ => -1,
        };
    }
}

/// <summary>
/// The weights of one packing slot of one node (e.g. QConv's "int8": one matrix per group). The node is the graph's
/// own <see cref="Quant.Onnx.Node"/> object (names need not be unique).
/// </summary>
public sealed record PackedWeightsEntry(Quant.Onnx.Node Node, string Slot, IReadOnlyList<PackedGemmWeights> Groups);

/// <summary>A kernel's packed-weights type: converts to and from the stored form.</summary>
internal interface IPackedGemm<TSelf> where TSelf : class, IPackedGemm<TSelf>
{
    PackedGemmWeights ToPacked();
    /// <summary>Takes stored weights as they are (no packing); ArgumentException if the layout is not this type's.</summary>
    static abstract TSelf FromPacked(PackedGemmWeights packed);
}
