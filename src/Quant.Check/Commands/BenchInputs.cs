using System.Globalization;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Check.Commands;

/// <summary>
/// The inputs <c>quant-check bench</c> times on: the user's .npy files, or, without them, deterministic values of
/// each input's declared shape (symbolic dimensions given with <c>--shape NAME=1x3x640x640</c>). Latency does not
/// depend on the values for these models, but they are fixed so two runs time the same work.
/// </summary>
internal static class BenchInputs
{
    public static Dictionary<string, Tensor> Prepare(string modelPath, string[] inputSpecs, string[] shapeSpecs)
    {
        var inputs = OnnxModelReader.Load(modelPath).Graph.RuntimeInputs.ToList();
        var names = inputs.Select(i => i.Name).ToList();
        if (inputSpecs.Length > 0)
        {
            if (shapeSpecs.Length > 0) throw new CliUsageException("--shape sets the shape of generated inputs; it cannot be combined with --input files");
            return InferCommand.ReadInputs(names, inputSpecs);
        }
        var shapes = ParseShapes(shapeSpecs, names);
        var feeds = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var input in inputs)
            feeds[input.Name] = Generate(input.Type, ResolveShape(input, shapes.GetValueOrDefault(input.Name)));
        return feeds;
    }

    private static Dictionary<string, int[]> ParseShapes(string[] specs, List<string> names)
    {
        var shapes = new Dictionary<string, int[]>(StringComparer.Ordinal);
        foreach (var spec in specs)
        {
            int eq = spec.IndexOf('=');
            if (eq <= 0) throw new CliUsageException($"--shape '{spec}': write NAME=DIMS, e.g. {names.FirstOrDefault() ?? "x"}=1x3x640x640");
            var name = spec[..eq];
            if (!names.Contains(name)) throw new CliUsageException($"--shape '{spec}': the model has no input '{name}'; its inputs are {string.Join(", ", names)}");
            var dims = spec[(eq + 1)..].Split('x');
            var shape = new int[dims.Length];
            for (int i = 0; i < dims.Length; i++)
                if (!int.TryParse(dims[i], NumberStyles.None, CultureInfo.InvariantCulture, out shape[i]) || shape[i] < 1)
                    throw new CliUsageException($"--shape '{spec}': '{dims[i]}' is not a positive dimension; write the dimensions as 1x3x640x640");
            if (!shapes.TryAdd(name, shape)) throw new CliUsageException($"--shape: '{name}' is given twice");
        }
        return shapes;
    }

    private static int[] ResolveShape(ValueInfo input, int[]? given)
    {
        var declared = input.Shape;
        string Declared() => declared is null ? "of unknown rank" : $"[{string.Join(",", declared)}]";
        if (given is null)
        {
            if (declared is not null && declared.All(d => d.IsKnown)) return declared.Select(d => checked((int)d.Value)).ToArray();
            throw new CliUsageException($"input '{input.Name}' is {Declared()}: give its size with --shape {input.Name}=" +
                (declared is null ? "1x3x224x224" : string.Join("x", declared.Select(d => d.IsKnown ? d.Value.ToString(CultureInfo.InvariantCulture) : "N"))) +
                " or pass a file with --input");
        }
        if (declared is not null)
        {
            bool fits = declared.Length == given.Length && declared.Zip(given).All(p => !p.First.IsKnown || p.First.Value == p.Second);
            if (!fits) throw new CliUsageException($"--shape {input.Name}={string.Join("x", given)} does not fit the model's input '{input.Name}' {Declared()}");
        }
        return given;
    }

    /// <summary>Floats uniform in [0, 1) from a fixed xorshift sequence; integer and bool inputs zero (safe as indices and flags).</summary>
    private static Tensor Generate(ElementType type, int[] shape)
    {
        var t = Tensor.Zeros(type, shape);
        uint state = 2463534242;
        float Next()
        {
            state ^= state << 13; state ^= state >> 17; state ^= state << 5;
            return (state >> 8) / 16777216f;
        }
        switch (type)
        {
            case ElementType.Float:
                var f = t.Span<float>();
                for (int i = 0; i < f.Length; i++) f[i] = Next();
                break;
            case ElementType.Double:
                var d = t.Span<double>();
                for (int i = 0; i < d.Length; i++) d[i] = Next();
                break;
            case ElementType.Float16:
                var h = t.Span<Half>();
                for (int i = 0; i < h.Length; i++) h[i] = (Half)Next();
                break;
        }
        return t;
    }
}
