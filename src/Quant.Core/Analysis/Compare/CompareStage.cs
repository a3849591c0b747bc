namespace Quant.Core.Analysis.Compare;

/// <summary>The models <c>quant-check compare</c> runs, in pipeline order; the float model is the reference of the others.</summary>
public enum CompareStage { Float, Qat, Quantized, Compiled }

public static class CompareStages
{
    public static string Name(this CompareStage s) => s switch
    {
        CompareStage.Float => "float",
        CompareStage.Qat => "qat",
        CompareStage.Quantized => "quantized",
        _ => "compiled",
    };
}
