using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Transpose: y[i_0..i_{r-1}] = x[j] with j[perm[k]] = i_k, i.e. output axis k is input axis perm[k]
/// (default perm reverses the axes). Any element type, strings included.
/// </summary>
[KernelFamily]
internal static class TransposeKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("Transpose", 1, s => new TransposeKernel(s.Node.GetInts("perm")));
    }

    private sealed class TransposeKernel(long[]? perm) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            int r = x.Rank;
            var p = new int[r];
            if (perm is null) for (int k = 0; k < r; k++) p[k] = r - 1 - k;
            else
            {
                if (perm.Length != r) throw ctx.Error($"perm [{string.Join(",", perm)}] has {perm.Length} entries but the input has rank {r}");
                var seen = new bool[r];
                for (int k = 0; k < r; k++)
                {
                    if (perm[k] < 0 || perm[k] >= r || seen[perm[k]])
                        throw ctx.Error($"perm [{string.Join(",", perm)}] is not a permutation of 0..{r - 1}");
                    seen[perm[k]] = true;
                    p[k] = (int)perm[k];
                }
            }
            var inStrides = ShapeUtil.Strides(x.Shape);
            var outShape = new int[r];
            var srcStrides = new int[r];
            for (int k = 0; k < r; k++) { outShape[k] = x.Shape[p[k]]; srcStrides[k] = inStrides[p[k]]; }
            var y = ctx.Output(0, x.Type, outShape);
            StridedCopy.Run(ctx, x, 0, srcStrides, y, 0, ShapeUtil.Strides(outShape), outShape);
        }
    }
}

/// <summary>
/// Copies an n-d box between two tensors of one element type, each addressed by a base offset and
/// per-axis strides (in elements, negative allowed). Axes of size 1 are dropped and axes contiguous in
/// both tensors are merged, so slices and concatenations become a few long span copies. When the
/// destination's inner axis is strided in the source (a real transpose) the axis that is contiguous in
/// the source and the destination's inner axis are copied in square tiles so both sides stay in cache.
/// Large copies are split over threads along the outermost axis. The box is checked to lie inside both
/// buffers once, up front, so the inner loops can index without bounds checks.
/// </summary>
internal static class StridedCopy
{
    private const int Tile = 32;
    private const int ParallelMinElements = 1 << 16;

    public static void Run(KernelContext? ctx, Tensor src, int srcBase, ReadOnlySpan<int> srcStrides, Tensor dst, int dstBase, ReadOnlySpan<int> dstStrides, ReadOnlySpan<int> shape)
    {
        // Compact: drop size-1 axes, merge axes that are contiguous in both tensors.
        Span<(int N, int S, int D)> buf = stackalloc (int, int, int)[Math.Max(shape.Length, 1)];
        int count = 0;
        long total = 1;
        for (int k = 0; k < shape.Length; k++)
        {
            if (shape[k] == 0) return;
            total *= shape[k];
            if (shape[k] == 1) continue;
            if (count > 0)
            {
                var (n, s, d) = buf[count - 1];
                if (s == srcStrides[k] * shape[k] && d == dstStrides[k] * shape[k])
                {
                    buf[count - 1] = (n * shape[k], srcStrides[k], dstStrides[k]);
                    continue;
                }
            }
            buf[count++] = (shape[k], srcStrides[k], dstStrides[k]);
        }
        var dims = buf[..count].ToArray();
        CheckInside(dims, srcBase, src.Length, d => d.S, "source");
        CheckInside(dims, dstBase, dst.Length, d => d.D, "destination");
        switch (Elements.Width(src.Type))
        {
            case 1: Dispatch<byte>(ctx, src, srcBase, dst, dstBase, dims, total); break;
            case 2: Dispatch<ushort>(ctx, src, srcBase, dst, dstBase, dims, total); break;
            case 4: Dispatch<uint>(ctx, src, srcBase, dst, dstBase, dims, total); break;
            case 8: Dispatch<ulong>(ctx, src, srcBase, dst, dstBase, dims, total); break;
            default: Dispatch<string>(ctx, src, srcBase, dst, dstBase, dims, total); break;
        }
    }

    private static void CheckInside((int N, int S, int D)[] dims, int baseOffset, int length, Func<(int N, int S, int D), int> stride, string what)
    {
        long lo = baseOffset, hi = baseOffset;
        foreach (var d in dims)
        {
            long span = (long)(d.N - 1) * stride(d);
            if (span < 0) lo += span; else hi += span;
        }
        if (lo < 0 || hi >= length)
            throw new InvalidOperationException($"internal error: strided copy reaches {what} elements {lo}..{hi} of {length}");
    }

    private static void Dispatch<T>(KernelContext? ctx, Tensor src, int srcBase, Tensor dst, int dstBase, (int N, int S, int D)[] dims, long total)
    {
        if (dims.Length == 0)
        {
            Elements.View<T>(dst)[dstBase] = Elements.View<T>(src)[srcBase];
            return;
        }
        int outer = dims[0].N;
        if (ctx is not null && ctx.Threads > 1 && outer > 1 && total >= ParallelMinElements)
        {
            // Each chunk is the same box with a shorter outermost axis, so tiling and run merging still apply.
            int chunks = Math.Min(outer, ctx.Threads * 4);
            ctx.For(chunks, c =>
            {
                int lo = (int)((long)outer * c / chunks), hi = (int)((long)outer * (c + 1) / chunks);
                var part = ((int N, int S, int D)[])dims.Clone();
                part[0].N = hi - lo;
                CopyBox<T>(Elements.View<T>(src), srcBase + lo * dims[0].S, Elements.View<T>(dst), dstBase + lo * dims[0].D, part);
            });
        }
        else
        {
            CopyBox<T>(Elements.View<T>(src), srcBase, Elements.View<T>(dst), dstBase, dims);
        }
    }

    private static void CopyBox<T>(Span<T> src, int srcBase, Span<T> dst, int dstBase, ReadOnlySpan<(int N, int S, int D)> dims)
    {
        ref T s0 = ref MemoryMarshal.GetReference(src);
        ref T d0 = ref MemoryMarshal.GetReference(dst);
        var (n, s, d) = dims[^1];
        if (s == 1 && d == 1)
        {
            ForEachRow(dims[..^1], srcBase, dstBase, ref s0, ref d0, n, static (ref T from, ref T to, int run, int _, int _) =>
                MemoryMarshal.CreateReadOnlySpan(ref from, run).CopyTo(MemoryMarshal.CreateSpan(ref to, run)));
            return;
        }
        if (d == 1)
        {
            // Pair the source's contiguous axis (if any) with the destination's inner axis for tiling.
            for (int p = 0; p < dims.Length - 1; p++)
                if (dims[p].S == 1)
                {
                    TiledTranspose(ref s0, srcBase, ref d0, dstBase, dims, p);
                    return;
                }
        }
        ForEachRow(dims[..^1], srcBase, dstBase, ref s0, ref d0, n, static (ref T from, ref T to, int run, int ss, int ds) =>
        {
            for (int j = 0, a = 0, b = 0; j < run; j++, a += ss, b += ds) Unsafe.Add(ref to, b) = Unsafe.Add(ref from, a);
        }, s, d);
    }

    private delegate void RowCopy<T>(ref T from, ref T to, int run, int srcStride, int dstStride);

    /// <summary>Calls <paramref name="copy"/> for every index of the <paramref name="outer"/> axes (an odometer).</summary>
    private static void ForEachRow<T>(ReadOnlySpan<(int N, int S, int D)> outer, int srcBase, int dstBase, ref T s0, ref T d0, int run, RowCopy<T> copy, int srcStride = 1, int dstStride = 1)
    {
        int r = outer.Length;
        int rows = 1;
        foreach (var e in outer) rows *= e.N;
        Span<int> idx = stackalloc int[Math.Max(r, 1)];
        idx.Clear();
        int so = srcBase, dO = dstBase;
        for (int row = 0; row < rows; row++)
        {
            copy(ref Unsafe.Add(ref s0, so), ref Unsafe.Add(ref d0, dO), run, srcStride, dstStride);
            for (int k = r - 1; k >= 0; k--)
            {
                so += outer[k].S; dO += outer[k].D;
                if (++idx[k] < outer[k].N) break;
                so -= outer[k].S * outer[k].N; dO -= outer[k].D * outer[k].N;
                idx[k] = 0;
            }
        }
    }

    /// <summary>
    /// dims[^1] is contiguous in dst, dims[p] contiguous in src: copy that 2-d plane in Tile x Tile blocks
    /// for every index of the remaining axes.
    /// </summary>
    private static void TiledTranspose<T>(ref T s0, int srcBase, ref T d0, int dstBase, ReadOnlySpan<(int N, int S, int D)> dims, int p)
    {
        var (cols, cs, _) = dims[^1];   // dst stride 1
        var (rowsN, _, rd) = dims[p];   // src stride 1
        int r = dims.Length;
        Span<int> idx = stackalloc int[r];
        idx.Clear();
        int planes = 1;
        for (int k = 0; k < r - 1; k++) if (k != p) planes *= dims[k].N;
        int so = srcBase, dO = dstBase;
        for (int plane = 0; plane < planes; plane++)
        {
            for (int r0 = 0; r0 < rowsN; r0 += Tile)
            {
                int r1 = Math.Min(rowsN, r0 + Tile);
                for (int c0 = 0; c0 < cols; c0 += Tile)
                {
                    int w = Math.Min(cols, c0 + Tile) - c0;
                    for (int i = r0; i < r1; i++)
                    {
                        ref T from = ref Unsafe.Add(ref s0, so + i + c0 * cs);
                        ref T to = ref Unsafe.Add(ref d0, dO + i * rd + c0);
                        for (int j = 0, a = 0; j < w; j++, a += cs) Unsafe.Add(ref to, j) = Unsafe.Add(ref from, a);
                    }
                }
            }
            for (int k = r - 2; k >= 0; k--)
            {
                if (k == p) continue;
                so += dims[k].S; dO += dims[k].D;
                if (++idx[k] < dims[k].N) break;
                so -= dims[k].S * dims[k].N; dO -= dims[k].D * dims[k].N;
                idx[k] = 0;
            }
        }
    }
}
