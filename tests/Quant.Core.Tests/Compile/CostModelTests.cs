using Quant.Core.Compilation;
using Quant.Onnx;
using Quant.Runtime;

namespace Quant.Core.Tests.Compile;

/// <summary>The cost estimate a .qbm carries: per op family, from the committed constants, on the real compiled int8 cls model.</summary>
public class CostModelTests(CompiledModels models) : IClassFixture<CompiledModels>
{
    [Fact]
    public void Each_qconv_is_costed_by_what_its_kernel_does()
    {
        var file = QbmModel.Load(models.Compiled("cls", "quantized").Qbm).File;
        string Family(int i) => file.Cost.Model.Families[file.Cost.Ops[i].Family].Name;
        var convs = file.Ops.Select((op, i) => (op, i)).Where(x => x.op.OpType == "QConv").ToList();
        Assert.NotEmpty(convs);
        foreach (var (op, i) in convs)
        {
            var x = file.Values[op.Inputs[0]];
            var w = file.Values[op.Inputs[1]].Dims;
            long group = op.Attributes.FirstOrDefault(a => a.Name == "group")?.Int ?? 1;
            string kind = group > 1 && group == x.Dims[1] ? "depthwise" : group == 1 && w[2] == 1 && w[3] == 1 ? "pointwise" : "general";
            string type = x.Type == ElementType.Int16 ? "int16" : "int8";
            Assert.Equal($"qconv.{kind}.{type}", Family(i));
        }
        // MobileNet-style cls: depthwise 3x3 followed by pointwise 1x1 convolutions.
        var kinds = convs.Select(c => Family(c.i)).ToHashSet();
        Assert.Contains("qconv.depthwise.int8", kinds);
        Assert.Contains("qconv.pointwise.int8", kinds);
        Assert.All(file.Ops.Select((op, i) => (op, i)).Where(x => x.op.OpType is "QuantizeLinear" or "DequantizeLinear"), x => Assert.Equal("qdq", Family(x.i)));
    }

    [Fact]
    public void The_estimate_is_the_committed_formula_per_op()
    {
        var file = QbmModel.Load(models.Compiled("cls", "quantized").Qbm).File;
        Assert.Equal(CostModel.Families, file.Cost.Model.Families.Select(f => f.Name));
        Assert.Equal(CostModel.Committed.Families, file.Cost.Model.Families);
        for (int i = 0; i < file.Ops.Count; i++)
        {
            var c = file.Cost.Ops[i];
            var f = file.Cost.Model.Families[c.Family];
            Assert.Equal(f.Microseconds + f.MicrosecondsPerMac * c.Macs + f.MicrosecondsPerByte * (c.BytesRead + c.BytesWritten), c.Microseconds);
            Assert.True(c.Microseconds >= 0, $"op {file.Ops[i].Name}: estimate {c.Microseconds} µs");
        }
        Assert.True(file.Cost.TotalMicroseconds > 0);
    }
}
