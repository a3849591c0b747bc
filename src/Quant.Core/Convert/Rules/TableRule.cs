namespace Quant.Core.Conversion;

/// <summary>
/// The unary nonlinear ops the target runs with integers (spec §9): one full lookup table per output format, built by
/// <see cref="LookupTables"/> from the qat node itself (DQ → the engine's float kernel → Q at every input integer),
/// so the table equals the engine's qat run exactly.
/// </summary>
public sealed class TableRule : IIntegerRule
{
    public IReadOnlyList<string> OpTypes { get; } = ["Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Exp", "Sqrt", "LeakyRelu"];

    public string? Lower(LoweringRequest r)
    {
        if (RuleParts.CheckInputs(r) is { } reason) return reason;
        var x = RuleParts.In(r, 0);
        for (int k = 0; k < r.Outputs.Count; k++)
        {
            var y = r.Outputs[k];
            var table = LookupTables.Build(r.Node, RuleParts.Params(x.Format), RuleParts.Params(y.Format));
            var hint = RuleParts.Hint(r.Node, k, r.Outputs.Count);
            var data = table.Entries is sbyte[] b
                ? Quant.Onnx.TensorData.From(hint + "_table", Quant.Onnx.ElementType.Int8, [b.Length], b.AsSpan())
                : Quant.Onnx.TensorData.From(hint + "_table", Quant.Onnx.ElementType.Int16, [table.Entries.Length], ((short[])table.Entries).AsSpan());
            RuleParts.Add(r.Emit, hint, "QTable", LoweringEmitter.Domain, [x.Tensor, r.Emit.AddInitializer(hint + "_table", data)], [y.Tensor]);
        }
        return null;
    }
}
