using Quant.Core.Diagnostics;

namespace Quant.Check;

/// <summary>Checks on the files a stage command is given, before the stage runs.</summary>
internal static class CliFiles
{
    public static void RequireInput(string path, string what)
    {
        if (!File.Exists(path))
            throw new QuantException(ErrorCode.ModelUnreadable, SourcePosition.InFile(path), $"the {what} does not exist");
    }

    /// <summary>An output over its own input would destroy the input half-way: refused before anything is written.</summary>
    public static void RequireDistinct(string input, string output)
    {
        if (string.Equals(Path.GetFullPath(input), Path.GetFullPath(output), StringComparison.OrdinalIgnoreCase))
            throw new CliUsageException($"--out '{output}' is the input file itself; give another file name");
    }
}
