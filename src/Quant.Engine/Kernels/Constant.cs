using System.Text;
using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Constant: the tensor in exactly one of <c>value</c>, or (opset 12+) <c>value_float</c> (float scalar),
/// <c>value_floats</c> (1-d float), <c>value_int</c> (int64 scalar), <c>value_ints</c> (1-d int64),
/// <c>value_string</c> (string scalar), <c>value_strings</c> (1-d string). <c>sparse_value</c> is not
/// supported (the model reader keeps sparse tensors opaque); the node is rejected at plan time.
/// </summary>
[KernelFamily]
internal static class ConstantKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("Constant", 1, s => new ConstantKernel(Value(s)));
    }

    private static Tensor Value(KernelSetup s)
    {
        var attrs = s.Node.Attributes.Values.Where(a => a.Name is "value" or "sparse_value" or "value_float" or "value_floats"
            or "value_int" or "value_ints" or "value_string" or "value_strings").ToList();
        if (attrs.Count != 1)
            throw s.Error($"exactly one value attribute is required but the node has {(attrs.Count == 0 ? "none" : string.Join(", ", attrs.Select(a => a.Name)))}");
        var a = attrs[0];
        try
        {
            return a.Name switch
            {
                "value" => Tensor.FromData(a.Tensor ?? throw s.Error("attribute 'value' holds no tensor")),
                "value_float" => Tensor.From(new[] { a.Float }),
                "value_floats" => Tensor.From(a.Floats, a.Floats.Length),
                "value_int" => Tensor.From(new[] { a.Int }),
                "value_ints" => Tensor.From(a.Ints, a.Ints.Length),
                "value_string" => Tensor.From(new[] { Encoding.UTF8.GetString(a.Bytes) }),
                "value_strings" => Tensor.From(a.StringList.Select(b => Encoding.UTF8.GetString(b)).ToArray(), a.StringList.Length),
                _ => throw s.Error("sparse_value is not supported; store the constant densely in 'value'"),
            };
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException)
        {
            throw s.Error($"attribute '{a.Name}': {e.Message}");
        }
    }

    private sealed class ConstantKernel(Tensor value) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var y = ctx.Output(0, value.Type, value.Shape);
            Array.Copy(value.Buffer, y.Buffer, value.Length);
        }
    }
}
