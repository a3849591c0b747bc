using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Quant.Onnx;
using static Quant.Engine.Kernels.ActivationKernels;

namespace Quant.Engine.Kernels;

/// <summary>One step of a fused elementwise chain: registers are tile-sized float buffers.</summary>
internal enum FusedOp
{
    /// <summary>dst = a + s (and the other scalar forms below: s is <see cref="FusedInstruction.P0"/>).</summary>
    AddScalar, SubScalar, ScalarSub, MulScalar, DivScalar, ScalarDiv,
    /// <summary>dst = a ∘ b for two registers.</summary>
    Add, Sub, Mul, Div,
    Relu, LeakyRelu, Clip, HardSigmoid, HardSwish,
}

internal readonly record struct FusedInstruction(FusedOp Op, int Dst, int A, int B, float P0, float P1);

/// <summary>
/// A chain of float elementwise nodes (scalar-constant Add/Sub/Mul/Div, register-register arithmetic,
/// Relu/LeakyRelu/Clip/HardSigmoid/HardSwish) run tile by tile so the intermediates stay in L1
/// instead of making a pass over memory each. Every lane is computed with exactly the operations of
/// the unfused kernels (same IEEE ops, same FMA use), so fused and unfused runs agree to the bit.
/// Register 0 holds the chain's input; <see cref="_outputRegisters"/> are written to the outputs.
/// </summary>
internal sealed class FusedElementwiseKernel(FusedInstruction[] program, int registers, int[] outputRegisters,
    (int Register, string Name)[]? interior = null) : IKernel
{
    private const int Tile = 1024;
    private readonly int[] _outputRegisters = outputRegisters;
    /// <summary>The registers holding values that exist only inside the chain, for a tile observer.</summary>
    private readonly (int Register, string Name)[] _interior = interior ?? [];

    [ThreadStatic] private static float[]? t_scratch;

    public IReadOnlyList<FusedInstruction> Program => program;

    public void Run(KernelContext ctx)
    {
        var x = ctx.Required(0);
        if (x.Type != ElementType.Float) throw ctx.Error($"fused elementwise chain expects float input, got {x.Type.OnnxName()}");
        var outputs = new float[_outputRegisters.Length][];
        for (int o = 0; o < outputs.Length; o++) outputs[o] = (float[])ctx.Output(o, ElementType.Float, x.Shape).Buffer;
        var xs = (float[])x.Buffer;
        int n = x.Length;
        int tiles = (n + Tile - 1) / Tile;
        if (ctx.TileObserver is { } observer && _interior.Length > 0)
        {
            // Each lane is a contiguous run of tiles whose pieces the observer takes in order, lanes at the same time.
            int lanes = Math.Max(1, Math.Min(observer.TileLanes, ElementwiseChunk.Count(tiles, ctx.Threads, minChunk: 32)));
            void Lane(int lane)
            {
                var (t0, t1) = lanes == 1 ? (0, tiles) : ElementwiseChunk.Range(tiles, lanes, lane);
                var scratch = t_scratch is { } s && s.Length >= registers * Tile ? s : t_scratch = new float[registers * Tile];
                for (int t = t0; t < t1; t++)
                {
                    int count = Math.Min(Tile, n - t * Tile);
                    RunTile(xs, outputs, t * Tile, count, scratch);
                    foreach (var (register, name) in _interior) observer.OnTile(name, scratch.AsSpan(register * Tile, count), lane);
                }
            }
            if (lanes == 1) Lane(0);
            else ctx.For(lanes, Lane);
            return;
        }
        ElementwiseChunk.For(ctx, tiles, (t0, t1) =>
        {
            var scratch = t_scratch is { } s && s.Length >= registers * Tile ? s : t_scratch = new float[registers * Tile];
            for (int t = t0; t < t1; t++) RunTile(xs, outputs, t * Tile, Math.Min(Tile, n - t * Tile), scratch);
        }, minChunk: 32);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunTile(float[] xs, float[][] outputs, int start, int count, float[] scratch)
    {
        xs.AsSpan(start, count).CopyTo(scratch);
        // Lanes past the end are computed but never stored; zero them so they cannot be slow denormals.
        int padded = (count + 15) & ~15;
        if (padded > count) scratch.AsSpan(count, padded - count).Clear();
        foreach (var ins in program) Execute(ins, scratch, padded);
        for (int o = 0; o < _outputRegisters.Length; o++)
            scratch.AsSpan(_outputRegisters[o] * Tile, count).CopyTo(outputs[o].AsSpan(start, count));
    }

    private static void Execute(in FusedInstruction ins, float[] scratch, int padded)
    {
        ref float r = ref MemoryMarshal.GetArrayDataReference(scratch);
        ref float d = ref Unsafe.Add(ref r, ins.Dst * Tile);
        ref float a = ref Unsafe.Add(ref r, ins.A * Tile);
        ref float b = ref Unsafe.Add(ref r, ins.B * Tile);
        switch (ins.Op)
        {
            case FusedOp.AddScalar: Map(new AddS(ins.P0), ref a, ref d, padded); break;
            case FusedOp.SubScalar: Map(new SubS(ins.P0), ref a, ref d, padded); break;
            case FusedOp.ScalarSub: Map(new SSub(ins.P0), ref a, ref d, padded); break;
            case FusedOp.MulScalar: Map(new MulS(ins.P0), ref a, ref d, padded); break;
            case FusedOp.DivScalar: Map(new DivS(ins.P0), ref a, ref d, padded); break;
            case FusedOp.ScalarDiv: Map(new SDiv(ins.P0), ref a, ref d, padded); break;
            case FusedOp.Relu: Map(new ReluOp(), ref a, ref d, padded); break;
            case FusedOp.LeakyRelu: Map(new LeakyOp(ins.P0), ref a, ref d, padded); break;
            case FusedOp.Clip: Map(new ClipOp(ins.P0, ins.P1), ref a, ref d, padded); break;
            case FusedOp.HardSigmoid: Map(new HardSigmoidOp(ins.P0, ins.P1), ref a, ref d, padded); break;
            case FusedOp.HardSwish: Map(new HardSwishOp(), ref a, ref d, padded); break;
            case FusedOp.Add: Zip(new AddV(), ref a, ref b, ref d, padded); break;
            case FusedOp.Sub: Zip(new SubV(), ref a, ref b, ref d, padded); break;
            case FusedOp.Mul: Zip(new MulV(), ref a, ref b, ref d, padded); break;
            case FusedOp.Div: Zip(new DivV(), ref a, ref b, ref d, padded); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Map<TOp>(TOp op, ref float a, ref float d, int n) where TOp : struct, IVecOp
    {
        if (Vector512.IsHardwareAccelerated)
            for (int i = 0; i < n; i += 16) op.Apply(Vector512.LoadUnsafe(ref a, (nuint)i)).StoreUnsafe(ref d, (nuint)i);
        else
            for (int i = 0; i < n; i += 8) op.Apply(Vector256.LoadUnsafe(ref a, (nuint)i)).StoreUnsafe(ref d, (nuint)i);
    }

    private interface IZipOp
    {
        Vector256<float> Apply(Vector256<float> a, Vector256<float> b);
        Vector512<float> Apply(Vector512<float> a, Vector512<float> b);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Zip<TOp>(TOp op, ref float a, ref float b, ref float d, int n) where TOp : struct, IZipOp
    {
        if (Vector512.IsHardwareAccelerated)
            for (int i = 0; i < n; i += 16) op.Apply(Vector512.LoadUnsafe(ref a, (nuint)i), Vector512.LoadUnsafe(ref b, (nuint)i)).StoreUnsafe(ref d, (nuint)i);
        else
            for (int i = 0; i < n; i += 8) op.Apply(Vector256.LoadUnsafe(ref a, (nuint)i), Vector256.LoadUnsafe(ref b, (nuint)i)).StoreUnsafe(ref d, (nuint)i);
    }

    private readonly struct AddS(float s) : IVecOp
    {
        public Vector256<float> Apply(Vector256<float> x) => x + Vector256.Create(s);
        public Vector512<float> Apply(Vector512<float> x) => x + Vector512.Create(s);
        public double Apply(double x) => (float)x + s;
    }
    private readonly struct SubS(float s) : IVecOp
    {
        public Vector256<float> Apply(Vector256<float> x) => x - Vector256.Create(s);
        public Vector512<float> Apply(Vector512<float> x) => x - Vector512.Create(s);
        public double Apply(double x) => (float)x - s;
    }
    private readonly struct SSub(float s) : IVecOp
    {
        public Vector256<float> Apply(Vector256<float> x) => Vector256.Create(s) - x;
        public Vector512<float> Apply(Vector512<float> x) => Vector512.Create(s) - x;
        public double Apply(double x) => s - (float)x;
    }
    private readonly struct MulS(float s) : IVecOp
    {
        public Vector256<float> Apply(Vector256<float> x) => x * Vector256.Create(s);
        public Vector512<float> Apply(Vector512<float> x) => x * Vector512.Create(s);
        public double Apply(double x) => (float)x * s;
    }
    private readonly struct DivS(float s) : IVecOp
    {
        public Vector256<float> Apply(Vector256<float> x) => x / Vector256.Create(s);
        public Vector512<float> Apply(Vector512<float> x) => x / Vector512.Create(s);
        public double Apply(double x) => (float)x / s;
    }
    private readonly struct SDiv(float s) : IVecOp
    {
        public Vector256<float> Apply(Vector256<float> x) => Vector256.Create(s) / x;
        public Vector512<float> Apply(Vector512<float> x) => Vector512.Create(s) / x;
        public double Apply(double x) => s / (float)x;
    }
    private readonly struct AddV : IZipOp
    {
        public Vector256<float> Apply(Vector256<float> a, Vector256<float> b) => a + b;
        public Vector512<float> Apply(Vector512<float> a, Vector512<float> b) => a + b;
    }
    private readonly struct SubV : IZipOp
    {
        public Vector256<float> Apply(Vector256<float> a, Vector256<float> b) => a - b;
        public Vector512<float> Apply(Vector512<float> a, Vector512<float> b) => a - b;
    }
    private readonly struct MulV : IZipOp
    {
        public Vector256<float> Apply(Vector256<float> a, Vector256<float> b) => a * b;
        public Vector512<float> Apply(Vector512<float> a, Vector512<float> b) => a * b;
    }
    private readonly struct DivV : IZipOp
    {
        public Vector256<float> Apply(Vector256<float> a, Vector256<float> b) => a / b;
        public Vector512<float> Apply(Vector512<float> a, Vector512<float> b) => a / b;
    }
}
