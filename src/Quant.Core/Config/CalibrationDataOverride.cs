using Quant.Core.Diagnostics;
using Quant.Onnx;

namespace Quant.Core.Config;

/// <summary>
/// Calibration data given outside the yaml (the MSBuild item's <c>CalibrationData</c> metadata, the CLI's
/// <c>--calibration-data</c>) replaces the data globs of the model's single input; the preprocessing
/// still comes from the yaml's <c>inputs</c> entry. A model with several inputs names its data in the yaml.
/// </summary>
public static class CalibrationDataOverride
{
    public static void Apply(QuantConfig config, IReadOnlyList<string>? globs, IEnumerable<ValueInfo> modelInputs, string origin)
    {
        if (globs is null || globs.Count == 0) return;
        var inputs = modelInputs.ToList();
        var where = SourcePosition.InFile(origin);
        if (inputs.Count != 1)
            throw new QuantException(ErrorCode.ConfigMissingInput, where,
                $"calibration data given outside the config applies to a single-input model, but this one has {inputs.Count} inputs ({string.Join(", ", inputs.Select(i => i.Name))}); give each input's data in the config's inputs section");
        var name = inputs[0].Name;
        var old = config.Inputs.TryGetValue(name, out var existing) ? existing : null;
        config.Inputs[name] = new InputConfig
        {
            Name = name,
            Data = globs,
            DataPositions = globs.Select(_ => where).ToList(),
            StoredType = old?.StoredType,
            Shape = old?.Shape,
            Layout = old?.Layout ?? DataLayout.NCHW,
            Scale = old?.Scale ?? 1f,
            ScaleDivisor = old?.ScaleDivisor ?? 1f,
            Mean = old?.Mean,
            Std = old?.Std,
            ChannelOrder = old?.ChannelOrder ?? ChannelOrder.Keep,
            Position = old?.Position ?? where,
            StoredTypePosition = old?.StoredTypePosition ?? default,
            ShapePosition = old?.ShapePosition ?? default,
            LayoutPosition = old?.LayoutPosition ?? default,
            ScalePosition = old?.ScalePosition ?? default,
            MeanPosition = old?.MeanPosition ?? default,
            StdPosition = old?.StdPosition ?? default,
            ChannelOrderPosition = old?.ChannelOrderPosition ?? default,
            Image = old?.Image ?? new ImagePreprocessing(),
        };
    }
}
