using Quant.Core.Diagnostics;

namespace Quant.Core.Tests;

/// <summary>The one assertion for "bad input is one QuantException with this code at this place".</summary>
internal static class PositionedError
{
    /// <summary>
    /// <paramref name="action"/> throws a <see cref="QuantException"/> with <paramref name="code"/> at
    /// (<paramref name="line"/>, <paramref name="column"/>) whose message holds every fragment; failures show the diagnostic.
    /// </summary>
    public static QuantException Expect(Action action, ErrorCode code, int line, int column, params string[] fragments)
    {
        var e = Assert.Throws<QuantException>(action);
        Assert.True(code == e.Code, $"code {e.Code} != {code}: {e.ToDiagnostic()}");
        Assert.True((line, column) == (e.Where.Line, e.Where.Column), $"position ({e.Where.Line},{e.Where.Column}) != ({line},{column}): {e.ToDiagnostic()}");
        foreach (var f in fragments) Assert.Contains(f, e.Message);
        return e;
    }
}
