using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Core.Precision;
using Quant.Core.Tests.Export;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Core.Tests.Precision;

public class PrecisionPlannerTests
{
    private static SourcePosition At(int line, int col) => new("q.yaml", line, col);

    private static (OnnxModel Model, List<FusedPair> Fused) Branchy()
    {
        var m = SmallModels.Branchy();
        var g = m.Graph;
        return (m, [new FusedPair(g.Nodes.Single(n => n.Name == "c1"), g.Nodes.Single(n => n.Name == "r1"))]);
    }

    private static Dictionary<string, QType> Computes(PrecisionPlan plan) =>
        plan.Nodes.Where(n => !n.ShapeOnly).ToDictionary(n => n.Name, n => n.Compute);

    [Fact]
    public void Defaults_are_int8_with_target_fallbacks_and_fused_activations()
    {
        var (m, fused) = Branchy();
        var plan = PrecisionPlanner.Plan(m, ExportFixtures.Config(), fused);
        Assert.Equal(new Dictionary<string, QType>
        {
            ["c1"] = QType.Int8, ["r1"] = QType.Int8, ["c2"] = QType.Int8, ["s1"] = QType.Int8, ["add1"] = QType.Int8,
            ["pow1"] = QType.Float32, ["div1"] = QType.Int8, ["sm"] = QType.Int8,
        }, Computes(plan));

        var c1 = plan.ByName("c1")!;
        Assert.Equal([InputRole.Activation, InputRole.Weight, InputRole.Bias], c1.Inputs.Select(i => i.Role));
        Assert.Equal([QType.Int8, QType.Int8, null], c1.Inputs.Select(i => i.QType));
        var r1 = plan.ByName("r1")!;
        Assert.Same(c1.Node, r1.FusedInto);
        Assert.True(r1.Inputs[0].Fused);
        var div = plan.ByName("div1")!;
        Assert.Equal(InputRole.Weight, div.Inputs[1].Role);
        var pow = plan.ByName("pow1")!;
        Assert.Equal([InputRole.Activation, InputRole.Parameter], pow.Inputs.Select(i => i.Role));
        Assert.Equal(QType.Int8, plan.ByName("sm")!.Outputs[0].QType);

        var entry = Assert.Single(plan.ChangeLog);
        Assert.Equal(new ChangeLogEntry("pow1", "Pow", ChangeSite.Node, 0, "", QType.Int8, QType.Float32,
            "the target has no int8 Pow; falls back to float32"), entry);
        Assert.Empty(plan.Warnings);
    }

    [Fact]
    public void Node_config_beats_subgraph_beats_op_config_beats_preset()
    {
        var (m, fused) = Branchy();
        var config = new QuantConfig
        {
            SourceFile = "q.yaml",
            Preset = Preset.Base,
            OpTypes = { ["Sigmoid"] = new OpTypeConfig { OpType = "Sigmoid", QType = QType.Int16, Position = At(3, 5) } },
            Subgraphs = { ["mid"] = new SubgraphConfig { Name = "mid", Inputs = ["t2"], Outputs = ["t5"], QType = QType.Int16, Position = At(6, 5) } },
            Nodes =
            {
                ["add1"] = new NodeConfig { NodeName = "add1", QType = QType.Float32, Position = At(9, 5) },
                ["c2"] = new NodeConfig { NodeName = "c2", Inputs = { [1] = new InputQType(QType.Int16, false, At(11, 7)) }, Position = At(10, 5) },
                ["div1"] = new NodeConfig { NodeName = "div1", QType = QType.Int8, Position = At(12, 5) },
            },
        };
        var plan = PrecisionPlanner.Plan(m, config, fused);
        Assert.Equal(new Dictionary<string, QType>
        {
            ["c1"] = QType.Int8, ["r1"] = QType.Int8, ["c2"] = QType.Int16, ["s1"] = QType.Int16, ["add1"] = QType.Float32,
            ["pow1"] = QType.Float16, ["div1"] = QType.Int8, ["sm"] = QType.Float16,
        }, Computes(plan));
        Assert.Equal("preset base", plan.ByName("c1")!.Source);
        Assert.Equal("subgraph_config mid", plan.ByName("s1")!.Source);
        Assert.Equal("node_config", plan.ByName("add1")!.Source);
        var c2 = plan.ByName("c2")!;
        Assert.Equal([QType.Int16, QType.Int16], c2.Inputs.Select(i => i.QType));
        Assert.True(c2.Inputs[1].Explicit);

        var entry = Assert.Single(plan.ChangeLog);
        Assert.Equal(("r1", ChangeSite.Node, QType.Float16, QType.Int8), (entry.NodeName, entry.Site, entry.From, entry.To));
        Assert.Contains("fused into 'c1' (Conv)", entry.Reason);
    }

    [Fact]
    public void Int16_on_an_op_without_int16_becomes_float16_and_int16_gemm_keeps_int8_weights()
    {
        var (m, fused) = Branchy();
        var config = new QuantConfig { SourceFile = "q.yaml", Model = new ModelConfig { AllNodeType = QType.Int16 } };
        var plan = PrecisionPlanner.Plan(m, config, fused);
        Assert.Equal(QType.Float16, plan.ByName("div1")!.Compute);
        Assert.Equal([QType.Float16, QType.Float16], plan.ByName("div1")!.Inputs.Select(i => i.QType));
        Assert.Equal([QType.Int16, QType.Int8], plan.ByName("c2")!.Inputs.Select(i => i.QType));
        Assert.True(plan.UsesInt16);
        Assert.Equal(
            """
            # precision change log: 2 automatic change(s)
            node  op   where  from   to       reason
            pow1  Pow  node   int16  float32  the target has no int16 Pow; falls back to float32
            div1  Div  node   int16  float16  the target has no int16 Div; float16 keeps more precision than int8

            """.Replace("\r\n", "\n"), plan.RenderChangeLog());
    }

    [Fact]
    public void Gemm_producing_a_model_output_keeps_a_float_output_unless_model_output_type_says_otherwise()
    {
        var m = SmallModels.Gemms();
        var plan = PrecisionPlanner.Plan(m, ExportFixtures.Config(Preset.Performance));
        var gm = plan.ByName("gm")!;
        Assert.Equal(QType.Int8, gm.Compute);
        Assert.Equal(QType.Float32, gm.Outputs[0].QType);
        Assert.Equal(QType.Int8, plan.ByName("twice")!.Outputs[0].QType);
        var entry = Assert.Single(plan.ChangeLog);
        Assert.Equal(("gm", ChangeSite.Output, "out", QType.Int8, QType.Float32), (entry.NodeName, entry.Site, entry.Tensor, entry.From, entry.To));
        Assert.Contains("high-precision output", entry.Reason);

        var config = new QuantConfig { SourceFile = "q.yaml", Model = new ModelConfig { ModelOutputType = QType.Int16 } };
        plan = PrecisionPlanner.Plan(m, config);
        Assert.Equal(QType.Int16, plan.ByName("gm")!.Outputs[0].QType);
        Assert.Equal(QType.Int16, plan.ByName("twice")!.Compute);
        Assert.Equal(QType.Int8, plan.ByName("mm")!.Compute);
        Assert.Empty(plan.ChangeLog);
    }

    [Fact]
    public void Subgraph_selects_exactly_the_nodes_between_its_inputs_and_outputs()
    {
        var (m, _) = Branchy();
        var sc = new SubgraphConfig { Name = "mid", Inputs = ["t2"], Outputs = ["t5"], QType = QType.Float16, Position = At(2, 3) };
        var nodes = PrecisionPlanner.SubgraphNodes(m.Graph, sc);
        Assert.Equal(["add1", "c2", "s1"], nodes.Select(n => n.Name).Order(StringComparer.Ordinal));

        // Two inputs, one of them the graph input: c1 and r1 join; pow1 still leads nowhere near t7.
        sc = new SubgraphConfig { Name = "wide", Inputs = ["x", "t4"], Outputs = ["t7"], QType = QType.Float16, Position = At(2, 3) };
        nodes = PrecisionPlanner.SubgraphNodes(m.Graph, sc);
        Assert.Equal(["add1", "c1", "c2", "div1", "r1", "s1"], nodes.Select(n => n.Name).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Subgraph_whose_inputs_do_not_reach_its_outputs_is_a_positioned_error()
    {
        var (m, _) = Branchy();
        var config = new QuantConfig
        {
            SourceFile = "q.yaml",
            Subgraphs = { ["bad"] = new SubgraphConfig { Name = "bad", Inputs = ["t4"], Outputs = ["side"], QType = QType.Int16, Position = At(7, 3) } },
        };
        var e = Assert.Throws<QuantException>(() => PrecisionPlanner.Plan(m, config));
        Assert.Equal(ErrorCode.ConfigSubgraphUnreachable, e.Code);
        Assert.Equal("q.yaml(7,3): error QB1007: subgraph_config 'bad': output 'side' is not reachable from its inputs [t4]", e.ToDiagnostic());

        config = new QuantConfig
        {
            SourceFile = "q.yaml",
            Subgraphs = { ["typo"] = new SubgraphConfig { Name = "typo", Inputs = ["t22"], Outputs = ["t5"], QType = QType.Int16, Position = At(8, 3) } },
        };
        e = Assert.Throws<QuantException>(() => PrecisionPlanner.Plan(m, config));
        Assert.Equal("q.yaml(8,3): error QB1007: subgraph_config 'typo': input 't22' is not a tensor of the model; did you mean 't2'?", e.ToDiagnostic());
    }

    [Fact]
    public void Unknown_node_and_input_index_are_positioned_errors_unknown_op_type_a_warning()
    {
        var (m, _) = Branchy();
        var config = new QuantConfig
        {
            SourceFile = "q.yaml",
            Nodes = { ["Add1"] = new NodeConfig { NodeName = "Add1x", QType = QType.Int16, Position = At(4, 3) } },
        };
        var e = Assert.Throws<QuantException>(() => PrecisionPlanner.Plan(m, config));
        Assert.Equal(ErrorCode.ConfigUnknownNode, e.Code);
        Assert.Equal("q.yaml(4,3): error QB1005: node_config names node 'Add1x', which is not in the model; did you mean 'add1'?", e.ToDiagnostic());

        config = new QuantConfig
        {
            SourceFile = "q.yaml",
            Nodes = { ["c2"] = new NodeConfig { NodeName = "c2", Inputs = { [2] = new InputQType(QType.Int16, false, At(5, 7)) }, Position = At(5, 3) } },
        };
        e = Assert.Throws<QuantException>(() => PrecisionPlanner.Plan(m, config));
        Assert.Equal("q.yaml(5,7): error QB1004: node_config 'c2': input2 does not exist; node 'c2' (Conv) has 2 input(s) (input0..input1)", e.ToDiagnostic());

        config = new QuantConfig
        {
            SourceFile = "q.yaml",
            OpTypes = { ["Sigmoide"] = new OpTypeConfig { OpType = "Sigmoide", QType = QType.Int16, Position = At(6, 3) } },
        };
        var plan = PrecisionPlanner.Plan(m, config);
        Assert.Equal(["q.yaml(6,3): warning QB1006: op_config names op type 'Sigmoide', which the model does not contain; the entry has no effect; did you mean 'Sigmoid'?"],
            plan.Warnings);
    }

    // ---- the real rec model ----

    private static readonly Lazy<OnnxModel> Rec = new(() => ExportFixtures.Prepare(TestAssets.RecModel));

    private static PrecisionPlan RecPlan(Preset? preset) =>
        PrecisionPlanner.Plan(Rec.Value, ExportFixtures.Config(preset), ExportFixtures.FusedPairs(Rec.Value));

    private static string Counts(PrecisionPlan plan) =>
        string.Join(" ", plan.CountByQType().Select(kv => $"{PrecisionPlan.QTypeText(kv.Key)}={kv.Value}"));

    [Theory]
    [InlineData(Preset.Performance, "int8=392 int16=0 float16=0 float32=5")]
    [InlineData(Preset.Base, "int8=53 int16=0 float16=344 float32=0")]
    [InlineData(Preset.Precision, "int8=0 int16=53 float16=344 float32=0")]
    [InlineData(Preset.UpperBound, "int8=0 int16=53 float16=344 float32=0")]
    public void Presets_on_the_rec_model(Preset preset, string expected)
    {
        var plan = RecPlan(preset);
        Assert.Equal(expected, Counts(plan));

        var gemm = plan.Nodes.Where(n => TargetRules.GemmOps.Contains(n.OpType)).ToList();
        var fusedActs = plan.Nodes.Where(n => n.FusedInto is not null).ToList();
        var others = plan.Nodes.Where(n => !n.ShapeOnly && !TargetRules.GemmOps.Contains(n.OpType) && n.FusedInto is null).ToList();
        Assert.Equal(51, gemm.Count);
        switch (preset)
        {
            case Preset.Performance:
                Assert.All(gemm, n => Assert.Equal(QType.Int8, n.Compute));
                Assert.All(others, n => Assert.Equal(TargetRules.For(n.OpType).Quantizable ? QType.Int8 : QType.Float32, n.Compute));
                break;
            case Preset.Base:
                Assert.All(gemm, n => Assert.Equal(QType.Int8, n.Compute));
                Assert.All(others, n => Assert.Equal(QType.Float16, n.Compute));
                break;
            case Preset.Precision:
                Assert.All(gemm, n => Assert.Equal(QType.Int16, n.Compute));
                Assert.All(gemm, n => Assert.All(n.Inputs.Where(i => i.Role == InputRole.Weight), i => Assert.Equal(QType.Int8, i.QType)));
                // Both inputs of an activation x activation MatMul (attention) read int16: "dual int16" without weights.
                var attention = gemm.Where(n => n.Inputs.Count(i => i.Role == InputRole.Activation) == 2).ToList();
                Assert.NotEmpty(attention);
                Assert.All(attention, n => Assert.All(n.Inputs, i => Assert.Equal(QType.Int16, i.QType)));
                Assert.All(others, n => Assert.Equal(QType.Float16, n.Compute));
                break;
            case Preset.UpperBound:
                Assert.All(gemm, n => Assert.Equal(QType.Int16, n.Compute));
                Assert.All(gemm, n => Assert.All(n.Inputs.Where(i => i.Role is InputRole.Weight or InputRole.Activation), i => Assert.Equal(QType.Int16, i.QType)));
                Assert.All(others, n => Assert.Equal(QType.Float16, n.Compute));
                break;
        }
        Assert.All(fusedActs, n => Assert.Equal(plan[n.FusedInto!].Compute, n.Compute));
        Assert.Equal(2, fusedActs.Count);
        // The five Pow nodes of the decomposed LayerNorms have no integer kernel: the only fallbacks.
        if (preset is Preset.Performance)
            Assert.Equal(5, plan.ChangeLog.Count(c => c.OpType == "Pow" && c.To == QType.Float32));
        Assert.Equal(plan.ChangeLog.Count(c => c.OpType != "Pow"), plan.ChangeLog.Count(c => c.Reason.StartsWith("fused into", StringComparison.Ordinal)));
        Assert.Equal(plan.RenderChangeLog(), RecPlan(preset).RenderChangeLog());
    }
}
