using Quant.Engine.Kernels;
using Quant.Onnx;

namespace Quant.Engine;

/// <summary>
/// Finds chains of float elementwise nodes that can run as one <see cref="FusedElementwiseKernel"/>:
/// PaddleOCR's backbone spends half its non-conv time in Mul/Add/Clip/Div chains (scale-and-shift
/// blocks around decomposed hard-swish) that each make a full pass over a large activation.
/// A chain starts at one runtime float value (its head); every member reads only the head, values
/// made earlier in the chain, and scalar constants. Values read outside the chain (or graph outputs)
/// become the fused step's outputs. The chain is emitted where the first outside reader of one of
/// its values would run, so the step order stays topological.
/// </summary>
internal static class ElementwiseFusion
{
    internal sealed record Member(int Slot, FusedInstruction Instruction);

    /// <summary>A planned step as the fusion sees it.</summary>
    internal readonly record struct StepView(Node Node, int[] Inputs, int[] Outputs);

    /// <summary>
    /// Returns, in order, either an index into <paramref name="steps"/> (an unfused step) or a fused chain
    /// (head slot, member step indices, kernel, output slots).
    /// </summary>
    /// <param name="nameOf">Value names, so that a tile observer can be told which value a piece of a chain's interior is.</param>
    public static List<object> Plan(IReadOnlyList<StepView> steps, Func<int, Tensor?> constantOf, Func<int, bool> isFloatWithRank,
        Func<int, bool> isGraphOutput, Func<int, string>? nameOf = null)
    {
        var readers = new Dictionary<int, List<int>>();
        for (int s = 0; s < steps.Count; s++)
            foreach (var i in steps[s].Inputs)
                if (i >= 0) { if (!readers.TryGetValue(i, out var l)) readers[i] = l = []; l.Add(s); }

        var result = new List<object>();
        Chain? open = null;
        for (int s = 0; s < steps.Count; s++)
        {
            var st = steps[s];
            if (open is not null)
            {
                bool touches = st.Inputs.Any(i => i >= 0 && open.Registers.ContainsKey(i) && i != open.Head);
                if (touches && open.TryAdd(s, st, constantOf)) continue;
                if (touches) Close(ref open, result, steps, readers, isGraphOutput, nameOf);
            }
            if (open is null && Chain.StartsAt(st, constantOf, isFloatWithRank) is { } head)
            {
                var chain = new Chain(head);
                if (chain.TryAdd(s, st, constantOf)) { open = chain; continue; }
            }
            result.Add(s);
        }
        if (open is not null) Close(ref open, result, steps, readers, isGraphOutput, nameOf);
        return result;
    }

    private static void Close(ref Chain? open, List<object> result, IReadOnlyList<StepView> steps, Dictionary<int, List<int>> readers, Func<int, bool> isGraphOutput,
        Func<int, string>? nameOf)
    {
        var chain = open!;
        open = null;
        if (chain.Members.Count < 2)
        {
            // Not worth a fused step: put the single member back where it was.
            InsertInOrder(result, chain.Members[0]);
            return;
        }
        var memberSet = new HashSet<int>(chain.Members);
        var outputs = new List<int>();
        foreach (var m in chain.Members)
            foreach (var o in steps[m].Outputs)
                if (o >= 0 && (isGraphOutput(o) || readers.GetValueOrDefault(o, []).Any(r => !memberSet.Contains(r))))
                    outputs.Add(o);
        if (outputs.Count == 0) outputs.Add(steps[chain.Members[^1]].Outputs[0]);
        // The interior: values written to a register only (not the head, not an output), in the chain's order.
        var interior = nameOf is null ? null : chain.Registers.Where(kv => kv.Value > 0 && !outputs.Contains(kv.Key))
            .OrderBy(kv => kv.Value).Select(kv => (kv.Value, nameOf(kv.Key))).ToArray();
        var kernel = new FusedElementwiseKernel([.. chain.Program], chain.Registers.Count, outputs.Select(o => chain.Registers[o]).ToArray(), interior);
        result.Add(new FusedChain(chain.Head, [.. chain.Members], kernel, [.. outputs]));
    }

    /// <summary>Keeps unfused step indices in plan order when a one-member chain is dissolved.</summary>
    private static void InsertInOrder(List<object> result, int step)
    {
        int at = result.Count;
        while (at > 0 && result[at - 1] is int prev && prev > step) at--;
        result.Insert(at, step);
    }

    internal sealed record FusedChain(int Head, int[] Members, FusedElementwiseKernel Kernel, int[] Outputs);

    private sealed class Chain(int head)
    {
        public int Head { get; } = head;
        public Dictionary<int, int> Registers { get; } = new() { [head] = 0 };
        public List<FusedInstruction> Program { get; } = [];
        public List<int> Members { get; } = [];

        /// <summary>The runtime float value a chain starting at this node would read, if the node can start one.</summary>
        public static int? StartsAt(StepView st, Func<int, Tensor?> constantOf, Func<int, bool> isFloatWithRank)
        {
            var runtime = st.Inputs.Where(i => i >= 0 && constantOf(i) is null).Distinct().ToList();
            return runtime.Count == 1 && isFloatWithRank(runtime[0]) ? runtime[0] : null;
        }

        public bool TryAdd(int index, StepView st, Func<int, Tensor?> constantOf)
        {
            var n = st.Node;
            if (!n.IsDefaultDomain || st.Outputs.Length != 1 || st.Outputs[0] < 0) return false;
            int dst = Registers.Count;
            FusedInstruction? ins = n.OpType switch
            {
                "Add" or "Sub" or "Mul" or "Div" when st.Inputs.Length == 2 => Binary(n.OpType, st, dst, constantOf),
                "Relu" => Unary(FusedOp.Relu, st, dst, 0, 0),
                "LeakyRelu" => Unary(FusedOp.LeakyRelu, st, dst, n.GetFloat("alpha", 0.01f), 0),
                "HardSigmoid" => Unary(FusedOp.HardSigmoid, st, dst, n.GetFloat("alpha", 0.2f), n.GetFloat("beta", 0.5f)),
                "HardSwish" => Unary(FusedOp.HardSwish, st, dst, 0, 0),
                "Clip" => ClipOf(st, dst, constantOf),
                _ => null,
            };
            if (ins is null) return false;
            Registers[st.Outputs[0]] = dst;
            Program.Add(ins.Value);
            Members.Add(index);
            return true;
        }

        private FusedInstruction? Unary(FusedOp op, StepView st, int dst, float p0, float p1) =>
            st.Inputs.Length >= 1 && Registers.TryGetValue(st.Inputs[0], out var a) ? new FusedInstruction(op, dst, a, 0, p0, p1) : null;

        private FusedInstruction? ClipOf(StepView st, int dst, Func<int, Tensor?> constantOf)
        {
            float lo, hi;
            if (st.Node.Has("min") || st.Node.Has("max") || st.Inputs.Length == 1)
            {
                lo = st.Node.GetFloat("min", float.MinValue);
                hi = st.Node.GetFloat("max", float.MaxValue);
            }
            else
            {
                if (!TryBound(st, 1, float.MinValue, constantOf, out lo) || !TryBound(st, 2, float.MaxValue, constantOf, out hi)) return null;
            }
            return Unary(FusedOp.Clip, st, dst, lo, hi);
        }

        private static bool TryBound(StepView st, int input, float absent, Func<int, Tensor?> constantOf, out float value)
        {
            value = absent;
            if (input >= st.Inputs.Length || st.Inputs[input] < 0) return true;
            return TryScalar(constantOf(st.Inputs[input]), rankLimit: int.MaxValue, out value);
        }

        private FusedInstruction? Binary(string op, StepView st, int dst, Func<int, Tensor?> constantOf)
        {
            bool aReg = Registers.TryGetValue(st.Inputs[0], out var ra);
            bool bReg = Registers.TryGetValue(st.Inputs[1], out var rb);
            if (aReg && bReg)
            {
                var kind = op switch { "Add" => FusedOp.Add, "Sub" => FusedOp.Sub, "Mul" => FusedOp.Mul, _ => FusedOp.Div };
                return new FusedInstruction(kind, dst, ra, rb, 0, 0);
            }
            // A one-element constant of rank 0 or 1 keeps the output shape equal to the head's (whose rank is
            // at least 1); a higher-rank one could broadcast the output up, so it is not fused.
            if (aReg && TryScalarOperand(st.Inputs[1], constantOf, out var s))
            {
                var kind = op switch { "Add" => FusedOp.AddScalar, "Sub" => FusedOp.SubScalar, "Mul" => FusedOp.MulScalar, _ => FusedOp.DivScalar };
                return new FusedInstruction(kind, dst, ra, 0, s, 0);
            }
            if (bReg && TryScalarOperand(st.Inputs[0], constantOf, out s))
            {
                // Addition and multiplication of two floats are commutative in IEEE arithmetic, so c+x == x+c bit for bit.
                var kind = op switch { "Add" => FusedOp.AddScalar, "Sub" => FusedOp.ScalarSub, "Mul" => FusedOp.MulScalar, _ => FusedOp.ScalarDiv };
                return new FusedInstruction(kind, dst, rb, 0, s, 0);
            }
            return null;
        }

        private static bool TryScalarOperand(int slot, Func<int, Tensor?> constantOf, out float value) =>
            TryScalar(constantOf(slot), rankLimit: 1, out value);

        private static bool TryScalar(Tensor? t, int rankLimit, out float value)
        {
            value = 0;
            if (t is null || t.Type != ElementType.Float || t.Length != 1 || t.Rank > rankLimit) return false;
            value = t.ReadOnlySpan<float>()[0];
            return true;
        }
    }
}
