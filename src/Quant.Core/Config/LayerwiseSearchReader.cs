using Quant.Core.Diagnostics;
using YamlDotNet.RepresentationModel;

namespace Quant.Core.Config;

public static partial class QuantConfigLoader
{
    private static readonly string[] LayerwiseSearchKeys = ["samples"];

    /// <summary>
    /// model_config.layerwise_search: <c>true</c> (defaults), <c>false</c> / null (off) or a mapping of
    /// <see cref="LayerwiseSearchKeys"/>. HMCT's own options for it (metric, similarity targets) are not ours: they are
    /// rejected as unknown keys rather than accepted and ignored.
    /// </summary>
    private static LayerwiseSearchConfig? ReadLayerwiseSearch(YamlReader r, YamlNode v, string path)
    {
        if (v is YamlScalarNode)
            return YamlReader.IsNull(v) || !r.Bool(v, path) ? null : new LayerwiseSearchConfig(LayerwiseSearchConfig.DefaultSamples, r.At(v));
        if (v is not YamlMappingNode map)
            throw r.Error(ErrorCode.ConfigWrongType, v, $"{path}: expected true, false or a mapping ({string.Join(", ", LayerwiseSearchKeys)}), got {YamlReader.Describe(v)}");
        int samples = LayerwiseSearchConfig.DefaultSamples;
        foreach (var (_, _, sv) in r.Entries(map, path, LayerwiseSearchKeys))
        {
            samples = r.Integer(sv, $"{path}.samples");
            if (samples < 1 || samples > 64)
                throw r.Error(ErrorCode.ConfigInvalidValue, sv, $"{path}.samples: {samples} must be from 1 to 64 (each sample costs one downstream re-run per tensor and alternative)");
        }
        return new LayerwiseSearchConfig(samples, r.At(v));
    }
}
