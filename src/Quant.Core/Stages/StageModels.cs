using Quant.Core.Analysis;
using Quant.Core.Diagnostics;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Stages;

/// <summary>
/// How every stage loads and runs models: engine and format errors become positioned diagnostics
/// naming the model file (QB3001 unreadable, QB3002 no kernel, QB3003 failed run).
/// </summary>
internal static class StageModels
{
    public static OnnxModel Load(string path)
    {
        try { return OnnxModelReader.Load(path); }
        catch (OnnxFormatException e) { throw new QuantException(ErrorCode.ModelUnreadable, SourcePosition.InFile(path), e.Message, e); }
    }

    public static InferenceSession Session(OnnxModel model, SessionOptions options, string file)
    {
        try { return new InferenceSession(model, options); }
        catch (EngineException e) { throw new QuantException(ErrorCode.ModelUnsupportedOp, SourcePosition.InFile(file), e.Message, e); }
    }

    public static IReadOnlyDictionary<string, Tensor> Run(InferenceSession session, IReadOnlyDictionary<string, Tensor> inputs, string file, RunOptions? options = null)
    {
        try { return session.Run(inputs, options); }
        catch (EngineException e) { throw new QuantException(ErrorCode.ModelRunFailed, SourcePosition.InFile(file), e.Message, e); }
    }

    public static IReadOnlyList<LastBitStability.OutputStability> Stability(InferenceSession session, IReadOnlyDictionary<string, Tensor> inputs, string file)
    {
        try { return LastBitStability.Measure(session, inputs); }
        catch (EngineException e) { throw new QuantException(ErrorCode.ModelRunFailed, SourcePosition.InFile(file), e.Message, e); }
    }

    /// <summary>
    /// The qat model's floor under ±1-LSB requantization flips (what quantized_vs_qat may differ by), injected at the
    /// quantized model's own flip share when it is given (<see cref="RequantizationLockstep"/> on the same sample;
    /// <see cref="LastBitStability.FlipShareFor"/> bounds it), else at <see cref="LastBitStability.RequantizationFlipShare"/>.
    /// </summary>
    public static (IReadOnlyList<LastBitStability.OutputStability> Floor, double Share) FlipStability(InferenceSession session, OnnxModel? quantized,
        IReadOnlyDictionary<string, Tensor> inputs, string file)
    {
        try
        {
            double share = quantized is null ? LastBitStability.RequantizationFlipShare
                : LastBitStability.FlipShareFor(RequantizationLockstep.Run(session, quantized, inputs).FlipShare);
            return (LastBitStability.MeasureRequantizationFlips(session, inputs, share), share);
        }
        catch (EngineException e) { throw new QuantException(ErrorCode.ModelRunFailed, SourcePosition.InFile(file), e.Message, e); }
    }
}
