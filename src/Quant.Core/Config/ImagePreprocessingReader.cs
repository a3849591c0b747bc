using Quant.Core.Diagnostics;
using YamlDotNet.RepresentationModel;

namespace Quant.Core.Config;

/// <summary>
/// Reads the image keys of an <c>inputs</c> entry (color, resize, interpolation, crop, pad) with positioned
/// errors. Whether the input's files are images at all is checked with the data (CalibrationDataSet).
/// </summary>
internal static class ImagePreprocessingReader
{
    public static readonly string[] Keys = ["color", "resize", "interpolation", "crop", "pad"];

    /// <summary>
    /// The largest side resize, crop and pad may ask for: a sample is allocated at this size, so a typo
    /// (640000) must not become a multi-gigabyte buffer.
    /// </summary>
    public const int MaxSide = 8192;

    private static readonly (string, ImageColor)[] Colors = [("bgr", ImageColor.Bgr), ("rgb", ImageColor.Rgb), ("gray", ImageColor.Gray)];
    private static readonly (string, Interpolation)[] Interpolations = [("bilinear", Interpolation.Bilinear), ("nearest", Interpolation.Nearest)];
    private static readonly string[] ResizeKeys = ["height", "width", "longer_side", "shorter_side"];
    private static readonly string[] CropKeys = ["height", "width"];
    private static readonly string[] PadKeys = ["height", "width", "value"];

    /// <summary>Reads the image keys among <paramref name="entries"/> (other keys are skipped).</summary>
    public static ImagePreprocessing Read(YamlReader r, string path, IEnumerable<(string Key, YamlScalarNode KeyNode, YamlNode Value)> entries)
    {
        ImageColor? color = null;
        ImageResize? resize = null;
        var interpolation = Interpolation.Bilinear;
        (int, int)? crop = null;
        (int, int, byte)? pad = null;
        SourcePosition colorAt = default, resizeAt = default, interpolationAt = default, cropAt = default, padAt = default;
        foreach (var (key, _, v) in entries)
        {
            var p = $"{path}.{key}";
            switch (key)
            {
                case "color": color = r.Choice(v, p, Colors); colorAt = r.At(v); break;
                case "interpolation": interpolation = r.Choice(v, p, Interpolations); interpolationAt = r.At(v); break;
                case "resize": resize = ReadResize(r, v, p); resizeAt = r.At(v); break;
                case "crop":
                    var c = Sizes(r, v, p, CropKeys);
                    crop = (Required(r, v, p, c, "height"), Required(r, v, p, c, "width"));
                    cropAt = r.At(v);
                    break;
                case "pad":
                    var d = Sizes(r, v, p, PadKeys);
                    pad = (Required(r, v, p, d, "height"), Required(r, v, p, d, "width"), PadValue(r, (YamlMappingNode)v, p));
                    padAt = r.At(v);
                    break;
            }
        }
        if (interpolationAt.Line > 0 && resize is null)
            throw new QuantException(ErrorCode.ConfigInvalidValue, interpolationAt,
                $"{path}.interpolation chooses how resize samples the image, but {path} has no resize; add resize or remove interpolation");
        return new ImagePreprocessing
        {
            Color = color, Resize = resize, Interpolation = interpolation, Crop = crop, Pad = pad,
            ColorPosition = colorAt, ResizePosition = resizeAt, InterpolationPosition = interpolationAt, CropPosition = cropAt, PadPosition = padAt,
        };
    }

    private static ImageResize ReadResize(YamlReader r, YamlNode node, string path)
    {
        if (node is not YamlMappingNode)
            throw r.Error(ErrorCode.ConfigWrongType, node,
                $"{path}: expected a mapping ({{height: H, width: W}}, {{longer_side: N}} or {{shorter_side: N}}), got {YamlReader.Describe(node)}");
        var sizes = Sizes(r, node, path, ResizeKeys);
        bool exact = sizes.ContainsKey("height") || sizes.ContainsKey("width");
        int ratioKeys = (sizes.ContainsKey("longer_side") ? 1 : 0) + (sizes.ContainsKey("shorter_side") ? 1 : 0);
        if ((exact ? 1 : 0) + ratioKeys != 1 || (exact && sizes.Count != 2))
            throw r.Error(ErrorCode.ConfigInvalidValue, node,
                $"{path}: give {{height: H, width: W}} (exact size), {{longer_side: N}} or {{shorter_side: N}} (aspect ratio kept); got {{{string.Join(", ", sizes.Keys)}}}");
        if (exact) return new ImageResize(ResizeMode.Exact, sizes["height"], sizes["width"], 0);
        return sizes.TryGetValue("longer_side", out var longer)
            ? new ImageResize(ResizeMode.LongerSide, 0, 0, longer)
            : new ImageResize(ResizeMode.ShorterSide, 0, 0, sizes["shorter_side"]);
    }

    /// <summary>The size entries of a mapping (every key but value), each an integer in [1, MaxSide].</summary>
    private static Dictionary<string, int> Sizes(YamlReader r, YamlNode node, string path, string[] keys)
    {
        if (node is not YamlMappingNode map)
            throw r.Error(ErrorCode.ConfigWrongType, node, $"{path}: expected a mapping ({string.Join(", ", keys.Where(k => k != "value"))}), got {YamlReader.Describe(node)}");
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (key, _, v) in r.Entries(map, path, keys))
        {
            if (key == "value") continue;
            var p = $"{path}.{key}";
            var x = r.Integer(v, p);
            if (x < 1 || x > MaxSide)
                throw r.Error(ErrorCode.ConfigInvalidValue, v, $"{p}: {x} pixels is not a usable size; give 1 to {MaxSide}");
            result[key] = x;
        }
        return result;
    }

    private static int Required(YamlReader r, YamlNode node, string path, Dictionary<string, int> sizes, string key) =>
        sizes.TryGetValue(key, out var x) ? x
            : throw r.Error(ErrorCode.ConfigInvalidValue, node, $"{path}: '{key}' is required (give height and width)");

    private static byte PadValue(YamlReader r, YamlMappingNode map, string path)
    {
        foreach (var (k, v) in map.Children)
        {
            if (k is not YamlScalarNode { Value: "value" }) continue;
            var x = r.Integer(v, $"{path}.value");
            if (x is < 0 or > 255)
                throw r.Error(ErrorCode.ConfigInvalidValue, v, $"{path}.value: {x} is not a uint8 pixel value; give 0 to 255 (the padding is written before scale, mean and std)");
            return (byte)x;
        }
        return 0;
    }
}
