namespace Quant.Engine;

/// <summary>
/// A prepared operator: attributes parsed and constant inputs (weights) pre-packed at plan time,
/// then run once per execution. <see cref="Run"/> must write every element of every output it
/// allocates (buffers are reused and hold stale data) and must not keep references to inputs.
/// </summary>
public interface IKernel
{
    void Run(KernelContext ctx);
}

/// <summary>Creates a kernel for one node. Throw <see cref="EngineException"/> for attributes the kernel cannot honour.</summary>
public delegate IKernel KernelFactory(KernelSetup setup);

/// <summary>Marks a static class whose <c>public static void Register(KernelRegistry registry)</c> adds kernels.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class KernelFamilyAttribute : Attribute;
