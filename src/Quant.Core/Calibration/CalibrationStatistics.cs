using System.Text;
using Quant.Core.Diagnostics;

namespace Quant.Core.Calibration;

/// <summary>
/// The calibration statistics of a model over a data set, tagged with the caller's cache key
/// (model hash + data fingerprint + preprocessing). Stored as a compact deterministic binary file:
/// the same statistics always give the same bytes, so the file itself can be compared or hashed.
/// </summary>
/// <remarks>
/// File layout (little-endian; "varint" is unsigned LEB128, "zigzag" a signed LEB128 via zigzag):
/// <code>
/// "QBCALST1"                      magic and format version
/// string key, varint numBins, varint tensorCount
/// per tensor (in first-observation order):
///   string name, byte flags (1: has histogram range, 2: has channel min/max)
///   varint count, varint nonFinite, f32 min, f32 max
///   [zigzag rangeExponent]
///   positive histogram, negative histogram: varint L (last non-zero bin + 1), then L varints
///   [varint channels, channels x f32 min, channels x f32 max]
/// u64 FNV-1a of every byte before it
/// </code>
/// Strings are a varint byte length then UTF-8.
/// </remarks>
public sealed class CalibrationStatistics
{
    private static readonly byte[] Magic = "QBCALST1"u8.ToArray();
    private readonly Dictionary<string, TensorStatistics> _byName;

    public CalibrationStatistics(string cacheKey, int numBins, IReadOnlyList<TensorStatistics> tensors)
    {
        CacheKey = cacheKey;
        NumBins = numBins;
        Tensors = tensors;
        _byName = new Dictionary<string, TensorStatistics>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            if (t.NumBins != numBins) throw new ArgumentException($"tensor '{t.Name}' has {t.NumBins} bins, not {numBins}");
            if (!_byName.TryAdd(t.Name, t)) throw new ArgumentException($"tensor '{t.Name}' appears twice");
        }
    }

    public string CacheKey { get; }
    public int NumBins { get; }
    public IReadOnlyList<TensorStatistics> Tensors { get; }
    public TensorStatistics this[string name] => _byName[name];
    public bool TryGet(string name, out TensorStatistics stats) => _byName.TryGetValue(name, out stats!);
    public bool Contains(string name) => _byName.ContainsKey(name);
    public long RetainedBytes => Tensors.Sum(t => t.RetainedBytes);

    /// <summary>The file's bytes.</summary>
    public byte[] ToBytes()
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Magic);
            WriteString(w, CacheKey);
            w.Write7BitEncodedInt64(NumBins);
            w.Write7BitEncodedInt64(Tensors.Count);
            foreach (var t in Tensors)
            {
                WriteString(w, t.Name);
                bool channels = t.ChannelMin is not null && t.ChannelMax is not null;
                w.Write((byte)((t.RangeExponent is null ? 0 : 1) | (channels ? 2 : 0)));
                w.Write7BitEncodedInt64(t.Count);
                w.Write7BitEncodedInt64(t.NonFinite);
                w.Write(t.Min);
                w.Write(t.Max);
                if (t.RangeExponent is int e) w.Write7BitEncodedInt64(ZigZag(e));
                WriteHistogram(w, t.PositiveHistogram);
                WriteHistogram(w, t.NegativeHistogram);
                if (channels)
                {
                    w.Write7BitEncodedInt64(t.ChannelMin!.Length);
                    foreach (var v in t.ChannelMin) w.Write(v);
                    foreach (var v in t.ChannelMax!) w.Write(v);
                }
            }
        }
        var body = ms.ToArray();
        var result = new byte[body.Length + 8];
        body.CopyTo(result, 0);
        BitConverter.TryWriteBytes(result.AsSpan(body.Length), Fnv1a(body));
        if (!BitConverter.IsLittleEndian) result.AsSpan(body.Length).Reverse();
        return result;
    }

    /// <summary>Writes the file atomically (<see cref="AtomicFile"/>): a reader sees the old file or the whole new one.</summary>
    public void Save(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var bytes = ToBytes();
        AtomicFile.Write(path, s => s.Write(bytes));
    }

    /// <summary>
    /// The statistics stored at <paramref name="path"/> when they were made under <paramref name="cacheKey"/>;
    /// null when the file is missing, was made under another key, or is not a valid statistics file
    /// (a cache miss: the caller recalibrates and overwrites it). <paramref name="damage"/> says why an existing
    /// file could not be read at all (truncated, bad checksum, not a statistics file): a miss worth a warning,
    /// where another key is just a changed input.
    /// </summary>
    public static CalibrationStatistics? TryLoad(string path, string cacheKey) => TryLoad(path, cacheKey, out _);

    /// <inheritdoc cref="TryLoad(string, string)"/>
    public static CalibrationStatistics? TryLoad(string path, string cacheKey, out string? damage)
    {
        damage = null;
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { return null; }
        var stats = TryParse(bytes);
        if (stats is null) damage = Describe(bytes);
        return stats is not null && stats.CacheKey == cacheKey ? stats : null;
    }

    /// <summary>Why <paramref name="bytes"/> (which <see cref="TryParse"/> rejected) are not a statistics file.</summary>
    private static string Describe(byte[] bytes)
    {
        if (bytes.Length == 0) return "it is empty";
        var magicSeen = bytes.AsSpan(0, Math.Min(bytes.Length, Magic.Length));
        if (!magicSeen.SequenceEqual(Magic.AsSpan(0, magicSeen.Length))) return $"it does not start with the {Encoding.ASCII.GetString(Magic)} header";
        return bytes.Length < Magic.Length + 8
            ? $"it is truncated ({bytes.Length} bytes)"
            : $"it is truncated or damaged ({bytes.Length} bytes; its checksum or length does not match its content)";
    }

    /// <summary>Parses a statistics file; null when the bytes are not one (wrong magic, truncated, bad checksum).</summary>
    public static CalibrationStatistics? TryParse(byte[] bytes)
    {
        if (bytes.Length < Magic.Length + 8 || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic)) return null;
        var body = bytes.AsSpan(0, bytes.Length - 8);
        var tail = bytes.AsSpan(bytes.Length - 8).ToArray();
        if (!BitConverter.IsLittleEndian) Array.Reverse(tail);
        if (BitConverter.ToUInt64(tail) != Fnv1a(body)) return null;
        try
        {
            using var r = new BinaryReader(new MemoryStream(bytes, Magic.Length, body.Length - Magic.Length), Encoding.UTF8);
            string key = ReadString(r);
            int bins = checked((int)r.Read7BitEncodedInt64());
            long count = r.Read7BitEncodedInt64();
            var tensors = new List<TensorStatistics>();
            for (long i = 0; i < count; i++)
            {
                var t = new TensorStatistics(ReadString(r), bins);
                byte flags = r.ReadByte();
                t.Count = r.Read7BitEncodedInt64();
                t.NonFinite = r.Read7BitEncodedInt64();
                t.Min = r.ReadSingle();
                t.Max = r.ReadSingle();
                if ((flags & 1) != 0) t.RangeExponent = checked((int)UnZigZag(r.Read7BitEncodedInt64()));
                t.SetHistograms(ReadHistogram(r, bins), ReadHistogram(r, bins));
                if ((flags & 2) != 0)
                {
                    int c = checked((int)r.Read7BitEncodedInt64());
                    t.ChannelMin = new float[c];
                    t.ChannelMax = new float[c];
                    for (int k = 0; k < c; k++) t.ChannelMin[k] = r.ReadSingle();
                    for (int k = 0; k < c; k++) t.ChannelMax[k] = r.ReadSingle();
                }
                tensors.Add(t);
            }
            if (r.BaseStream.Position != r.BaseStream.Length) return null;
            return new CalibrationStatistics(key, bins, tensors);
        }
        catch (Exception e) when (e is EndOfStreamException or FormatException or OverflowException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>True when both hold exactly the same numbers under the same key.</summary>
    public bool ContentEquals(CalibrationStatistics o) =>
        CacheKey == o.CacheKey && NumBins == o.NumBins && Tensors.Count == o.Tensors.Count
        && Tensors.Zip(o.Tensors).All(p => p.First.ContentEquals(p.Second));

    private static void WriteString(BinaryWriter w, string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        w.Write7BitEncodedInt64(b.Length);
        w.Write(b);
    }

    private static string ReadString(BinaryReader r)
    {
        int n = checked((int)r.Read7BitEncodedInt64());
        var b = r.ReadBytes(n);
        if (b.Length != n) throw new EndOfStreamException();
        return Encoding.UTF8.GetString(b);
    }

    private static void WriteHistogram(BinaryWriter w, ReadOnlySpan<long> h)
    {
        int used = h.Length;
        while (used > 0 && h[used - 1] == 0) used--;
        w.Write7BitEncodedInt64(used);
        for (int i = 0; i < used; i++) w.Write7BitEncodedInt64(h[i]);
    }

    private static long[] ReadHistogram(BinaryReader r, int bins)
    {
        long used = r.Read7BitEncodedInt64();
        if (used < 0 || used > bins) throw new FormatException("histogram longer than num_bin");
        var h = new long[bins];
        for (int i = 0; i < used; i++)
        {
            h[i] = r.Read7BitEncodedInt64();
            if (h[i] < 0) throw new FormatException("negative count");
        }
        return h;
    }

    private static long ZigZag(long v) => (v << 1) ^ (v >> 63);
    private static long UnZigZag(long v) => (long)((ulong)v >> 1) ^ -(v & 1);

    private static ulong Fnv1a(ReadOnlySpan<byte> data)
    {
        ulong h = 14695981039346656037UL;
        foreach (var b in data) { h ^= b; h *= 1099511628211UL; }
        return h;
    }
}
