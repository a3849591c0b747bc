using Quant.Onnx;

namespace Quant.Engine.Kernels;

/// <summary>
/// Identity, and Dropout in inference mode (output = input, mask all true). Dropout with
/// training_mode = true is random and refused: a quantization toolchain runs inference graphs.
/// </summary>
[KernelFamily]
internal static class IdentityKernels
{
    public static void Register(KernelRegistry r)
    {
        r.Add("Identity", 1, _ => new Copy());
        r.Add("Dropout", 1, _ => new Copy());
        r.Add("Dropout", 12, _ => new Copy(checkTrainingMode: true));
    }

    private sealed class Copy(bool checkTrainingMode = false) : IKernel
    {
        public void Run(KernelContext ctx)
        {
            var x = ctx.Required(0);
            if (checkTrainingMode && ctx.Input(2) is { } training && training.ReadOnlySpan<bool>()[0]
                && (ctx.Input(1) is not { } ratio || ToDouble(ratio) != 0))
                throw ctx.Error("Dropout with training_mode = true is random; export the model for inference");
            var y = ctx.Output(0, x.Type, x.Shape);
            Array.Copy(x.Buffer, y.Buffer, x.Length);
            if (ctx.WantsOutput(1))
            {
                var mask = ctx.Output(1, ElementType.Bool, x.Shape);
                mask.Span<bool>().Fill(true);
            }
        }

        private static double ToDouble(Tensor t) => t.Type switch
        {
            ElementType.Float => t.ReadOnlySpan<float>()[0],
            ElementType.Double => t.ReadOnlySpan<double>()[0],
            ElementType.Float16 => (double)t.ReadOnlySpan<Half>()[0],
            _ => 1,
        };
    }
}
