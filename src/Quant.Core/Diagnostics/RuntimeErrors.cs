using Quant.Runtime;

namespace Quant.Core.Diagnostics;

/// <summary>
/// Quant.Runtime reports a broken or mismatched .qbm with its own <see cref="QbmFormatException"/> (carrying a QB71xx
/// code): Quant.Runtime stays free of Quant.Core, so it cannot throw <see cref="QuantException"/>. This turns it into
/// the one positioned diagnostic every other problem is, at the .qbm file.
/// </summary>
public static class RuntimeErrors
{
    /// <summary>The same problem as a <see cref="QuantException"/> at the .qbm (its code and message; the file once, as the position).</summary>
    public static QuantException Translate(QbmFormatException e)
    {
        var prefix = e.File + ": ";
        var message = e.Message.StartsWith(prefix, StringComparison.Ordinal) ? e.Message[prefix.Length..] : e.Message;
        return new QuantException((ErrorCode)e.Code, SourcePosition.InFile(e.File), message, e);
    }
}
