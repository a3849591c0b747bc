using Quant.Core.Diagnostics;
using Quant.Engine;
using Quant.Runtime;

namespace Quant.Core.Stages;

/// <summary>Loads and runs a NAME.qbm through Quant.Runtime, with its failures as positioned diagnostics at the file.</summary>
public static class CompiledModels
{
    public static QbmModel Load(string path)
    {
        if (!File.Exists(path))
            throw new QuantException(ErrorCode.ModelUnreadable, SourcePosition.InFile(path), "the compiled model does not exist; run the compile stage (quant-check compile) first");
        try { return QbmModel.Load(path); }
        catch (QbmFormatException e) { throw RuntimeErrors.Translate(e); }
    }

    /// <param name="observer">Sees every value as it is produced (layer-wise comparison); null: a plain run.</param>
    public static IReadOnlyDictionary<string, Tensor> Run(QbmModel model, IReadOnlyDictionary<string, Tensor> inputs, string path, IValueObserver? observer = null)
    {
        try { return observer is null ? model.Run(inputs) : model.Run(inputs, observer); }
        catch (EngineException e) { throw new QuantException(ErrorCode.ModelRunFailed, SourcePosition.InFile(path), e.Message, e); }
        catch (QbmFormatException e) { throw RuntimeErrors.Translate(e); }
    }
}
