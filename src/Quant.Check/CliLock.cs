using Quant.Core.Diagnostics;

namespace Quant.Check;

/// <summary>
/// Runs a command that writes a model's artifacts while holding that model's <see cref="ModelLock"/>, so two builds
/// (or two runs) on one folder take turns. The wait is announced once on stderr; the build task shows that line.
/// </summary>
internal static class CliLock
{
    /// <summary>The line's start, which the MSBuild task recognizes and shows at normal verbosity.</summary>
    public const string WaitingPrefix = "quant-check: waiting for another build";

    public static int Holding(string directory, string name, Func<int> body, CancellationToken cancel = default)
    {
        using var held = ModelLock.Acquire(directory, name, Announce, cancel: cancel);
        return body();
    }

    /// <summary>Tells the user once that the command waits for another one's lock.</summary>
    public static void Announce(string message) => Console.Error.WriteLine("quant-check: " + message);

    /// <summary>The model name of an artifact path: its file name without <paramref name="suffix"/> (else without its extension).</summary>
    public static string NameOf(string artifactPath, string suffix)
    {
        var file = Path.GetFileName(artifactPath);
        return file.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) ? file[..^suffix.Length] : Path.GetFileNameWithoutExtension(file);
    }
}
