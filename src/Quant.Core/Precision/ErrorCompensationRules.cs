using Quant.Core.Config;
using Quant.Core.Diagnostics;

namespace Quant.Core.Precision;

/// <summary>
/// Where node_config's <c>inputN: ec</c> (error compensation) applies: the int8 weight of a Conv, ConvTranspose, MatMul
/// or Gemm that runs in int8/int16. Anything else is refused with the yaml position, because a setting that silently
/// does nothing looks exactly like one that works. Feature-input compensation (Resize/GridSample <c>input0: ec</c>) is
/// not implemented and says so.
/// </summary>
internal static class ErrorCompensationRules
{
    public static void Check(NodePrecision np, IReadOnlyDictionary<int, SourcePosition> requested,
        Action<ChangeSite, int, string, QType, QType, string> log)
    {
        foreach (var (index, position) in requested.OrderBy(kv => kv.Key))
        {
            var input = np.Inputs[index];
            string where = $"node_config '{np.Name}': input{index}: ec";
            QuantException Refuse(string why) => new(ErrorCode.ConfigInvalidValue, position, $"{where} {why}");
            if (np.OpType is "Resize" or "GridSample")
                throw Refuse($"(error compensation of the feature input of {np.OpType}) is not supported yet; " +
                             "remove it, or give the input a wider qtype (input0: int16)");
            if (!TargetRules.GemmOps.Contains(np.OpType) || !np.Node.IsDefaultDomain)
                throw Refuse($"applies to the weight (input1) of Conv, ConvTranspose, MatMul and Gemm only; {np.Node.Describe()} is a {np.OpType}");
            if (input.Role != InputRole.Weight)
                throw Refuse(input.Role == InputRole.Activation
                    ? $"needs a constant weight; input{index} '{input.Tensor}' is computed at run time (ec splits weights, not activations)"
                    : $"applies to the weight (input1); input{index} '{input.Tensor}' is not one");
            if (np.Compute is not (QType.Int8 or QType.Int16))
                throw Refuse($"splits an int8 weight, but the node runs in {PrecisionPlan.QTypeText(np.Compute)} ({np.Source}); " +
                             "give it qtype: int8 or int16, or remove ec");
            input.QType = QType.Int8;
            input.ErrorCompensation = true;
            log(ChangeSite.Input, index, input.Tensor, QType.Int8, QType.Int8,
                $"error compensation: int8 weight split into a high and a residual low part ('{np.Name}' + '{ErrorCompensationNames.LowNode(np.Name)}', added)");
        }
    }
}

/// <summary>The names error compensation gives the nodes and values it adds (Horizon's <c>Conv_3</c> / <c>Conv_3_split_low</c>).</summary>
public static class ErrorCompensationNames
{
    public static string LowNode(string node) => node + "_split_low";
    public static string AddNode(string node) => node + "_split_add";
}
