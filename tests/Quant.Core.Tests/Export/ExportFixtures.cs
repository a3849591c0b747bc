using Quant.Core.Calibration;
using Quant.Core.Config;
using Quant.Core.Export;
using Quant.Core.Precision;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Tests.Export;

/// <summary>
/// Stand-ins for the stages that run before precision assignment and export (graph preparation, calibration,
/// the weight quantizer), kept minimal: Constant nodes become initializers, BatchNormalization folds into the
/// Conv before it, Conv+Relu/Clip pairs are fused, activation scales are absmax over a sample, weight scales
/// absmax per output channel.
/// </summary>
internal static class ExportFixtures
{
    public static QuantConfig Config(Preset? preset = null) => new() { SourceFile = "q.yaml", Preset = preset };

    public static OnnxModel Prepare(string path)
    {
        var model = OnnxModelReader.Load(path);
        var g = model.Graph;
        foreach (var n in g.Nodes.Where(n => n.OpType == "Constant" && n.Has("value")).ToList())
        {
            var t = n.GetTensor("value")!;
            g.Initializers[n.Outputs[0]] = new TensorData(n.Outputs[0], t.Type, t.Dims, t.Raw, t.Strings);
            g.Nodes.Remove(n);
        }
        FoldBatchNorms(g);
        return model;
    }

    private static void FoldBatchNorms(Graph g)
    {
        var producers = g.Producers();
        var consumers = g.Consumers();
        foreach (var bn in g.Nodes.Where(n => n.OpType == "BatchNormalization").ToList())
        {
            if (!producers.TryGetValue(bn.Inputs[0], out var conv) || conv.OpType != "Conv" || consumers[bn.Inputs[0]].Count != 1) continue;
            var w = g.Initializers[conv.Inputs[1]];
            float eps = bn.GetFloat("epsilon", 1e-5f);
            var scale = g.Initializers[bn.Inputs[1]].As<float>();
            var shift = g.Initializers[bn.Inputs[2]].As<float>();
            var mean = g.Initializers[bn.Inputs[3]].As<float>();
            var variance = g.Initializers[bn.Inputs[4]].As<float>();
            int m = (int)w.Dims[0];
            int per = (int)(w.ElementCount / m);
            var nw = w.As<float>().ToArray();
            var bias = conv.InputOrNull(2) is { } b ? g.Initializers[b].As<float>().ToArray() : new float[m];
            for (int o = 0; o < m; o++)
            {
                float k = scale[o] / MathF.Sqrt(variance[o] + eps);
                for (int i = 0; i < per; i++) nw[o * per + i] *= k;
                bias[o] = (bias[o] - mean[o]) * k + shift[o];
            }
            var wName = conv.Inputs[1] + "_bnfold";
            var bName = conv.Outputs[0] + "_bias_bnfold";
            g.Initializers[wName] = TensorData.FromFloats(wName, w.Dims, nw);
            g.Initializers[bName] = TensorData.FromFloats(bName, [m], bias);
            conv.Inputs[1] = wName;
            if (conv.Inputs.Count > 2) conv.Inputs[2] = bName; else conv.Inputs.Add(bName);
            conv.Outputs[0] = bn.Outputs[0];
            g.Nodes.Remove(bn);
        }
    }

    /// <summary>Conv followed by Relu/Clip that is its only reader.</summary>
    public static List<FusedPair> FusedPairs(OnnxModel model)
    {
        var g = model.Graph;
        var consumers = g.Consumers();
        var outputs = g.Outputs.Select(o => o.Name).ToHashSet();
        var pairs = new List<FusedPair>();
        foreach (var n in g.Nodes.Where(n => n.OpType is "Conv" or "ConvTranspose"))
            if (!outputs.Contains(n.Outputs[0]) && consumers.TryGetValue(n.Outputs[0], out var cs) && cs.Count == 1 && cs[0].OpType is "Relu" or "Clip")
                pairs.Add(new FusedPair(n, cs[0]));
        return pairs;
    }

    private sealed class AbsMaxObserver : IValueObserver
    {
        public readonly Dictionary<string, float> Max = new(StringComparer.Ordinal);

        public Tensor? OnValue(in ObservedValue value)
        {
            if (value.Value.Type != ElementType.Float) return null;
            float m = 0;
            foreach (var v in value.Value.ReadOnlySpan<float>()) m = MathF.Max(m, MathF.Abs(v));
            Max[value.Name] = Max.TryGetValue(value.Name, out var old) ? MathF.Max(old, m) : m;
            return null;
        }
    }

    /// <summary>Symmetric int8 absmax scale per float tensor over <paramref name="samples"/>.</summary>
    public static Dictionary<string, QuantParams> AbsMaxActivations(OnnxModel model, IEnumerable<Tensor> samples)
    {
        var session = new InferenceSession(model);
        var observer = new AbsMaxObserver();
        var input = model.Graph.RuntimeInputs.Single().Name;
        foreach (var s in samples) session.Run(new Dictionary<string, Tensor> { [input] = s }, new RunOptions { Observer = observer });
        return observer.Max.ToDictionary(kv => kv.Key, kv => new QuantParams(QType.Int8, [Scale(kv.Value, 127)], [0], null, "absmax"));
    }

    /// <summary>Symmetric int8 absmax per output channel for every weight input the plan quantizes.</summary>
    public static Dictionary<string, QuantParams> AbsMaxWeights(PrecisionPlan plan)
    {
        var result = new Dictionary<string, QuantParams>(StringComparer.Ordinal);
        foreach (var np in plan.Nodes)
            foreach (var ip in np.Inputs.Where(i => i.Role == InputRole.Weight))
            {
                var w = plan.Model.Graph.Initializers[ip.Tensor];
                int? axis = QdqExporter.WeightAxis(np.Node, ip.Index, w.Dims.Length);
                int channels = axis is { } a ? (int)w.Dims[a] : 1;
                long inner = 1;
                for (int d = (axis ?? -1) + 1; axis is not null && d < w.Dims.Length; d++) inner *= w.Dims[d];
                var max = new float[channels];
                var values = w.As<float>();
                for (int i = 0; i < values.Length; i++)
                {
                    int c = axis is null ? 0 : (int)(i / inner % channels);
                    max[c] = MathF.Max(max[c], MathF.Abs(values[i]));
                }
                result[ip.Tensor] = new QuantParams(QType.Int8, max.Select(m => Scale(m, 127)).ToArray(), new int[channels], axis, "absmax");
            }
        return result;
    }

    private static float Scale(float absMax, int qmax) => absMax > 0 ? absMax / qmax : 1f / qmax;
}
