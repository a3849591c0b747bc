using Quant.Core.DeploymentRuntime;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;
using static Quant.Engine.Tests.Kernels.ElementwiseReference;

namespace Quant.Engine.Tests.Kernels;

public class QuantizeLinearTests
{
    private static readonly ElementType[] QTypes = [ElementType.UInt8, ElementType.Int8, ElementType.UInt16, ElementType.Int16];

    /// <summary>Independent reference: x / scale in float32, then round half to even and clamp in double.</summary>
    private static long RefQuantize(float x, float scale, long zp, ElementType t)
    {
        var (lo, hi) = t switch
        {
            ElementType.UInt8 => (0L, 255L),
            ElementType.Int8 => (-128L, 127L),
            ElementType.UInt16 => (0L, 65535L),
            _ => (-32768L, 32767L),
        };
        float v = x / scale;
        if (float.IsNaN(v)) return lo;
        if (float.IsPositiveInfinity(v)) return hi;
        if (float.IsNegativeInfinity(v)) return lo;
        return Math.Clamp((long)Math.Round((double)v, MidpointRounding.ToEven) + zp, lo, hi);
    }

    private static long[] AsLongs(Tensor t) => t.Type switch
    {
        ElementType.UInt8 => t.ReadOnlySpan<byte>().ToArray().Select(v => (long)v).ToArray(),
        ElementType.Int8 => t.ReadOnlySpan<sbyte>().ToArray().Select(v => (long)v).ToArray(),
        ElementType.UInt16 => t.ReadOnlySpan<ushort>().ToArray().Select(v => (long)v).ToArray(),
        ElementType.Int16 => t.ReadOnlySpan<short>().ToArray().Select(v => (long)v).ToArray(),
        ElementType.Int32 => t.ReadOnlySpan<int>().ToArray().Select(v => (long)v).ToArray(),
        _ => throw new ArgumentException(t.Type.ToString()),
    };

    private static Tensor Scalar(ElementType t, long v) => t switch
    {
        ElementType.UInt8 => Tensor.From(new[] { (byte)v }),
        ElementType.Int8 => Tensor.From(new[] { (sbyte)v }),
        ElementType.UInt16 => Tensor.From(new[] { (ushort)v }),
        ElementType.Int16 => Tensor.From(new[] { (short)v }),
        _ => Tensor.From(new[] { (int)v }),
    };

    private static Tensor Vector(ElementType t, long[] v, params int[] shape) => t switch
    {
        ElementType.UInt8 => Tensor.From(v.Select(e => (byte)e).ToArray(), shape),
        ElementType.Int8 => Tensor.From(v.Select(e => (sbyte)e).ToArray(), shape),
        ElementType.UInt16 => Tensor.From(v.Select(e => (ushort)e).ToArray(), shape),
        ElementType.Int16 => Tensor.From(v.Select(e => (short)e).ToArray(), shape),
        _ => Tensor.From(v.Select(e => (int)e).ToArray(), shape),
    };

    /// <summary>Values with exact ties (k + 0.5 steps), out-of-range magnitudes, infinities and NaN.</summary>
    private static float[] HardValues(int n, int seed, float scale)
    {
        var rng = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++)
            a[i] = (i % 11) switch
            {
                0 => (rng.Next(-300, 300) + 0.5f) * scale,
                1 => float.NaN,
                2 => rng.Next(2) == 0 ? float.PositiveInfinity : float.NegativeInfinity,
                3 => (float)(rng.NextDouble() - 0.5) * 1e6f * scale,
                4 => -0f,
                _ => (float)(rng.NextDouble() - 0.5) * 600 * scale,
            };
        return a;
    }

    [Fact]
    public void Quantize_matches_reference_on_every_length_and_type()
    {
        foreach (var t in QTypes)
            foreach (float scale in new[] { 0.5f, 0.0371f })
                for (int n = 0; n <= 67; n++)
                {
                    long zp = t switch { ElementType.UInt8 => 131, ElementType.Int8 => -3, ElementType.UInt16 => 30001, _ => 17 };
                    var x = HardValues(n, n * 7 + (int)t, scale);
                    var y = AsLongs(RunNode("QuantizeLinear", 21, [Tensor.From(x, n), Tensor.From(new[] { scale }), Scalar(t, zp)])[0]);
                    Assert.Equal(n, y.Length);
                    for (int i = 0; i < n; i++)
                        Assert.True(RefQuantize(x[i], scale, zp, t) == y[i], $"{t} n={n} x[{i}]={x[i]}: got {y[i]}, expected {RefQuantize(x[i], scale, zp, t)}");
                }
    }

    [Fact]
    public void Quantize_result_does_not_depend_on_position_or_threads()
    {
        var x = HardValues(40000, 5, 0.02f);
        foreach (var t in QTypes)
        {
            var a = AsLongs(RunNode("QuantizeLinear", 21, [Tensor.From(x, x.Length), Tensor.From(new[] { 0.02f }), Scalar(t, 0)], threads: 2)[0]);
            for (int i = 0; i < x.Length; i++) Assert.Equal(RefQuantize(x[i], 0.02f, 0, t), a[i]);
            for (int off = 1; off <= 33; off++)
            {
                var part = AsLongs(RunNode("QuantizeLinear", 21, [Tensor.From(x[off..(off + 40)], 40), Tensor.From(new[] { 0.02f }), Scalar(t, 0)])[0]);
                Assert.Equal(a[off..(off + 40)], part);
            }
        }
    }

    [Fact]
    public void Missing_zero_point_gives_uint8_or_output_dtype()
    {
        var x = Tensor.From(new[] { -1f, 0.6f, 300f }, 3);
        var q = RunNode("QuantizeLinear", 10, [x, Tensor.From(new[] { 1f })])[0];
        Assert.Equal(ElementType.UInt8, q.Type);
        Assert.Equal(new byte[] { 0, 1, 255 }, q.ReadOnlySpan<byte>().ToArray());
        var q16 = RunNode("QuantizeLinear", 21, [x, Tensor.From(new[] { 1f })], attributes: [AttributeValue.Of("output_dtype", (long)ElementType.Int16)])[0];
        Assert.Equal(new short[] { -1, 1, 300 }, q16.ReadOnlySpan<short>().ToArray());
        var d = RunNode("DequantizeLinear", 10, [Tensor.From(new byte[] { 0, 7, 255 }, 3), Tensor.From(new[] { 0.5f })])[0];
        Assert.Equal(new[] { 0f, 3.5f, 127.5f }, d.ReadOnlySpan<float>().ToArray());
    }

    [Fact]
    public void Dequantize_matches_reference_on_every_length_and_type()
    {
        foreach (var t in QTypes.Append(ElementType.Int32))
            for (int n = 0; n <= 67; n++)
            {
                var rng = new Random(n + 31 * (int)t);
                var (lo, hi) = t switch
                {
                    ElementType.UInt8 => (0, 256), ElementType.Int8 => (-128, 128), ElementType.UInt16 => (0, 65536),
                    ElementType.Int16 => (-32768, 32768), _ => (-2_000_000_000, 2_000_000_000),
                };
                var q = Enumerable.Range(0, n).Select(_ => (long)rng.Next(lo, hi)).ToArray();
                long zp = t == ElementType.Int32 ? 0 : (lo + hi) / 2 - 5;
                const float scale = 0.0123f;
                var y = RunNode("DequantizeLinear", 21, [Vector(t, q, n), Tensor.From(new[] { scale }), Scalar(t, zp)])[0].ReadOnlySpan<float>();
                for (int i = 0; i < n; i++)
                    Assert.Equal((float)(int)(q[i] - zp) * scale, y[i]);
            }
    }

    [Fact]
    public void Per_axis_and_blocked_layouts_pick_the_right_scale()
    {
        int[] shape = [2, 3, 5, 4];
        var x = RandomTensor(9, shape, -20, 20);
        var xs = x.ReadOnlySpan<float>().ToArray();
        // Per-axis on axis 1 (opset 13) and -1.
        foreach (var (axis, len) in new[] { (1, 3), (-1, 4), (0, 2) })
        {
            var scales = Enumerable.Range(0, len).Select(i => 0.1f + 0.07f * i).ToArray();
            var zps = Enumerable.Range(0, len).Select(i => (long)(i * 5 - 4)).ToArray();
            var q = AsLongs(RunNode("QuantizeLinear", 13, [x, Tensor.From(scales, len), Vector(ElementType.Int8, zps, len)],
                attributes: [AttributeValue.Of("axis", (long)axis)])[0]);
            var dq = RunNode("DequantizeLinear", 13, [Vector(ElementType.Int8, q, shape), Tensor.From(scales, len), Vector(ElementType.Int8, zps, len)],
                attributes: [AttributeValue.Of("axis", (long)axis)])[0].ReadOnlySpan<float>();
            int a = axis < 0 ? axis + 4 : axis;
            for (int i = 0; i < xs.Length; i++)
            {
                int c = IndexAlong(shape, i, a);
                Assert.Equal(RefQuantize(xs[i], scales[c], zps[c], ElementType.Int8), q[i]);
                Assert.Equal((float)(q[i] - zps[c]) * scales[c], dq[i]);
            }
        }
        // Blocked (opset 21): block_size 2 along axis 2 (5 -> 3 blocks), scale shape [2,3,3,4].
        int[] sshape = [2, 3, 3, 4];
        var bs = RandomTensor(4, sshape, 0.05f, 0.3f);
        var bzp = Vector(ElementType.Int16, Enumerable.Range(0, 72).Select(i => (long)(i - 36)).ToArray(), sshape);
        var attrs = new[] { AttributeValue.Of("axis", 2L), AttributeValue.Of("block_size", 2L) };
        var bq = AsLongs(RunNode("QuantizeLinear", 21, [x, bs, bzp], attributes: attrs)[0]);
        var bdq = RunNode("DequantizeLinear", 21, [Vector(ElementType.Int16, bq, shape), bs, bzp], attributes: attrs)[0].ReadOnlySpan<float>();
        var bsv = bs.ReadOnlySpan<float>();
        var bzv = AsLongs(bzp);
        for (int i = 0; i < xs.Length; i++)
        {
            int n0 = i / 60, c = i / 20 % 3, h = i / 4 % 5, w = i % 4;
            int p = ((n0 * 3 + c) * 3 + h / 2) * 4 + w;
            Assert.Equal(RefQuantize(xs[i], bsv[p], bzv[p], ElementType.Int16), bq[i]);
            Assert.Equal((float)(bq[i] - bzv[p]) * bsv[p], bdq[i]);
        }
    }

    private static int IndexAlong(int[] shape, int flat, int axis)
    {
        int inner = 1;
        for (int d = axis + 1; d < shape.Length; d++) inner *= shape[d];
        return flat / inner % shape[axis];
    }

    [Fact]
    public void Float16_scale_gives_float16_output_and_input()
    {
        var x = Tensor.From(new[] { (Half)1.5f, (Half)(-2.25f), (Half)100f }, 3);
        var q = RunNode("QuantizeLinear", 19, [x, Tensor.From(new[] { (Half)0.5f }), Scalar(ElementType.Int8, 1)])[0];
        Assert.Equal(new sbyte[] { 4, -3, 127 }, q.ReadOnlySpan<sbyte>().ToArray());
        var d = RunNode("DequantizeLinear", 19, [q, Tensor.From(new[] { (Half)0.5f }), Scalar(ElementType.Int8, 1)])[0];
        Assert.Equal(ElementType.Float16, d.Type);
        Assert.Equal(new[] { (Half)1.5f, (Half)(-2f), (Half)63f }, d.ReadOnlySpan<Half>().ToArray());
    }

    [Fact]
    public void Bad_layouts_are_named()
    {
        var x = RandomTensor(1, [2, 3, 4]);
        var e = Assert.Throws<EngineException>(() => RunNode("QuantizeLinear", 13, [x, Tensor.From(new[] { 1f, 2f }, 2)]));
        Assert.Contains("per-axis scale must be 1-D with 3 entries", e.Message);
        e = Assert.Throws<EngineException>(() => RunNode("QuantizeLinear", 13, [x, Tensor.From(new[] { 1f }), Tensor.From(new byte[] { 1, 2 }, 2)]));
        Assert.Contains("zero point has shape [2]", e.Message);
        e = Assert.Throws<EngineException>(() => RunNode("DequantizeLinear", 13, [x, Tensor.From(new[] { 1f })]));
        Assert.Contains("dequantizing float is not supported", e.Message);
    }

    /// <summary>
    /// ONNX Runtime on Q/DQ nodes of every supported type and layout (opset 21 for int16/uint16 and blocks,
    /// opset 13 for the classic int8/uint8 forms): the quantized integers and the dequantized floats must be
    /// bit-identical, ties, saturation, infinities and NaN included.
    /// </summary>
    [Theory]
    [InlineData(13)]
    [InlineData(21)]
    public void Matches_onnx_runtime_bit_for_bit(int opset)
    {
        int[] shape = [2, 8, 9, 13];
        var g = new Graph { Name = "qdq" };
        g.Inputs.Add(new ValueInfo("x", ElementType.Float, shape.Select(d => Dim.Known(d)).ToArray()));
        var types = opset >= 21 ? QTypes : QTypes[..2];
        var rng = new Random(opset);
        int k = 0;
        void AddPair(ElementType t, TensorData scale, TensorData? zp, params AttributeValue[] attrs)
        {
            string id = $"{k++}_{t.OnnxName()}";
            g.Initializers[scale.Name = $"s{id}"] = scale;
            if (zp is not null) g.Initializers[zp.Name = $"z{id}"] = zp;
            var q = new Node($"q{id}", "QuantizeLinear", "", ["x", scale.Name, zp?.Name ?? ""], [$"q{id}"]);
            var d = new Node($"d{id}", "DequantizeLinear", "", [$"q{id}", scale.Name, zp?.Name ?? ""], [$"y{id}"]);
            foreach (var a in attrs) { q.Set(a); d.Set(a); }
            g.Nodes.Add(q);
            g.Nodes.Add(d);
            g.Outputs.Add(new ValueInfo($"q{id}", zp?.Type ?? ElementType.UInt8, null));
            g.Outputs.Add(new ValueInfo($"y{id}", ElementType.Float, null));
        }
        TensorData Zp(ElementType t, params long[] dims)
        {
            var (lo, hi) = t switch { ElementType.UInt8 => (0, 256), ElementType.Int8 => (-128, 128), ElementType.UInt16 => (0, 65536), _ => (-32768, 32768) };
            long n = dims.Aggregate(1L, (p, d) => p * d);
            var v = Enumerable.Range(0, (int)n).Select(_ => (long)rng.Next(lo + (hi - lo) / 4, hi - (hi - lo) / 4)).ToArray();
            return Vector(t, v, dims.Select(d => (int)d).ToArray()).ToData("z");
        }
        TensorData Scales(params long[] dims)
        {
            long n = dims.Aggregate(1L, (p, d) => p * d);
            return TensorData.FromFloats("s", dims, Enumerable.Range(0, (int)n).Select(_ => 0.003f + (float)rng.NextDouble() * 0.2f).ToArray());
        }
        AddPair(ElementType.UInt8, TensorData.FromFloats("s", [], [0.125f]), null);
        foreach (var t in types)
        {
            AddPair(t, Scales(), Zp(t));
            AddPair(t, Scales(8), Zp(t, 8), AttributeValue.Of("axis", 1L));
            AddPair(t, Scales(13), Zp(t, 13), AttributeValue.Of("axis", -1L));
        }
        if (opset >= 21)
            AddPair(ElementType.Int8, Scales(2, 8, 3, 13), Zp(ElementType.Int8, 2, 8, 3, 13), AttributeValue.Of("axis", 2L), AttributeValue.Of("block_size", 4L));
        var model = new OnnxModel(g);
        model.Opsets[""] = opset;

        var values = HardValues(Tensor.ElementCount(shape), 77, 0.1f);
        for (int i = 0; i < values.Length; i++) if (float.IsNaN(values[i]) && i % 3 != 0) values[i] = 1e-3f * i; // keep a few NaNs
        var x = Tensor.From(values, shape);
        var dir = TestAssets.TempDir("qdq");
        try
        {
            var path = Path.Combine(dir, $"qdq{opset}.onnx");
            OnnxModelWriter.Save(model, path);
            var feeds = new Dictionary<string, Tensor> { ["x"] = x };
            var ours = new InferenceSession(model, new SessionOptions { Threads = 2 }).Run(feeds);
            var ort = OrtOracle.Run(path, feeds, optimization: OrtOptimization.Disabled).Outputs;
            foreach (var o in g.Outputs)
            {
                var a = ort[o.Name];
                var b = ours[o.Name];
                Assert.Equal(a.Type, b.Type);
                Assert.Equal(a.Shape, b.Shape);
                var diff = Enumerable.Range(0, a.Length).FirstOrDefault(i => !a.Bytes().Slice(i * a.Type.SizeOf(), a.Type.SizeOf()).SequenceEqual(b.Bytes().Slice(i * b.Type.SizeOf(), b.Type.SizeOf())), -1);
                if (diff >= 0) Assert.Fail($"{o.Name}: element {diff} (x = {values[diff]}) differs from ONNX Runtime: ORT {TensorAssert.AsDoubles(a)[diff]}, engine {TensorAssert.AsDoubles(b)[diff]}");
                Assert.True(a.Length > 0);
            }
        }
        finally { Directory.Delete(dir, true); }
    }
}
