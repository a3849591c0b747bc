using System.CommandLine;
using Quant.Check.Commands;

namespace Quant.Check;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("quant-check: run, check and debug ONNX model quantization (Quant.Build)")
        {
            InferCommand.Create(),
            BenchCommand.Create(),
            ExportCommand.Create(),
            ConvertCommand.Create(),
            CompileCommand.Create(),
            CheckCommand.Create(),
            BaselineCommand.Create(),
            CompareCommand.Create(),
            ReportCommand.Create(),
            SensitivityCommand.Create(),
            TuneCommand.Create(),
        };
        try
        {
            return root.Parse(args).Invoke();
        }
        catch (Exception e) when (CliErrors.IsUserError(e))
        {
            return CliErrors.Report(e);
        }
    }
}
