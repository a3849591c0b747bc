using Quant.Engine;
using Quant.Onnx;

namespace Quant.Check;

/// <summary>How the CLI turns failures into one clear line and an exit code, never a stack trace.</summary>
internal static class CliErrors
{
    public const int Failure = 1;

    public static bool IsUserError(Exception e) =>
        e is OnnxFormatException or EngineException or NpyFormatException or CliUsageException
            or IOException or UnauthorizedAccessException;

    public static int Report(Exception e)
    {
        Console.Error.WriteLine($"quant-check: error: {e.Message}");
        return Failure;
    }
}

/// <summary>Arguments that parse but do not make sense together (e.g. an input that the model lacks).</summary>
internal sealed class CliUsageException(string message) : Exception(message);
