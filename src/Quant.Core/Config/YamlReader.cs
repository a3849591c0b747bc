using System.Globalization;
using Quant.Core.Diagnostics;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace Quant.Core.Config;

/// <summary>
/// Typed reads from YAML representation nodes that turn every mismatch into a positioned
/// <see cref="QuantException"/>. Paths (<c>model_config.activation.num_bin</c>) name the entry in messages
/// because the same key (e.g. <c>per_channel</c>) appears in several sections.
/// </summary>
internal sealed class YamlReader(string file)
{
    public string File { get; } = file;

    public SourcePosition At(YamlNode node) => new(File, (int)node.Start.Line, (int)node.Start.Column);

    public QuantException Error(ErrorCode code, YamlNode node, string message) => new(code, At(node), message);

    /// <summary>Nesting deeper than any config needs; deeper input is refused before the recursive node builder overflows the stack.</summary>
    public const int MaxDepth = 64;

    /// <summary>
    /// Parses YAML (or JSON) text into documents. Every parser failure becomes one positioned QB1001: a
    /// <see cref="YamlException"/> at its own mark; one without a mark (tab indentation) or anything else the
    /// library throws (InvalidOperationException out of some unclosed flow collections) at the scanner's position.
    /// </summary>
    public YamlStream Load(string text)
    {
        var scanner = new Scanner(new StringReader(text));
        var stream = new YamlStream();
        var guard = new DepthGuard(new Parser(scanner), this);
        try { stream.Load(guard); }
        catch (QuantException) { throw; }
        catch (AnchorNotFoundException e) when (guard.UndefinedAlias is { } alias)
        {
            throw new QuantException(ErrorCode.ConfigSyntax, Position(alias), $"the file is not valid YAML/JSON: {StripMark(e.Message)}", e);
        }
        catch (YamlException e) when (!(e.Start.Index == 0 && e.End.Index == 0))
        {
            throw new QuantException(ErrorCode.ConfigSyntax, Position(e.Start), $"the file is not valid YAML/JSON: {StripMark(e.Message)}", e);
        }
        catch (Exception e) when (e is YamlException or InvalidOperationException or ArgumentException or FormatException or OverflowException or NotSupportedException)
        {
            var hint = e is YamlException ? "" : " (check that every '{', '[' and quote is closed)";
            throw new QuantException(ErrorCode.ConfigSyntax, Position(scanner.CurrentPosition), $"the file is not valid YAML/JSON: {StripMark(e.Message)}{hint}", e);
        }
        return stream;
    }

    private SourcePosition Position(Mark m) => new(File, (int)Math.Min(m.Line, int.MaxValue), (int)Math.Min(m.Column, int.MaxValue));

    /// <summary>YamlDotNet repeats the position in its messages ("(Line: 2, Col: 14, Idx: 27) - (...): ..."); the diagnostic already has it.</summary>
    internal static string StripMark(string message)
    {
        int i = message.IndexOf("): ", StringComparison.Ordinal);
        return message.StartsWith("(Line:", StringComparison.Ordinal) && i >= 0 ? message[(i + 3)..] : message;
    }

    /// <summary>
    /// Passes the parser's events through, refusing nesting beyond <see cref="MaxDepth"/>, and remembers where
    /// aliases are (the library reports an undefined one at the end of the document, without a position).
    /// </summary>
    private sealed class DepthGuard(IParser inner, YamlReader reader) : IParser
    {
        private int _depth;
        private readonly HashSet<string> _anchors = new(StringComparer.Ordinal);

        /// <summary>The first alias whose anchor was not defined before it.</summary>
        public Mark? UndefinedAlias { get; private set; }

        public ParsingEvent? Current => inner.Current;

        public bool MoveNext()
        {
            if (!inner.MoveNext()) return false;
            var e = inner.Current!;
            if (e is NodeEvent { Anchor.IsEmpty: false } n) _anchors.Add(n.Anchor.Value);
            if (e is AnchorAlias a && UndefinedAlias is null && !_anchors.Contains(a.Value.Value)) UndefinedAlias = a.Start;
            if (e is MappingStart or SequenceStart && ++_depth > MaxDepth)
                throw new QuantException(ErrorCode.ConfigSyntax, reader.Position(e.Start),
                    $"the file nests mappings and lists more than {MaxDepth} levels deep; a config needs a handful");
            if (e is MappingEnd or SequenceEnd) _depth--;
            return true;
        }
    }

    /// <summary>A plain empty scalar, <c>~</c> or <c>null</c>: YAML's null.</summary>
    public static bool IsNull(YamlNode node) =>
        node is YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.Plain or YamlDotNet.Core.ScalarStyle.Any } s
        && (s.Value is null or "" or "~" or "null" or "Null" or "NULL");

    public static string Describe(YamlNode node) => node switch
    {
        YamlMappingNode => "a mapping",
        YamlSequenceNode => "a list",
        _ when IsNull(node) => "nothing",
        YamlScalarNode s => $"'{s.Value}'",
        _ => "an unsupported node",
    };

    /// <summary>A mapping (null reads as an empty mapping, as for a section with every entry commented out).</summary>
    public YamlMappingNode Mapping(YamlNode node, string path)
    {
        if (node is YamlMappingNode m) return m;
        if (IsNull(node)) return new YamlMappingNode();
        throw Error(ErrorCode.ConfigWrongType, node, $"{path}: expected a mapping, got {Describe(node)}");
    }

    /// <summary>The entries of a mapping with their key names; rejects keys not in <paramref name="allowed"/>.</summary>
    public IEnumerable<(string Key, YamlScalarNode KeyNode, YamlNode Value)> Entries(YamlMappingNode map, string path, IReadOnlyList<string>? allowed,
        IReadOnlyDictionary<string, string>? unsupported = null)
    {
        var list = new List<(string, YamlScalarNode, YamlNode)>();
        foreach (var (k, v) in map.Children)
        {
            if (k is not YamlScalarNode ks || ks.Value is null)
                throw Error(ErrorCode.ConfigWrongType, k, $"{path}: keys must be names, got {Describe(k)}");
            var key = ks.Value;
            if (allowed is not null && !allowed.Contains(key, StringComparer.Ordinal))
            {
                if (unsupported is not null && unsupported.TryGetValue(key, out var why))
                    throw Error(ErrorCode.ConfigUnknownKey, ks,
                        $"'{key}' {Where(path)} is not supported by Quant.Build: {why}. Allowed keys: {string.Join(", ", allowed)}");
                throw UnknownKey(ks, path, string.Join(", ", allowed), allowed);
            }
            list.Add((key, ks, v));
        }
        return list;
    }

    private static string Where(string path) => path.Length == 0 ? "at the top level" : $"in {path}";

    /// <summary>QB1002 naming the key, the allowed keys and the nearest of <paramref name="candidates"/>.</summary>
    public QuantException UnknownKey(YamlScalarNode key, string path, string allowedText, IEnumerable<string> candidates)
    {
        var near = Nearest(key.Value!, candidates);
        return Error(ErrorCode.ConfigUnknownKey, key, $"unknown key '{key.Value}' {Where(path)}" +
            (near is null ? "." : $"; did you mean '{near}'?") + $" Allowed keys: {allowedText}");
    }

    public YamlScalarNode Scalar(YamlNode node, string path, string expected)
    {
        if (node is YamlScalarNode s && !IsNull(node)) return s;
        throw Error(ErrorCode.ConfigWrongType, node, $"{path}: expected {expected}, got {Describe(node)}");
    }

    public string String(YamlNode node, string path)
    {
        var s = Scalar(node, path, "a name");
        if (s.Value!.Length == 0) throw Error(ErrorCode.ConfigInvalidValue, node, $"{path}: expected a name, got an empty string");
        return s.Value;
    }

    public double Number(YamlNode node, string path)
    {
        var s = Scalar(node, path, "a number");
        if (TryNumber(s.Value!, out var v)) return v;
        throw Error(ErrorCode.ConfigWrongType, node, $"{path}: expected a number, got '{s.Value}'");
    }

    /// <summary>A finite number that fits a float.</summary>
    public float Float(YamlNode node, string path)
    {
        var v = Number(node, path);
        if (!double.IsFinite(v) || Math.Abs(v) > float.MaxValue)
            throw Error(ErrorCode.ConfigInvalidValue, node, $"{path}: {((YamlScalarNode)node).Value} is not a finite float32 number");
        return (float)v;
    }

    public int Integer(YamlNode node, string path)
    {
        var s = Scalar(node, path, "an integer");
        if (int.TryParse(s.Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v)) return v;
        if (TryNumber(s.Value!, out var d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue) return (int)d;
        throw Error(ErrorCode.ConfigWrongType, node, $"{path}: expected an integer, got '{s.Value}'");
    }

    /// <summary>YAML 1.2 core booleans only: <c>yes</c>/<c>on</c> are too easy to write by accident.</summary>
    public bool Bool(YamlNode node, string path)
    {
        var s = Scalar(node, path, "true or false");
        return s.Value switch
        {
            "true" or "True" or "TRUE" => true,
            "false" or "False" or "FALSE" => false,
            _ => throw Error(ErrorCode.ConfigWrongType, node, $"{path}: expected true or false, got '{s.Value}'"),
        };
    }

    /// <summary>One of a fixed set of names; a near miss is suggested.</summary>
    public T Choice<T>(YamlNode node, string path, IReadOnlyList<(string Name, T Value)> choices)
    {
        var names = choices.Select(c => c.Name).ToArray();
        var s = Scalar(node, path, $"one of {string.Join(", ", names)}");
        foreach (var (name, value) in choices)
            if (string.Equals(name, s.Value, StringComparison.Ordinal)) return value;
        var near = Nearest(s.Value!, names);
        throw Error(ErrorCode.ConfigInvalidValue, node,
            $"{path}: '{s.Value}' is not one of {string.Join(", ", names)}" + (near is null ? "" : $"; did you mean '{near}'?"));
    }

    /// <summary>A scalar or a list of scalars (HMCT's candidate lists), each read by <paramref name="read"/>.</summary>
    public List<T> OneOrMany<T>(YamlNode node, string path, Func<YamlNode, string, T> read)
    {
        if (node is YamlSequenceNode seq)
        {
            if (seq.Children.Count == 0) throw Error(ErrorCode.ConfigInvalidValue, node, $"{path}: the list is empty; give at least one value");
            return seq.Children.Select((c, i) => read(c, $"{path}[{i}]")).ToList();
        }
        return [read(node, path)];
    }

    public YamlSequenceNode Sequence(YamlNode node, string path)
    {
        if (node is YamlSequenceNode seq) return seq;
        throw Error(ErrorCode.ConfigWrongType, node, $"{path}: expected a list, got {Describe(node)}");
    }

    private static bool TryNumber(string text, out double v)
    {
        switch (text)
        {
            case ".inf" or ".Inf" or ".INF" or "+.inf": v = double.PositiveInfinity; return true;
            case "-.inf" or "-.Inf" or "-.INF": v = double.NegativeInfinity; return true;
            case ".nan" or ".NaN" or ".NAN": v = double.NaN; return true;
        }
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out v);
    }

    /// <summary>The allowed name closest to a typo (edit distance at most a third of its length, at least 2), or null.</summary>
    public static string? Nearest(string typo, IEnumerable<string> allowed)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (var a in allowed)
        {
            int d = Distance(typo.ToLowerInvariant(), a.ToLowerInvariant());
            if (d < bestDistance) { best = a; bestDistance = d; }
        }
        return best is not null && bestDistance <= Math.Max(2, typo.Length / 3) ? best : null;
    }

    /// <summary>Levenshtein distance where a swap of neighbours counts as one edit (the commonest typo).</summary>
    internal static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        return d[a.Length, b.Length];
    }
}
