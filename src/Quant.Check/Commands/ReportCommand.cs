using System.CommandLine;
using Quant.Core.Reports.Html;

namespace Quant.Check.Commands;

/// <summary>
/// <c>quant-check report --dir DIR --name NAME</c>: one self-contained HTML page from the files export, check,
/// compare, sensitivity and tune left in DIR under NAME (docs/report.md). Reads only; runs no model.
/// </summary>
internal static class ReportCommand
{
    public static Command Create()
    {
        var dir = new Option<DirectoryInfo>("--dir", "-d") { Description = "The folder holding NAME.model_check.json (export's --out; a build's obj/.../quant/NAME/)", Required = true };
        var name = new Option<string>("--name", "-n") { Description = "The artifact base name (export's --name; default there: the model file name)", Required = true };
        var outFile = new Option<FileInfo?>("--out", "-o") { Description = "The page to write (default: DIR/NAME.report.html)" };
        var cmd = new Command("report", "Write NAME.report.html: precision map, per-layer similarity, sensitivity, calibration histograms with clipping ranges, " +
                                        "the tuning Pareto chart and the checks, from the JSON files the other commands wrote; one offline file")
            { dir, name, outFile };
        cmd.SetAction(parse =>
        {
            var folder = parse.GetValue(dir)!.FullName;
            var n = parse.GetValue(name)!;
            var path = parse.GetValue(outFile)?.FullName ?? Path.Combine(folder, n + ".report.html");
            return CliErrors.Guard(() =>
            {
                using var held = Quant.Core.Diagnostics.ModelLock.Acquire(folder, n, CliLock.Announce);
                var inputs = ReportInputs.Load(folder, n);
                var html = ReportPage.Write(inputs, path);
                Console.WriteLine($"{n}: report with {string.Join(", ", Present(inputs))}");
                Console.WriteLine($"report:   {path} ({System.Text.Encoding.UTF8.GetByteCount(html) / 1024.0:F0} KiB)");
                return 0;
            });
        });
        return cmd;
    }

    private static IEnumerable<string> Present(ReportInputs r)
    {
        yield return "precision map";
        if (r.Compare is not null) yield return "similarity";
        if (r.Sensitivity is not null) yield return "sensitivity";
        if (r.Calibration is not null) yield return "histograms";
        if (r.Tune is not null) yield return "tuning";
        if (r.Check is not null) yield return "checks";
    }
}
