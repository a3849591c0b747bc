using Quant.Core.Conversion;
using Quant.Core.Stages;
using Quant.Core.Tests.Stages;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Convert;

/// <summary>
/// Table chains (docs/quantized-model.md): convert folds every chain of integer elementwise nodes of one int8 tensor
/// into QTable nodes. On the real PaddleOCR models (whose scale-and-shift and decomposed hard-swish are such chains),
/// the folded model must give the same bits as the unfolded one on real inputs: every graph output and every tensor
/// both graphs still hold.
/// </summary>
public class TableChainTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly string[] Elementwise = ["QAdd", "QSub", "QMul", "QDiv", "QRequantize"];

    [Theory]
    [InlineData("rec")]
    [InlineData("det")]
    public void Folded_chains_give_the_same_bits_as_the_unfolded_chain_on_real_inputs(string which)
    {
        var (model, glob, preprocessing, inputs) = which == "rec"
            ? (TestAssets.RecModel, ExportConfigs.RecData, ExportConfigs.RecPreprocessing, OcrSamples.RecFiles.Take(2).Select(OcrSamples.Rec).ToList())
            : (TestAssets.DetModel, ExportConfigs.DetData, ExportConfigs.DetPreprocessing, [OcrSamples.Det(OcrSamples.DetFiles[1], 320, 320)]);
        var dir = TestAssets.TempDir("table-chains");
        var cfg = ExportConfigs.Write(dir, ExportConfigs.Yaml(glob, "performance", "max", preprocessing));
        var export = ExportStage.Run(new ExportRequest { ModelPath = model, ConfigPath = cfg, OutputDirectory = dir, Name = which, SelectionSamples = 2 });

        var (folded, report) = Converter.Convert(OnnxModelReader.Load(export.QatModelPath), export.QatModelPath);
        var (plain, _) = Converter.Convert(OnnxModelReader.Load(export.QatModelPath), export.QatModelPath, foldTables: false);
        int Count(OnnxModel m, params string[] ops) => m.Graph.Nodes.Count(n => ops.Contains(n.OpType));
        output.WriteLine($"{which}: elementwise integer nodes {Count(plain, Elementwise)} → {Count(folded, Elementwise)}, QTable {Count(plain, "QTable")} → {Count(folded, "QTable")}, nodes {plain.Graph.Nodes.Count} → {folded.Graph.Nodes.Count}");
        // Graph preparation folds PP-LCNetV3's per-conv scale and shift into the convolutions and the HardSwish behind
        // them runs fused in the QConv; what is left elementwise (SE gates' scale and shift, residual tails) still folds.
        Assert.True(Count(folded, Elementwise) < Count(plain, Elementwise), "elementwise integer nodes fold into tables");
        Assert.True(Count(folded, "QTable") > Count(plain, "QTable"));
        Assert.Contains(report, n => n.FoldedInto is not null);
        // Every folded table is a function of one int8 tensor with 256 entries.
        foreach (var t in folded.Graph.Nodes.Where(n => n.OpType == "QTable"))
            Assert.Equal(256, folded.Graph.Initializers[t.Inputs[1]].ElementCount);

        var a = new InferenceSession(folded);
        var b = new InferenceSession(plain);
        long compared = 0;
        foreach (var x in inputs)
        {
            var feeds = new Dictionary<string, Tensor> { ["x"] = x };
            var keptA = new ValueCache();
            var keptB = new ValueCache();
            a.Run(feeds, new RunOptions { KeepValues = keptA });
            b.Run(feeds, new RunOptions { KeepValues = keptB });
            foreach (var name in keptA.Names)
            {
                if (!keptB.TryGet(name, out var expected)) continue;
                var actual = keptA[name];
                Assert.Equal(expected.Shape, actual.Shape);
                Assert.True(expected.Bytes().SequenceEqual(actual.Bytes()), $"{which}: '{name}' differs between the folded and the unfolded model");
                compared++;
            }
            foreach (var o in folded.Graph.Outputs) Assert.True(keptA.TryGet(o.Name, out _) && keptB.TryGet(o.Name, out _), $"output {o.Name} kept");
        }
        output.WriteLine($"{compared} tensors compared bit for bit");
        Assert.True(compared > 50);
    }
}
