using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Quant.Onnx;

namespace Quant.Engine.Kernels.Integer;

/// <summary>
/// The output side every <c>quant.build</c> GEMM-type op shares (docs/quantized-model.md conventions):
/// <c>to</c>, <c>y_zero_point</c>, <c>clamp_min</c>/<c>clamp_max</c>, the <c>multiplier</c>/<c>shift</c> inputs
/// (one entry, or one per output channel) and <c>acc_bits</c>. It turns exact accumulators into the output type:
/// <c>clamp(sat_to(RoundShift(acc·m, n) + z_y), clamp_min, clamp_max)</c> (spec §2.2, §4.4), or writes the
/// accumulator itself for <c>to</c> = int32/int64. With <c>activation</c> = "HardSwish" (a Conv + HardSwish with no
/// quantization point between, spec §4.4 "Fused float activation") the output is the qat model's own float chain:
/// QuantizeLinear(HardSwish(fl32((double)acc·S_m)), y_scale, z_y), from a float64 S_m input in place of
/// multiplier/shift; see <see cref="FusedActivation"/>.
/// </summary>
internal sealed class QGemmOutput
{
    public ElementType To { get; }
    public int ZeroPoint { get; }
    public int ClampMin { get; }
    public int ClampMax { get; }
    /// <summary>Q31 multipliers, one or per channel; empty for accumulator outputs.</summary>
    public int[] Multipliers { get; }
    public int[] Shifts { get; }
    /// <summary>For <c>to</c> = float: S_m per channel (or one), and the fused clip bounds in float.</summary>
    public double[] FloatScales { get; private init; } = [];
    public float ClipMin { get; private init; }
    public float ClipMax { get; private init; }
    /// <summary>acc_bits = 64: the convert stage could not prove the int32 bound (spec §4.3).</summary>
    public bool Wide { get; }
    /// <summary>The float activation applied after fl32(acc·S_m) (to = float, or before quantizing to int8/int16); null for none.</summary>
    public FusedActivation? Activation { get; private init; }

    private QGemmOutput(ElementType to, int zy, int lo, int hi, int[] m, int[] n, bool wide)
    {
        To = to; ZeroPoint = zy; ClampMin = lo; ClampMax = hi; Multipliers = m; Shifts = n; Wide = wide;
    }

    /// <summary>Parses the attributes of <paramref name="s"/>'s node; multiplier and shift are inputs
    /// <paramref name="multiplierInput"/> and the one after it, and must be constants.</summary>
    public static QGemmOutput Parse(KernelSetup s, int multiplierInput)
    {
        var node = s.Node;
        var to = (ElementType)node.GetInt("to", (long)ElementType.Int8);
        int accBits = (int)node.GetInt("acc_bits", 32);
        if (accBits is not (32 or 64)) throw s.Error($"acc_bits must be 32 or 64, got {accBits}");
        bool wide = accBits == 64;
        var activation = FusedActivation.Parse(s);
        if (to == ElementType.Float || activation is not null)
        {
            // Spec §4.4 float output: y = fl32((double)acc·S_m), S_m stored exactly as float64, then the fused clip.
            var st = s.Constant(multiplierInput) ?? throw s.Error($"the float scale (input {multiplierInput}) must be a constant initializer");
            if (st.Type != ElementType.Double) throw s.Error($"the float scale must be double, not {st.Type.OnnxName()}");
            var scales = st.ReadOnlySpan<double>().ToArray();
            if (to == ElementType.Float)
                return new QGemmOutput(to, 0, 0, 0, [], [], wide)
                {
                    FloatScales = scales, Activation = activation,
                    ClipMin = node.GetFloat("clip_min", float.NegativeInfinity),
                    ClipMax = node.GetFloat("clip_max", float.PositiveInfinity),
                };
            if (to is not (ElementType.Int8 or ElementType.Int16))
                throw s.Error($"activation '{activation!.Name}' needs to = float (1), int8 (3) or int16 (5), got {(int)to}");
            var (amin, amax) = Requantize.Range(to);
            int az = (int)node.GetInt("y_zero_point", 0);
            if (az < amin || az > amax) throw s.Error($"y_zero_point {az} lies outside {to.OnnxName()}");
            float ys = node.GetFloat("y_scale", float.NaN);
            if (!(ys > 0) || float.IsInfinity(ys)) throw s.Error($"activation '{activation!.Name}' needs a positive finite y_scale, got {ys}");
            return new QGemmOutput(to, az, amin, amax, [], [], wide) { FloatScales = scales, Activation = activation, YScale = ys };
        }
        if (to is ElementType.Int32 or ElementType.Int64)
        {
            if (to == ElementType.Int32 && wide) throw s.Error("an int32 accumulator output needs acc_bits 32");
            return new QGemmOutput(to, 0, 0, 0, [], [], wide);
        }
        if (to is not (ElementType.Int8 or ElementType.Int16))
            throw s.Error($"to must be float (1), int8 (3), int16 (5), int32 (6) or int64 (7), got {(int)to}");
        var (qmin, qmax) = Requantize.Range(to);
        int zy = (int)node.GetInt("y_zero_point", 0);
        if (zy < qmin || zy > qmax) throw s.Error($"y_zero_point {zy} lies outside {to.OnnxName()}");
        int lo = (int)node.GetInt("clamp_min", qmin), hi = (int)node.GetInt("clamp_max", qmax);
        if (lo < qmin || hi > qmax || lo > hi) throw s.Error($"clamp [{lo}, {hi}] is not a range inside {to.OnnxName()}");
        var m = ConstInts(s, multiplierInput, "multiplier");
        var n = ConstInts(s, multiplierInput + 1, "shift");
        if (m.Length != n.Length || m.Length == 0) throw s.Error($"{m.Length} multipliers but {n.Length} shifts");
        foreach (var v in n) if (v is < 0 or > Requantize.MaxShift) throw s.Error($"shift {v} is outside [0, {Requantize.MaxShift}]");
        foreach (var v in m) if (v < 0) throw s.Error($"multiplier {v} is negative");
        return new QGemmOutput(to, zy, lo, hi, m, n, wide);
    }

    /// <summary>A constant int32 input as an array (for multipliers, shifts and biases).</summary>
    public static int[] ConstInts(KernelSetup s, int index, string what)
    {
        var t = s.Constant(index) ?? throw s.Error($"{what} (input {index}) must be a constant initializer");
        if (t.Type != ElementType.Int32) throw s.Error($"{what} must be int32, not {t.Type.OnnxName()}");
        return t.ReadOnlySpan<int>().ToArray();
    }

    /// <summary>The optional int32 bias input <paramref name="index"/> as one long per output channel (zeros when absent).</summary>
    public static long[] Bias(KernelSetup s, int index, int channels)
    {
        var bias = new long[channels];
        if (s.Node.InputOrNull(index) is null) return bias;
        var b = ConstInts(s, index, "bias B");
        if (b.Length != channels) throw s.Error($"bias B has {b.Length} values for {channels} output channels");
        for (int i = 0; i < channels; i++) bias[i] = b[i];
        return bias;
    }

    /// <summary>Checks the parameter count against the output channels (1 or <paramref name="channels"/>).</summary>
    public void CheckChannels(int channels, Func<string, Exception> error)
    {
        if (FloatScales.Length > 1 && FloatScales.Length != channels)
            throw error($"{FloatScales.Length} float scales for {channels} output channels");
        if (Multipliers.Length > 1 && Multipliers.Length != channels)
            throw error($"{Multipliers.Length} multipliers for {channels} output channels");
    }

    /// <summary>The output scale of a fused activation's quantization (to = int8/int16 with <see cref="Activation"/>).</summary>
    public float YScale { get; private init; }

    private int Index(int channel) => Multipliers.Length == 1 ? 0 : channel;

    private double FloatScale(int channel) => FloatScales[FloatScales.Length == 1 ? 0 : channel];

    private float Float(long acc, int channel)
    {
        float y = (float)(acc * FloatScale(channel));
        if (Activation is { } a) y = a.Scalar(y);
        return Math.Min(Math.Max(y, ClipMin), ClipMax);
    }

    /// <summary>One element of the fused activation's integer output, the reference the vector path must equal.</summary>
    private int Activated(long acc, int channel)
    {
        var (qmin, qmax) = Requantize.Range(To);
        return QuantizeRun.Scalar(Activation!.Scalar((float)(acc * FloatScale(channel))), YScale, ZeroPoint, qmin, qmax);
    }

    /// <summary>
    /// The fused activation over one channel's run: in L1-sized pieces, fl32(acc·S_m) (exact int → double, one
    /// product, one rounding to float), the activation's vector map, and the vector QuantizeLinear; every step
    /// computes what its scalar form computes, so the bits equal <see cref="Activated"/> element for element.
    /// </summary>
    private void WriteActivated(ReadOnlySpan<int> acc, int channel, Tensor y, int offset, bool vector)
    {
        var (qmin, qmax) = Requantize.Range(To);
        if (!vector)
        {
            if (To == ElementType.Int8) { var d = y.Span<sbyte>().Slice(offset, acc.Length); for (int i = 0; i < acc.Length; i++) d[i] = (sbyte)Activated(acc[i], channel); }
            else { var d = y.Span<short>().Slice(offset, acc.Length); for (int i = 0; i < acc.Length; i++) d[i] = (short)Activated(acc[i], channel); }
            return;
        }
        double s = FloatScale(channel);
        int done = 0;
        if (To == ElementType.Int8 && Avx512F.IsSupported)
        {
            // int8 with AVX-512: the three steps fused per sixteen lanes in registers, each the same lane arithmetic as
            // its pass below (ScaleToFloat, the activation's map, QuantizeRun's vector), so the bits are the same.
            var sv = Vector512.Create(s);
            var ys = Vector512.Create(YScale);
            var lo = Vector512.Create((float)(qmin - ZeroPoint));
            var hi = Vector512.Create((float)(qmax - ZeroPoint));
            var z = Vector512.Create(ZeroPoint);
            var dst = System.Runtime.InteropServices.MemoryMarshal.AsBytes(y.Span<sbyte>().Slice(offset, acc.Length));
            ref int ar = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(acc);
            ref byte dr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(dst);
            for (; done <= acc.Length - 16; done += 16)
            {
                var f16 = Activation!.Apply(FusedActivation.ScaleToFloat(Vector512.LoadUnsafe(ref ar, (nuint)done), sv));
                Avx512F.ConvertToVector128Byte(QuantizeRun.Vector(f16, ys, lo, hi, z)).StoreUnsafe(ref dr, (nuint)done);
            }
            if (done == acc.Length) return;
        }
        const int Piece = 512;
        // Sized to the run: the stack buffer is zeroed on every call, and the pixel-lane GEMM writes short runs.
        Span<float> f = stackalloc float[Math.Min(Piece, acc.Length - done)];
        for (int start = done; start < acc.Length; start += Piece)
        {
            int n = Math.Min(Piece, acc.Length - start);
            var part = f[..n];
            FusedActivation.ScaleToFloat(acc.Slice(start, n), s, part);
            Activation!.Map(part);
            if (To == ElementType.Int8)
                QuantizeRun.Run8(part, YScale, ZeroPoint, qmin, qmax, System.Runtime.InteropServices.MemoryMarshal.AsBytes(y.Span<sbyte>().Slice(offset + start, n)));
            else
                QuantizeRun.Run16(part, YScale, ZeroPoint, qmin, qmax, System.Runtime.InteropServices.MemoryMarshal.Cast<short, ushort>(y.Span<short>().Slice(offset + start, n)));
        }
    }

    private bool Clamps
    {
        get
        {
            var (qmin, qmax) = Requantize.Range(To);
            return ClampMin > qmin || ClampMax < qmax;
        }
    }

    /// <summary>The fused clamp over a requantized run, vectorized (Min/Max of integers: the same bits as Math.Clamp).</summary>
    private static void Clamp<T>(Span<T> d, T lo, T hi) where T : unmanaged, System.Numerics.INumber<T>
    {
        System.Numerics.Tensors.TensorPrimitives.Max(d, lo, d);
        System.Numerics.Tensors.TensorPrimitives.Min(d, hi, d);
    }

    /// <summary>Writes <paramref name="acc"/> (one channel's run) to <paramref name="y"/> at <paramref name="offset"/>.</summary>
    public void Write(ReadOnlySpan<int> acc, int channel, Tensor y, int offset, bool vector)
    {
        switch (To)
        {
            case ElementType.Float:
                { var d = y.Span<float>().Slice(offset, acc.Length); for (int i = 0; i < acc.Length; i++) d[i] = Float(acc[i], channel); return; }
            case ElementType.Int32: acc.CopyTo(y.Span<int>().Slice(offset, acc.Length)); return;
            case ElementType.Int8 or ElementType.Int16 when Activation is not null: WriteActivated(acc, channel, y, offset, vector); return;
            case ElementType.Int64:
                { var d = y.Span<long>().Slice(offset, acc.Length); for (int i = 0; i < acc.Length; i++) d[i] = acc[i]; return; }
        }
        int c = Index(channel);
        if (To == ElementType.Int8)
        {
            var d = y.Span<sbyte>().Slice(offset, acc.Length);
            Requantize.Run(acc, Multipliers[c], Shifts[c], ZeroPoint, d, vector);
            if (Clamps) Clamp(d, (sbyte)ClampMin, (sbyte)ClampMax);
        }
        else
        {
            var d = y.Span<short>().Slice(offset, acc.Length);
            Requantize.Run(acc, Multipliers[c], Shifts[c], ZeroPoint, d, vector);
            if (Clamps) Clamp(d, (short)ClampMin, (short)ClampMax);
        }
    }

    /// <summary>The same for int64 accumulators (exact 128-bit products where needed, spec §2.2).</summary>
    public void Write(ReadOnlySpan<long> acc, int channel, Tensor y, int offset)
    {
        switch (To)
        {
            case ElementType.Float:
                { var d = y.Span<float>().Slice(offset, acc.Length); for (int i = 0; i < acc.Length; i++) d[i] = Float(acc[i], channel); return; }
            case ElementType.Int64: acc.CopyTo(y.Span<long>().Slice(offset, acc.Length)); return;
            case ElementType.Int32:
                { var d = y.Span<int>().Slice(offset, acc.Length); for (int i = 0; i < acc.Length; i++) d[i] = (int)acc[i]; return; }
        }
        if (Activation is not null)
        {
            if (To == ElementType.Int8) { var d = y.Span<sbyte>().Slice(offset, acc.Length); for (int i = 0; i < acc.Length; i++) d[i] = (sbyte)Activated(acc[i], channel); }
            else { var d = y.Span<short>().Slice(offset, acc.Length); for (int i = 0; i < acc.Length; i++) d[i] = (short)Activated(acc[i], channel); }
            return;
        }
        int c = Index(channel);
        int m = Multipliers[c], n = Shifts[c];
        if (To == ElementType.Int8)
        {
            var d = y.Span<sbyte>().Slice(offset, acc.Length);
            for (int i = 0; i < acc.Length; i++) d[i] = (sbyte)Math.Clamp(Requantize.Rq(acc[i], m, n, ZeroPoint, To), ClampMin, ClampMax);
        }
        else
        {
            var d = y.Span<short>().Slice(offset, acc.Length);
            for (int i = 0; i < acc.Length; i++) d[i] = (short)Math.Clamp(Requantize.Rq(acc[i], m, n, ZeroPoint, To), ClampMin, ClampMax);
        }
    }

    /// <summary>Row-major [rows, cols] accumulators whose channel is the column (MatMul, Gemm).</summary>
    public void WriteRows(ReadOnlySpan<int> acc, int cols, Tensor y, int offset, bool vector)
    {
        if (To == ElementType.Float)
        {
            var d = y.Span<float>().Slice(offset, acc.Length);
            for (int i = 0; i < acc.Length; i++) d[i] = Float(acc[i], i % cols);
            return;
        }
        if (Activation is not null)
        {
            for (int row = 0; row < acc.Length; row += cols)
                for (int j = 0; j < cols; j++) Write(acc.Slice(row + j, 1), j, y, offset + row + j, false);
            return;
        }
        if (Multipliers.Length <= 1 || To is ElementType.Int32 or ElementType.Int64)
        {
            Write(acc, 0, y, offset, vector);
            return;
        }
        if (To == ElementType.Int8)
        {
            var d = y.Span<sbyte>().Slice(offset, acc.Length);
            Requantize.RunPerColumn(acc, Multipliers, Shifts, ZeroPoint, d, vector);
            if (Clamps) Clamp(d, (sbyte)ClampMin, (sbyte)ClampMax);
        }
        else
        {
            var d = y.Span<short>().Slice(offset, acc.Length);
            Requantize.RunPerColumn(acc, Multipliers, Shifts, ZeroPoint, d, vector);
            if (Clamps) Clamp(d, (short)ClampMin, (short)ClampMax);
        }
    }

    /// <summary>Row-major [rows, cols] int64 accumulators, channel = column.</summary>
    public void WriteRows(ReadOnlySpan<long> acc, int cols, Tensor y, int offset)
    {
        if (To == ElementType.Float)
        {
            for (int row = 0; row < acc.Length; row += cols)
                for (int j = 0; j < cols; j++) Write(acc.Slice(row + j, 1), j, y, offset + row + j);
            return;
        }
        if (Activation is null && (Multipliers.Length <= 1 || To is ElementType.Int32 or ElementType.Int64))
        {
            Write(acc, 0, y, offset);
            return;
        }
        for (int row = 0; row < acc.Length; row += cols)
            for (int j = 0; j < cols; j++) Write(acc.Slice(row + j, 1), j, y, offset + row + j);
    }

    /// <summary>The integer values of an int8/int16 tensor widened to int (for the reference paths).</summary>
    public static int[] Widen(Tensor t) => t.Type switch
    {
        ElementType.Int8 => Widen(t.ReadOnlySpan<sbyte>()),
        ElementType.Int16 => Widen(t.ReadOnlySpan<short>()),
        _ => throw new ArgumentException($"{t.Type.OnnxName()} is not int8 or int16"),
    };

    private static int[] Widen<T>(ReadOnlySpan<T> s) where T : unmanaged, System.Numerics.IBinaryInteger<T>
    {
        var r = new int[s.Length];
        for (int i = 0; i < s.Length; i++) r[i] = int.CreateTruncating(s[i]);
        return r;
    }

    /// <summary>Below this many multiply-adds a node runs on one thread: handing out tiny jobs costs more than it saves.</summary>
    private const long ParallelWork = 1 << 18;

    /// <summary>The kernel's parallel loop, or a plain loop when the node is too small to share out.</summary>
    public static Action<int, Action<int>> Threading(Action<int, Action<int>> forEach, long work) =>
        work >= ParallelWork ? forEach : static (count, body) => { for (int i = 0; i < count; i++) body(i); };

    /// <summary>Whether an input type is one of the integer data types the GEMM kernels read.</summary>
    public static bool IsData(ElementType t) => t is ElementType.Int8 or ElementType.Int16;

    /// <summary>Largest |q − z| an input of type <paramref name="t"/> with zero point <paramref name="z"/> reaches.</summary>
    public static int MaxAbs(ElementType t, int z)
    {
        var (qmin, qmax) = Requantize.Range(t);
        return Math.Max(qmax - z, z - qmin);
    }
}
