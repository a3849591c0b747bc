using System.Collections.Generic;
using System.Linq;

namespace Quant.Build.Tasks;

/// <summary>
/// What a <c>QuantModel</c>'s <c>Stages</c> implies: which artifact stages run (a check pair needs the stages that
/// make its models: quantized_vs_qat needs convert, compiled_vs_quantized convert and compile; compile needs
/// convert), which stage pairs the check measures, and how that is said to the tool.
/// </summary>
internal sealed class StagePlan
{
    public bool Convert { get; private set; }
    public bool Compile { get; private set; }
    /// <summary>The check's stage pairs, by the tool's names.</summary>
    public IReadOnlyList<string> CheckPairs { get; private set; } = new List<string>();
    public bool CheckReadsQuantized => CheckPairs.Contains("quantized_vs_qat") || CheckPairs.Contains("compiled_vs_quantized");
    public bool CheckReadsCompiled => CheckPairs.Contains("compiled_vs_quantized");

    /// <summary>
    /// <c>--stage</c> values (<c>;</c>-separated), or empty when the pairs are the tool's default for the models it is
    /// given (qat_vs_float, runtime_vs_qat, and the pairs of --quantized/--compiled). Empty keeps runtime_vs_qat
    /// optional: the tool skips it, with a note, when ONNX Runtime cannot load the qat model; a named pair is required.
    /// </summary>
    public string CheckStagesArgument
    {
        get
        {
            var toolDefault = new List<string> { "qat_vs_float", "runtime_vs_qat" };
            if (CheckReadsQuantized) toolDefault.Add("quantized_vs_qat");
            if (CheckReadsCompiled) toolDefault.Add("compiled_vs_quantized");
            return toolDefault.OrderBy(s => s).SequenceEqual(CheckPairs.OrderBy(s => s)) ? "" : string.Join(";", CheckPairs);
        }
    }

    public static StagePlan Of(ICollection<string> stages)
    {
        var pairs = new List<string>();
        if (stages.Contains("check")) pairs.Add("qat_vs_float");
        foreach (var p in new[] { "runtime_vs_qat", "quantized_vs_qat", "compiled_vs_quantized" })
            if (stages.Contains(p)) pairs.Add(p);
        bool compile = stages.Contains("compile") || pairs.Contains("compiled_vs_quantized");
        bool convert = compile || stages.Contains("convert") || pairs.Contains("quantized_vs_qat");
        return new StagePlan { Convert = convert, Compile = compile, CheckPairs = pairs };
    }
}
