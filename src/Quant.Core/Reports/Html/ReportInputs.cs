using Quant.Core.Calibration;
using Quant.Core.Diagnostics;

namespace Quant.Core.Reports.Html;

/// <summary>One node of the precision map (model_check.json <c>layers</c>).</summary>
public sealed record PrecisionRow(string Node, string OpType, string Compute, IReadOnlyList<string> Inputs, string Output,
    string Scales, string Method, string? Source, string? OutputTensor);

/// <summary>One automatic change (model_check.json <c>change_log</c>, the same lines as NAME.qconfig_changelogs.txt).</summary>
public sealed record ChangeRow(string Node, string OpType, string Where, string From, string To, string Reason);

/// <summary>The chosen quantization of one activation tensor (model_check.json <c>activations</c>).</summary>
public sealed record ActivationRange(string Tensor, string QType, double? Scale, double ClipMin, double ClipMax, string Method);

public sealed record ModelCheckData(string Model, string CalibrationMethod, IReadOnlyList<(string QType, int Nodes)> Counts,
    IReadOnlyList<PrecisionRow> Layers, IReadOnlyList<ChangeRow> Changes, IReadOnlyList<ActivationRange>? Activations,
    IReadOnlyList<(string Output, double Min, double Avg, double Max)> OutputCosine);

public sealed record CheckRow(string Kind, string? Rule, string Stage, string? Output, string Metric, string? Over, double Value,
    string Bound, bool Passed, string Message);

public sealed record CheckData(bool Passed, int Total, int Failed, int Samples, IReadOnlyList<CheckRow> Checks);

public sealed record CompareRow(string Tensor, string Node, string OpType, string? QType, double? Cosine, double? Sqnr,
    double? Scale, double? Clipped, IReadOnlyList<string> Flags);

public sealed record CompareData(string Reference, string Actual, int Samples, IReadOnlyList<CompareRow> Tensors,
    string? FirstNonFinite, IReadOnlyList<(string Flag, string Node, string Tensor, string Message)> Findings);

public sealed record SensitivityRow(string Name, string Node, string OpType, string QType, double Value);

public sealed record SensitivityData(string Type, string Mode, int Samples, string Metric, IReadOnlyList<SensitivityRow> Candidates);

public sealed record TunePoint(int Step, double Cost, double? Value, bool Meets, bool Pareto);

public sealed record TuneData(bool Met, string CostModel, string ValueKey, double? TargetMin, double? TargetMax,
    (double Cost, double? Value) Baseline, (double Cost, double? Value, string? Config, int Changes) Best, IReadOnlyList<TunePoint> Visited);

/// <summary>
/// Everything the report shows, read from the files the other commands leave in one folder under one name:
/// NAME.model_check.json (required: export), NAME.check.json, NAME.compare.json, NAME.sensitivity.json,
/// NAME.tune.json and NAME.calibration.qcs (each optional: its section then says how to get it).
/// </summary>
public sealed class ReportInputs
{
    public const string CheckFormat = "quant-build-check/1";
    public const string CompareFormat = "quant-compare/1";
    public const string SensitivityFormat = "quant-sensitivity/1";
    public const string TuneFormat = "quant-tune/1";

    public required string Name { get; init; }
    public required ModelCheckData ModelCheck { get; init; }
    public CheckData? Check { get; init; }
    public CompareData? Compare { get; init; }
    public SensitivityData? Sensitivity { get; init; }
    public TuneData? Tune { get; init; }
    public CalibrationStatistics? Calibration { get; init; }

    public static string FileOf(string dir, string name, string suffix) => Path.Combine(dir, name + suffix);

    public static ReportInputs Load(string dir, string name)
    {
        var modelCheck = FileOf(dir, name, ".model_check.json");
        if (!Directory.Exists(dir))
            throw new QuantException(ErrorCode.ReportModelCheckMissing, SourcePosition.InFile(dir), "the folder does not exist; give --dir the folder quant-check export wrote to");
        if (!File.Exists(modelCheck))
            throw new QuantException(ErrorCode.ReportModelCheckMissing, SourcePosition.InFile(dir),
                $"the folder has no {name}.model_check.json; run quant-check export with --out {Path.GetFileName(Path.TrimEndingDirectorySeparator(dir))} --name {name} first (or give the --name it used)");
        string? Optional(string suffix) => File.Exists(FileOf(dir, name, suffix)) ? FileOf(dir, name, suffix) : null;
        return new ReportInputs
        {
            Name = name,
            ModelCheck = ReadModelCheck(ReportJson.Load(modelCheck, null, "quant-check export")),
            Check = Optional(".check.json") is { } c ? ReadCheck(ReportJson.Load(c, CheckFormat, "quant-check check")) : null,
            Compare = Optional(".compare.json") is { } cm ? ReadCompare(ReportJson.Load(cm, CompareFormat, "quant-check compare")) : null,
            Sensitivity = Optional(".sensitivity.json") is { } s ? ReadSensitivity(ReportJson.Load(s, SensitivityFormat, "quant-check sensitivity")) : null,
            Tune = Optional(".tune.json") is { } t ? ReadTune(ReportJson.Load(t, TuneFormat, "quant-check tune")) : null,
            Calibration = Optional(".calibration.qcs") is { } q ? ReadCalibration(q) : null,
        };
    }

    private static CalibrationStatistics ReadCalibration(string path) =>
        CalibrationStatistics.TryParse(File.ReadAllBytes(path))
        ?? throw new QuantException(ErrorCode.ReportCalibrationUnreadable, SourcePosition.InFile(path),
            "not a calibration statistics file (truncated, bad checksum or another format); delete it and re-run quant-check export, which writes it again");

    private static ModelCheckData ReadModelCheck(ReportJson j) => new(
        j.Str("model"),
        j.Str("calibration_method"),
        j.Members("precision_counts").Select(m => (m.Key, (int)m.Value.AsNumber())).ToList(),
        j.Arr("layers").Select(l => new PrecisionRow(l.Str("node"), l.Str("op_type"), l.Str("compute"), l.Strings("inputs"), l.Str("output"),
            l.Str("scales"), l.Str("method"), l.StrOrNull("source"), l.StrOrNull("output_tensor"))).ToList(),
        j.Arr("change_log").Select(c => new ChangeRow(c.Str("node"), c.Str("op_type"), c.Str("where"), c.Str("from"), c.Str("to"), c.Str("reason"))).ToList(),
        // Written since the HTML report exists; an older export's file has none (the histograms then lack the clipping range).
        j.Has("activations")
            ? j.Arr("activations").Select(a => new ActivationRange(a.Str("tensor"), a.Str("qtype"), a.NumOrNull("scale"), a.Num("clip_min"), a.Num("clip_max"), a.Str("method"))).ToList()
            : null,
        j.Arr("similarity").Select(s =>
        {
            var c = s.Get("cosine");
            return (s.Str("output"), c.Num("min"), c.Num("avg"), c.Num("max"));
        }).ToList());

    private static CheckData ReadCheck(ReportJson j) => new(
        j.Bool("passed"), (int)j.Num("checks_total"), (int)j.Num("checks_failed"), (int)j.Num("samples"),
        j.Arr("checks").Select(c =>
        {
            string bound = c.Has("baseline")
                ? $"baseline {HtmlText.Num(c.Num("baseline"))} \u00b1 {HtmlText.Num(c.NumOrNull("tolerance"))} ({c.StrOrNull("better")} is better)"
                : c.Has("min") ? "\u2265 " + HtmlText.Num(c.Num("min"))
                : c.Has("max") ? "\u2264 " + HtmlText.Num(c.Num("max"))
                : c.StrOrNull("default_bound") ?? "-";
            return new CheckRow(c.Str("kind"), c.StrOrNull("rule"), c.Str("stage"), c.StrOrNull("output"), c.Str("metric"), c.StrOrNull("over"),
                c.Num("value"), bound, c.Bool("passed"), c.Str("message"));
        }).ToList());

    private static CompareData ReadCompare(ReportJson j) => new(
        j.Str("reference"), j.Str("actual"), (int)j.Num("samples"),
        j.Arr("tensors").Select(t => new CompareRow(t.Str("tensor"), t.StrOrNull("node") ?? "(model input)", t.StrOrNull("op_type") ?? "", t.StrOrNull("qtype"),
            t.NumOrNull("cosine"), t.NumOrNull("sqnr"), t.NumOrNull("scale"), t.NumOrNull("clipped"),
            t.Has("flags") ? t.Strings("flags") : [])).ToList(),
        j.Has("first_nonfinite") ? Describe(j.Get("first_nonfinite")) : null,
        j.ArrOrEmpty("findings").Select(f => (f.Str("flag"), f.StrOrNull("node") ?? "(model input)", f.Str("tensor"), f.Str("message"))).ToList());

    private static string Describe(ReportJson f) =>
        $"{f.Str("kind")} first in {f.Str("tensor")} (node {f.StrOrNull("node") ?? "(model input)"}, {f.Str("stage")} model)";

    private static SensitivityData ReadSensitivity(ReportJson j)
    {
        var metrics = j.Strings("metrics");
        if (metrics.Count == 0) throw j.Get("metrics").Error("key 'metrics' is empty");
        string metric = metrics[0];
        return new SensitivityData(j.Str("type"), j.Str("mode"), (int)j.Num("samples"), metric,
            j.Arr("candidates").Select(c => new SensitivityRow(c.Str("name"), c.StrOrNull("node") ?? "", c.StrOrNull("op_type") ?? "", c.StrOrNull("qtype") ?? "",
                c.Get("metrics").Num(metric))).ToList());
    }

    private static TuneData ReadTune(ReportJson j)
    {
        var targets = j.Arr("targets");
        var baseline = j.Get("baseline");
        // The first target's value is the accuracy axis: OUTPUT:metric, or evaluator:metric; a target over every
        // output (output null) is the first values key with that metric.
        string? key = null;
        double? min = null, max = null;
        if (targets.Count > 0)
        {
            var t = targets[0];
            string metric = t.Str("metric");
            min = t.NumOrNull("min");
            max = t.NumOrNull("max");
            var keys = baseline.Members("values").Select(m => m.Key).ToList();
            key = t.StrOrNull("output") is { } o ? $"{o}:{metric}"
                : keys.FirstOrDefault(k => k == "evaluator:" + metric) ?? keys.FirstOrDefault(k => k.EndsWith(":" + metric, StringComparison.Ordinal));
        }
        key ??= baseline.Members("values").Select(m => m.Key).FirstOrDefault() ?? "";
        double? ValueOf(ReportJson point) => point.Members("values").Where(m => m.Key == key).Select(m => (double?)m.Value.AsNumber()).FirstOrDefault();
        var best = j.Get("best");
        return new TuneData(j.Bool("met"), j.Str("cost_model"), key, min, max,
            (baseline.Num("cost"), ValueOf(baseline)),
            (best.Num("cost"), ValueOf(best), best.StrOrNull("config"), best.ArrOrEmpty("changes").Count),
            j.Arr("visited").Select(v => new TunePoint((int)v.Num("step"), v.Num("cost"), ValueOf(v), v.Bool("meets"), v.Bool("pareto"))).ToList());
    }
}
