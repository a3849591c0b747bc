using System.Reflection;
using System.Runtime.InteropServices;

namespace Quant.Core.Tests.Compile;

/// <summary>The deployable runtime must not drag the toolchain's heavy dependencies into an application.</summary>
public class RuntimeClosureTests
{
    private static readonly string[] Forbidden = ["Google.Protobuf", "YamlDotNet", "Microsoft.Build", "Microsoft.ML.OnnxRuntime", "NuGet."];

    [Fact]
    public void QuantRuntimeReferencesNoToolchainPackage()
    {
        var closure = Closure(typeof(Quant.Runtime.QbmModel).Assembly);
        Assert.Contains("Quant.Engine", closure);
        Assert.Contains("Quant.Onnx", closure);
        Assert.DoesNotContain("Quant.Onnx.Protobuf", closure);
        Assert.DoesNotContain(closure, IsForbidden);
    }

    [Fact]
    public void TheWalkFindsForbiddenPackagesWhereTheyAre()
    {
        // The same walk from Quant.Core sees protobuf, YAML, ONNX Runtime and NuGet: the check above can fail.
        var closure = Closure(typeof(Quant.Core.Compilation.CompileStage).Assembly);
        Assert.Contains("Google.Protobuf", closure);
        Assert.Contains("YamlDotNet", closure);
        Assert.Contains("Microsoft.ML.OnnxRuntime", closure);
        Assert.Contains(closure, n => n.StartsWith("NuGet.", StringComparison.Ordinal));
    }

    private static bool IsForbidden(string name) =>
        Forbidden.Any(f => name == f || (f.EndsWith('.') ? name.StartsWith(f, StringComparison.Ordinal) : name.StartsWith(f + ".", StringComparison.Ordinal)));

    /// <summary>Names of every assembly reachable by references, walking through all but the shared framework's.</summary>
    private static SortedSet<string> Closure(Assembly root)
    {
        string framework = Path.GetFullPath(RuntimeEnvironment.GetRuntimeDirectory());
        var seen = new SortedSet<string>(StringComparer.Ordinal) { root.GetName().Name! };
        var pending = new Stack<Assembly>([root]);
        while (pending.TryPop(out var a))
            foreach (var r in a.GetReferencedAssemblies())
            {
                if (!seen.Add(r.Name!)) continue;
                var loaded = Assembly.Load(r);
                if (!Path.GetFullPath(loaded.Location).StartsWith(framework, StringComparison.Ordinal)) pending.Push(loaded);
            }
        return seen;
    }
}
