using System.Reflection;

namespace Quant.Core.Conversion;

/// <summary>
/// The integer rules of this build, by op type: every non-abstract <see cref="IIntegerRule"/> class of the Quant.Core
/// assembly, created once in the order of their full names. Two rules claiming one op type is a build mistake,
/// reported when the table is first used.
/// </summary>
public static class IntegerRules
{
    private static readonly Lazy<IReadOnlyDictionary<string, IIntegerRule>> All = new(Discover);

    /// <summary>Op type → rule.</summary>
    public static IReadOnlyDictionary<string, IIntegerRule> ByOpType => All.Value;

    internal static IReadOnlyDictionary<string, IIntegerRule> Discover()
    {
        var map = new SortedDictionary<string, IIntegerRule>(StringComparer.Ordinal);
        var types = typeof(IIntegerRule).Assembly.GetTypes()
            .Where(t => t is { IsClass: true, IsAbstract: false } && typeof(IIntegerRule).IsAssignableFrom(t))
            .OrderBy(t => t.FullName, StringComparer.Ordinal);
        foreach (var t in types)
        {
            var ctor = t.GetConstructor(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance, Type.EmptyTypes)
                ?? throw new InvalidOperationException($"integer rule {t.FullName} needs a parameterless constructor");
            var rule = (IIntegerRule)ctor.Invoke(null);
            foreach (var op in rule.OpTypes)
            {
                if (map.TryGetValue(op, out var other))
                    throw new InvalidOperationException($"two integer rules claim op type {op}: {other.GetType().FullName} and {t.FullName}");
                map[op] = rule;
            }
        }
        return map;
    }
}
