using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>Identity, Dropout (inference: identity, mask of ones): outputs are copies of the input.</summary>
[KernelFamily]
internal static class IdentityKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("Identity", 1, _ => new Copy());
        r.Add("Dropout", 1, _ => new Copy());
    }

    private sealed class Copy : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            var y = ctx.Output(0, x.Type, x.Shape);
            Array.Copy(x.Buffer, y.Buffer, x.Length);
            if (ctx.WantsOutput(1))
            {
                var mask = ctx.Output(1, ElementType.Bool, x.Shape);
                mask.Span<bool>().Fill(true);
            }
        }
    }
}
