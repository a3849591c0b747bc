using Quant.Onnx;

namespace Quant.Engine;

/// <summary>
/// The arena: buffers freed when a value's last consumer has run are handed to later values of the
/// same element type (best fit by capacity). The plan decides when values die; the pool only reuses.
/// Not thread-safe: one pool per running session call.
/// </summary>
internal sealed class BufferPool
{
    private readonly Dictionary<ElementType, List<Array>> _free = [];
    private readonly List<float[]> _scratch = [];
    private long _liveBytes;

    /// <summary>Largest number of bytes held by live values and scratch at once during this pool's life.</summary>
    public long PeakBytes { get; private set; }

    /// <summary>Starts a new peak measurement from what is live now (free buffers are not live).</summary>
    public void ResetPeak() => PeakBytes = _liveBytes;

    public Tensor Rent(ElementType type, ReadOnlySpan<int> shape)
    {
        int n = Tensor.ElementCount(shape);
        Array? best = null;
        if (_free.TryGetValue(type, out var list))
        {
            int bestIdx = -1;
            for (int i = 0; i < list.Count; i++)
            {
                int cap = list[i].Length;
                if (cap >= n && (bestIdx < 0 || cap < list[bestIdx].Length)) bestIdx = i;
            }
            // Do not let a tiny value pin a huge buffer.
            if (bestIdx >= 0 && list[bestIdx].Length <= Math.Max(4096, 2 * n))
            {
                best = list[bestIdx];
                list.RemoveAt(bestIdx);
            }
        }
        best ??= NewBuffer(type, n);
        Track(type, best.Length, +1);
        return new Tensor(type, shape.ToArray(), best, n);
    }

    public void Return(Tensor t)
    {
        if (t.Type == ElementType.String) return;
        if (!_free.TryGetValue(t.Type, out var list)) _free[t.Type] = list = [];
        list.Add(t.Buffer);
        Track(t.Type, t.Buffer.Length, -1);
    }

    /// <summary>A rented tensor handed to the caller (a graph output): no longer live in this pool, never reused.</summary>
    public void Forget(Tensor t)
    {
        if (t.Type != ElementType.String) Track(t.Type, t.Buffer.Length, -1);
    }

    public float[] RentScratch(int length)
    {
        lock (_scratch)
        {
            int bestIdx = -1;
            for (int i = 0; i < _scratch.Count; i++)
                if (_scratch[i].Length >= length && (bestIdx < 0 || _scratch[i].Length < _scratch[bestIdx].Length)) bestIdx = i;
            float[] buf;
            if (bestIdx >= 0) { buf = _scratch[bestIdx]; _scratch.RemoveAt(bestIdx); }
            else buf = GC.AllocateUninitializedArray<float>(length);
            Track(ElementType.Float, buf.Length, +1);
            return buf;
        }
    }

    public void ReturnScratch(float[] buffer)
    {
        lock (_scratch)
        {
            _scratch.Add(buffer);
            Track(ElementType.Float, buffer.Length, -1);
        }
    }

    private static Array NewBuffer(ElementType type, int n) => type switch
    {
        ElementType.Float => GC.AllocateUninitializedArray<float>(n),
        ElementType.Int64 => GC.AllocateUninitializedArray<long>(n),
        ElementType.Int32 => GC.AllocateUninitializedArray<int>(n),
        ElementType.String => CreateStrings(n),
        _ => Array.CreateInstance(Tensor.ClrType(type), n),
    };

    private static string[] CreateStrings(int n)
    {
        var s = new string[n];
        Array.Fill(s, "");
        return s;
    }

    private void Track(ElementType type, int length, int sign)
    {
        long bytes = (long)length * Math.Max(1, type == ElementType.String ? IntPtr.Size : type.SizeOf());
        _liveBytes += sign * bytes;
        if (_liveBytes > PeakBytes) PeakBytes = _liveBytes;
    }
}
