namespace Quant.Core.Diagnostics;

/// <summary>
/// Quant.Runtime reports a broken or mismatched .qbm with its own exception (QbmFormatException, carrying a QB71xx
/// code): Quant.Runtime must stay free of Quant.Core, so it cannot throw <see cref="QuantException"/>. This turns
/// such an exception into the one positioned diagnostic every other problem is, at the .qbm file.
/// </summary>
public static class RuntimeErrors
{
    /// <summary>The same problem as a <see cref="QuantException"/> at <paramref name="qbmPath"/>; null when <paramref name="e"/> is not Quant.Runtime's format error.</summary>
    public static QuantException? Translate(Exception e, string qbmPath)
    {
        // ADAPTER (until Quant.Runtime's exception lands in main): recognised by name, its numeric code read from a
        // Code property (an enum or an int). Replace with a typed catch once QbmFormatException exists.
        var type = e.GetType();
        if (type.Namespace != "Quant.Runtime" || type.Name != "QbmFormatException") return null;
        var code = type.GetProperty("Code")?.GetValue(e) is { } c ? Convert.ToInt32(c, System.Globalization.CultureInfo.InvariantCulture) : (int)ErrorCode.ModelUnreadable;
        return new QuantException((ErrorCode)code, SourcePosition.InFile(qbmPath), e.Message, e);
    }
}
