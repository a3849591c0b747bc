using System.Reflection;
using Quant.Onnx;

namespace Quant.Engine;

/// <summary>
/// Kernels by (domain, op type, since-version). A node gets the kernel with the highest
/// since-version not above the model's opset for its domain, as ONNX versioning works.
/// </summary>
public sealed class KernelRegistry
{
    private readonly Dictionary<(string Domain, string Op), List<(int Since, KernelFactory Factory)>> _kernels = [];

    public static KernelRegistry Default { get; } = CreateDefault();

    /// <summary>Registers <paramref name="factory"/> for <paramref name="opType"/> from opset <paramref name="sinceVersion"/> on.</summary>
    public void Add(string opType, int sinceVersion, KernelFactory factory, string domain = "")
    {
        var key = (NormalizeDomain(domain), opType);
        if (!_kernels.TryGetValue(key, out var list)) _kernels[key] = list = [];
        list.RemoveAll(e => e.Since == sinceVersion);
        list.Add((sinceVersion, factory));
        list.Sort((a, b) => a.Since.CompareTo(b.Since));
    }

    public KernelFactory? Find(string domain, string opType, long opset)
    {
        if (!_kernels.TryGetValue((NormalizeDomain(domain), opType), out var list)) return null;
        KernelFactory? found = null;
        foreach (var (since, f) in list)
            if (since <= opset) found = f;
        return found;
    }

    /// <summary>Every registered (domain, op type), sorted, for error messages and conformance tests.</summary>
    public IReadOnlyList<string> OpTypes(string domain = "") =>
        _kernels.Keys.Where(k => k.Domain == NormalizeDomain(domain)).Select(k => k.Op).Order(StringComparer.Ordinal).ToList();

    private static string NormalizeDomain(string d) => d == "ai.onnx" ? "" : d;

    private static KernelRegistry CreateDefault()
    {
        var r = new KernelRegistry();
        var families = typeof(KernelRegistry).Assembly.GetTypes()
            .Where(t => t.GetCustomAttribute<KernelFamilyAttribute>() is not null)
            .OrderBy(t => t.FullName, StringComparer.Ordinal);
        foreach (var t in families)
        {
            var m = t.GetMethod("Register", BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static, [typeof(KernelRegistry)])
                ?? throw new InvalidOperationException($"{t.FullName} is a kernel family without a static Register(KernelRegistry)");
            m.Invoke(null, [r]);
        }
        return r;
    }
}
