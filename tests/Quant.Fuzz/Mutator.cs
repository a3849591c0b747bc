using System.Buffers.Binary;

namespace Quant.Fuzz;

/// <summary>
/// Byte-level mutations, 1 to 5 stacked per input: bit flips, interesting integers (raw little-endian and as protobuf
/// varints, the length fields of protobuf, npy, zip and .qbm), inserts, deletes, duplicated ranges, splices with
/// another corpus entry, truncation and the target's dictionary tokens.
/// </summary>
public sealed class Mutator(Random rng, IReadOnlyList<byte[]> tokens)
{
    private static readonly long[] Interesting =
    [
        0, 1, -1, 2, 7, 8, 16, 31, 32, 63, 64, 100, 127, 128, 255, 256, 1000, 1024, 4096, 32767, 32768, 65535, 65536, 100_000,
        1 << 20, 1 << 24, int.MaxValue, int.MaxValue - 1, (long)int.MaxValue + 1, uint.MaxValue, 1L << 32, 1L << 40, long.MaxValue,
        long.MinValue, int.MinValue, -2, -128, 0x7FFF_FFC7,
    ];

    public byte[] Mutate(byte[] input, Func<byte[]> other)
    {
        var data = new List<byte>(input);
        int steps = 1 + rng.Next(5);
        for (int s = 0; s < steps; s++) Step(data, other);
        if (data.Count > 1 << 20) data.RemoveRange(1 << 20, data.Count - (1 << 20));
        return [.. data];
    }

    private void Step(List<byte> d, Func<byte[]> other)
    {
        int at = d.Count == 0 ? 0 : rng.Next(d.Count);
        switch (rng.Next(d.Count == 0 ? 1 : 12))
        {
            case 0: // insert random bytes
                d.InsertRange(at, Random(1 + rng.Next(8)));
                break;
            case 1: // bit flip
                d[at] ^= (byte)(1 << rng.Next(8));
                break;
            case 2: // random byte
                d[at] = (byte)rng.Next(256);
                break;
            case 3: // delete a range
                d.RemoveRange(at, Math.Min(d.Count - at, 1 + rng.Next(rng.Next(2) == 0 ? 4 : 64)));
                break;
            case 4: // overwrite with a little-endian interesting integer (2, 4 or 8 bytes)
            {
                int width = new[] { 1, 2, 4, 8 }[rng.Next(4)];
                Span<byte> b = stackalloc byte[8];
                BinaryPrimitives.WriteInt64LittleEndian(b, Pick());
                for (int i = 0; i < width && at + i < d.Count; i++) d[at + i] = b[i];
                break;
            }
            case 5: // replace a protobuf varint with an interesting one
            {
                int end = at;
                while (end < d.Count && end - at < 10 && (d[end] & 0x80) != 0) end++;
                if (end < d.Count) end++;
                d.RemoveRange(at, end - at);
                d.InsertRange(at, Varint(Pick()));
                break;
            }
            case 6: // duplicate a range
            {
                int n = Math.Min(d.Count - at, 1 + rng.Next(256));
                d.InsertRange(rng.Next(d.Count + 1), d.GetRange(at, n));
                break;
            }
            case 7: // splice another corpus entry's range in
            {
                var o = other();
                if (o.Length == 0) break;
                int from = rng.Next(o.Length), n = Math.Min(o.Length - from, 1 + rng.Next(512));
                if (rng.Next(2) == 0) d.RemoveRange(at, Math.Min(d.Count - at, n));
                d.InsertRange(Math.Min(at, d.Count), o.AsSpan(from, n).ToArray());
                break;
            }
            case 8: // truncate
                d.RemoveRange(at, d.Count - at);
                break;
            case 9: // insert or overwrite a dictionary token
            case 10:
                if (tokens.Count == 0) goto case 2;
                var t = tokens[rng.Next(tokens.Count)];
                if (rng.Next(2) == 0) d.InsertRange(at, t);
                else for (int i = 0; i < t.Length; i++) { if (at + i < d.Count) d[at + i] = t[i]; else d.Add(t[i]); }
                break;
            default: // add or subtract a small number (counters and lengths off by a few)
                d[at] = (byte)(d[at] + rng.Next(-16, 17));
                break;
        }
    }

    private long Pick() => rng.Next(4) == 0 ? rng.NextInt64() >> rng.Next(64) : Interesting[rng.Next(Interesting.Length)];

    private byte[] Random(int n)
    {
        var b = new byte[n];
        rng.NextBytes(b);
        return b;
    }

    private static byte[] Varint(long v)
    {
        var r = new List<byte>();
        ulong u = (ulong)v;
        do { byte b = (byte)(u & 0x7F); u >>= 7; r.Add(u != 0 ? (byte)(b | 0x80) : b); } while (u != 0);
        return [.. r];
    }
}
