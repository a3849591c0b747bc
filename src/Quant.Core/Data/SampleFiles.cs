using System.IO.Compression;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Data;

/// <summary>The element type and shape of one stored array, known without reading its data.</summary>
internal readonly record struct StoredArray(ElementType Type, int[] Shape);

/// <summary>The three array formats (.npy, .npz, raw .bin); globs are expanded by <see cref="FileGlob"/>, images read by <see cref="ImagePipeline"/>.</summary>
internal static class SampleFiles
{
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

    private static StoredArray Stored(NpyHeader h) => new(h.Type, h.Shape);

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
                    return Stored(Npy.ReadHeader(fs, path));
            case Format.Npz:
                using (var zip = ZipFile.OpenRead(path))
                using (var s = NpzEntry(zip, input, path).Open())
                    return Stored(Npy.ReadHeader(s, path));
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
