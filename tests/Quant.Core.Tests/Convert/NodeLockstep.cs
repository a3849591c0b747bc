using Quant.Core.Analysis;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Tests.Convert;

/// <summary>
/// Spec §14 "node by node" (<see cref="RequantizationLockstep"/>) from files, asserting every compared node writes
/// the qat run's integer type.
/// </summary>
internal static class NodeLockstep
{
    public static RequantizationLockstep.Result Run(string qatPath, string quantizedPath, IReadOnlyDictionary<string, Tensor> feeds)
    {
        var result = RequantizationLockstep.Run(new InferenceSession(OnnxModelReader.Load(qatPath)), OnnxModelReader.Load(quantizedPath), feeds);
        Assert.Empty(result.TypeMismatches);
        return result;
    }
}
