using Quant.Engine;
using Quant.Runtime;

namespace Quant.Check.Commands;

/// <summary>
/// The input and output names of a loaded .qbm, as infer needs them to match --input files and name output files.
/// ADAPTER until Quant.Runtime's QbmModel lands in main with its own signature: read by property name
/// (<c>InputNames</c>/<c>OutputNames</c>, or <c>Inputs</c>/<c>Outputs</c> of items with a <c>Name</c>); outputs fall
/// back to the order the run returned them in. Replace with the typed properties after the merge.
/// </summary>
internal static class QbmSignature
{
    public static IReadOnlyList<string> InputNames(QbmModel model) => Names(model, "InputNames", "Inputs") ?? [];

    public static IReadOnlyList<string> OutputNames(QbmModel model, IReadOnlyDictionary<string, Tensor> outputs) =>
        Names(model, "OutputNames", "Outputs") ?? outputs.Keys.ToList();

    private static IReadOnlyList<string>? Names(QbmModel model, string names, string items)
    {
        var type = model.GetType();
        if (type.GetProperty(names)?.GetValue(model) is IEnumerable<string> direct) return direct.ToList();
        if (type.GetProperty(items)?.GetValue(model) is System.Collections.IEnumerable list)
            return list.Cast<object>().Select(i => i.GetType().GetProperty("Name")?.GetValue(i) as string ?? "").ToList();
        return null;
    }
}
