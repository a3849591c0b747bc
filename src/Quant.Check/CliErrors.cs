using Quant.Core.Diagnostics;
using Quant.Engine;
using Quant.Onnx;
using Quant.Runtime;

namespace Quant.Check;

/// <summary>How the CLI turns failures into one clear line and an exit code, never a stack trace.</summary>
internal static class CliErrors
{
    public const int Failure = 1;

    public static bool IsUserError(Exception e) =>
        e is OnnxFormatException or EngineException or NpyFormatException or CliUsageException or QuantException
            or QbmFormatException or IOException or UnauthorizedAccessException;

    /// <summary>
    /// One line per failure: a positioned MSBuild-style diagnostic (<c>file(line,col): error QB1002: ...</c>)
    /// when we know where, else <c>quant-check: error: ...</c>.
    /// </summary>
    public static int Report(Exception e)
    {
        Console.Error.WriteLine(e switch
        {
            QuantException q => q.ToDiagnostic(),
            QbmFormatException f => RuntimeErrors.Translate(f).ToDiagnostic(),
            _ => $"quant-check: error: {e.Message}",
        });
        return Failure;
    }

    /// <summary>Runs a command body, turning user errors into one line and exit code 1; cancellation into exit 130.</summary>
    public static int Guard(Func<int> body)
    {
        try { return body(); }
        catch (OperationCanceledException) { Console.Error.WriteLine("quant-check: cancelled"); return 130; }
        catch (Exception e) when (IsUserError(e)) { return Report(e); }
    }
}

/// <summary>Arguments that parse but do not make sense together (e.g. an input that the model lacks).</summary>
internal sealed class CliUsageException(string message) : Exception(message);
