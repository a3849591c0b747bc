namespace Quant.Onnx;

/// <summary>One dimension of a tensor shape: a known size, a named symbol (<c>batch</c>), or unknown.</summary>
public readonly record struct Dim
{
    public long Value { get; }
    public string? Symbol { get; }

    private Dim(long value, string? symbol) { Value = value; Symbol = symbol; }

    public static Dim Known(long value) => new(value, null);
    public static Dim Named(string symbol) => new(-1, symbol);
    public static readonly Dim Unknown = new(-1, null);

    public bool IsKnown => Value >= 0;

    public static implicit operator Dim(long value) => Known(value);

    public override string ToString() => IsKnown ? Value.ToString(System.Globalization.CultureInfo.InvariantCulture) : Symbol ?? "?";
}
