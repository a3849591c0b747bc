using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.FileSystemGlobbing;
using Microsoft.Extensions.FileSystemGlobbing.Abstractions;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Data;

/// <summary>The element type and shape of one stored array, known without reading its data.</summary>
internal readonly record struct StoredArray(ElementType Type, int[] Shape);

/// <summary>Glob expansion and the three array formats (.npy, .npz, raw .bin); images are read by <see cref="ImagePipeline"/>.</summary>
internal static partial class SampleFiles
{
    private static readonly StringComparison PathComparison =
        OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    /// <summary>
    /// The files one glob matches, sorted ordinally. The literal leading folders (which may climb with
    /// <c>..</c> or be absolute) become the matcher's root, because the matcher only walks downwards.
    /// </summary>
    public static List<string> Expand(string baseDirectory, string glob)
    {
        var segments = glob.Replace('\\', '/').Split('/');
        int firstWild = Array.FindIndex(segments, s => s.Contains('*'));
        if (firstWild < 0)
        {
            var file = Path.GetFullPath(Path.Combine(baseDirectory, glob));
            return File.Exists(file) ? [file] : [];
        }
        var prefix = string.Join('/', segments[..firstWild]);
        var root = Path.GetFullPath(firstWild == 0 ? baseDirectory : Path.Combine(baseDirectory, prefix.Length == 0 ? "/" : prefix));
        if (!Directory.Exists(root)) return [];
        var matcher = new Matcher(PathComparison);
        matcher.AddInclude(string.Join('/', segments[firstWild..]));
        var result = matcher.Execute(new DirectoryInfoWrapper(new DirectoryInfo(root)));
        return result.Files.Select(f => Path.GetFullPath(Path.Combine(root, f.Path))).Order(StringComparer.Ordinal).ToList();
    }

    public enum Format { Npy, Npz, Bin, Image }

    public static Format? FormatOf(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".npy" => Format.Npy,
        ".npz" => Format.Npz,
        ".bin" or ".raw" => Format.Bin,
        _ when ImageFiles.IsImage(path) => Format.Image,
        _ => null,
    };

    /// <summary>The entry of an .npz archive holding <paramref name="input"/>: named after it, or the only array.</summary>
    public static ZipArchiveEntry NpzEntry(ZipArchive zip, string input, string path)
    {
        var arrays = zip.Entries.Where(e => e.FullName.EndsWith(".npy", StringComparison.Ordinal)).ToList();
        var named = arrays.FirstOrDefault(e => e.FullName == input + ".npy");
        if (named is not null) return named;
        if (arrays.Count == 1) return arrays[0];
        throw new InvalidDataException(arrays.Count == 0
            ? $"{path} holds no arrays"
            : $"{path} holds arrays {string.Join(", ", arrays.Select(e => Path.GetFileNameWithoutExtension(e.FullName)))} but none named '{input}' (the model input); name the array after the input");
    }

    /// <summary>The element type and shape in an .npy header (the data is not read).</summary>
    public static StoredArray ReadNpyHeader(Stream s, string name)
    {
        Span<byte> pre = stackalloc byte[10];
        s.ReadExactly(pre[..8]);
        if (pre[0] != 0x93 || Encoding.ASCII.GetString(pre[1..6]) != "NUMPY")
            throw new InvalidDataException($"{name} is not an .npy file (missing the \\x93NUMPY magic)");
        int length;
        if (pre[6] == 1) { s.ReadExactly(pre[8..10]); length = pre[8] | pre[9] << 8; }
        else
        {
            Span<byte> len = stackalloc byte[4];
            s.ReadExactly(len);
            length = BitConverter.ToInt32(len);
        }
        if (length is <= 0 or > 1 << 16) throw new InvalidDataException($"{name}: the .npy header is corrupt");
        var header = new byte[length];
        s.ReadExactly(header);
        var text = Encoding.Latin1.GetString(header);
        var descr = Descr().Match(text);
        var shape = ShapeField().Match(text);
        if (!descr.Success || !shape.Success) throw new InvalidDataException($"{name}: the .npy header has no dtype or shape");
        var type = descr.Groups[1].Value switch
        {
            "f4" => ElementType.Float, "f2" => ElementType.Float16, "f8" => ElementType.Double,
            "i1" => ElementType.Int8, "u1" => ElementType.UInt8, "i2" => ElementType.Int16, "u2" => ElementType.UInt16,
            "i4" => ElementType.Int32, "u4" => ElementType.UInt32, "i8" => ElementType.Int64, "u8" => ElementType.UInt64,
            "b1" => ElementType.Bool,
            _ => throw new InvalidDataException($"{name}: dtype '{descr.Groups[1].Value}' is not supported"),
        };
        var dims = shape.Groups[1].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(d => int.Parse(d.TrimEnd('L'), NumberStyles.None, CultureInfo.InvariantCulture)).ToArray();
        return new StoredArray(type, dims);
    }

    [GeneratedRegex(@"'descr'\s*:\s*'[<|=]([a-z][0-9])'")]
    private static partial Regex Descr();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapeField();

    /// <summary>Reads one stored array (the whole file for .npy and .bin, one entry for .npz).</summary>
    public static Tensor Read(string path, Format format, string input, ElementType? binType, int[]? binShape)
    {
        switch (format)
        {
            case Format.Image:
                throw new ArgumentException("images are read by ImagePipeline", nameof(format));
            case Format.Npy:
                return Npy.Read(path);
            case Format.Npz:
                using (var zip = ZipFile.OpenRead(path))
                using (var s = NpzEntry(zip, input, path).Open())
                    return Npy.Read(s, path);
            default:
                var t = Tensor.Zeros(binType!.Value, binShape!);
                using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
                {
                    if (fs.Length != t.Bytes().Length)
                        throw new SampleSizeException($"{path} has {fs.Length} bytes but shape [{string.Join(",", binShape!)}] of {binType.Value.DTypeName()} needs {t.Bytes().Length}");
                    fs.ReadExactly(t.Bytes());
                }
                return t;
        }
    }

    /// <summary>The stored type and shape without reading the data.</summary>
    public static StoredArray Peek(string path, Format format, string input, ElementType? binType, int[]? binShape)
    {
        switch (format)
        {
            case Format.Image:
                throw new ArgumentException("images are read by ImagePipeline", nameof(format));
            case Format.Npy:
                using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
                    return ReadNpyHeader(fs, path);
            case Format.Npz:
                using (var zip = ZipFile.OpenRead(path))
                using (var s = NpzEntry(zip, input, path).Open())
                    return ReadNpyHeader(s, path);
            default:
                long expected = (long)binShape!.Aggregate(1L, (a, d) => a * d) * binType!.Value.SizeOf();
                long actual = new FileInfo(path).Length;
                if (actual != expected)
                    throw new SampleSizeException($"{path} has {actual} bytes but shape [{string.Join(",", binShape!)}] of {binType.Value.DTypeName()} needs {expected}");
                return new StoredArray(binType.Value, binShape!);
        }
    }
}

/// <summary>A raw .bin file whose size does not match the declared shape and dtype (a shape error, not corruption).</summary>
internal sealed class SampleSizeException(string message) : IOException(message);
