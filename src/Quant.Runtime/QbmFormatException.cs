namespace Quant.Runtime;

/// <summary>
/// What is wrong with a .qbm. The numbers are the toolchain's QB71xx codes (src/Quant.Core/Diagnostics/ErrorCode.cs
/// holds the same numbers under the same names with a <c>Qbm</c> prefix; a test keeps the two in sync, because the
/// runtime cannot reference Quant.Core).
/// </summary>
public enum QbmError
{
    NotAQbm = 7101,
    UnsupportedVersion = 7102,
    Truncated = 7103,
    HashMismatch = 7104,
    BadSectionTable = 7105,
    SectionOverrun = 7106,
    BadString = 7107,
    BadValue = 7108,
    BadValueReference = 7109,
    BadConstant = 7110,
    BadAttribute = 7111,
    BadIo = 7112,
    BadMemoryPlan = 7113,
    MemoryPlanOverlap = 7114,
    BadCost = 7115,
    Unrunnable = 7116,
    Unreadable = 7117,
    BadPackedWeights = 7120,
}

/// <summary>
/// A .qbm that cannot be loaded: the message names the file, the section and byte offset (or the op/value) and
/// what is wrong. Loading throws nothing else for a bad file.
/// </summary>
public sealed class QbmFormatException : Exception
{
    public QbmFormatException(QbmError error, string file, string message, Exception? inner = null)
        : base($"{file}: {message}", inner)
    {
        Error = error;
        File = file;
    }

    public QbmError Error { get; }
    /// <summary>The QB71xx number (<c>QB7104</c> is 7104).</summary>
    public int Code => (int)Error;
    public string CodeText => "QB" + Code.ToString(System.Globalization.CultureInfo.InvariantCulture);
    public string File { get; }
}
