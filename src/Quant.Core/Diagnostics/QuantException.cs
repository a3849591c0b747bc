using System.Globalization;

namespace Quant.Core.Diagnostics;

/// <summary>Where in a user's file a problem is (1-based line and column; 0 when unknown).</summary>
public readonly record struct SourcePosition(string File, int Line, int Column)
{
    public static SourcePosition InFile(string file) => new(file, 0, 0);

    /// <summary>The canonical MSBuild origin: <c>file(line,col)</c>, or just <c>file</c>.</summary>
    public override string ToString() =>
        Line > 0 ? string.Create(CultureInfo.InvariantCulture, $"{File}({Line},{Column})") : File;
}

/// <summary>
/// A problem in the user's input, reported as one canonical diagnostic line
/// (<c>file(line,col): error QB1002: message</c>) that MSBuild and editors understand.
/// </summary>
public sealed class QuantException(ErrorCode code, SourcePosition where, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public ErrorCode Code { get; } = code;
    public SourcePosition Where { get; } = where;

    public string CodeText => Code.Text();

    public string ToDiagnostic() => $"{Where}: error {CodeText}: {Message}";
}
