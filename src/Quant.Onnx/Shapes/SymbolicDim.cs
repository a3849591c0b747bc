using System.Globalization;
using System.Text;

namespace Quant.Onnx.Shapes;

/// <summary>
/// Integer polynomial over atoms, where an atom is a named symbol or <c>floor(e/k)</c> of another
/// polynomial. Canonical: equal expressions built in different ways print the same way, so a derived
/// symbol can travel as the plain string in <see cref="Dim.Symbol"/> and still compare by equality.
/// Printed grammar (parsed back by <see cref="SymbolicDim.Parse"/>):
/// <c>expr = term (("+"|"-") term)*; term = factor ("*" factor)*; factor = int | name | [name] | (expr) | floor(expr/int)</c>.
/// </summary>
internal sealed class SymExpr : IEquatable<SymExpr>
{
    /// <summary>Monomial key (atoms' texts joined by '*', sorted) to (coefficient, atoms). The constant has key "".</summary>
    private readonly SortedDictionary<string, (long Coef, Atom[] Atoms)> terms;
    private string? text;

    private SymExpr(SortedDictionary<string, (long, Atom[])> terms) { this.terms = terms; }

    public static SymExpr Const(long c)
    {
        var t = new SortedDictionary<string, (long, Atom[])>(StringComparer.Ordinal);
        if (c != 0) t[""] = (c, []);
        return new SymExpr(t);
    }

    public static SymExpr Symbol(string name) => FromAtom(new Atom(name, null, 0));

    private static SymExpr FromAtom(Atom a)
    {
        var t = new SortedDictionary<string, (long, Atom[])>(StringComparer.Ordinal) { [a.Text] = (1, [a]) };
        return new SymExpr(t);
    }

    public bool IsConstant => terms.Count == 0 || (terms.Count == 1 && terms.ContainsKey(""));
    public long ConstantTerm => terms.TryGetValue("", out var c) ? c.Coef : 0;

    public static SymExpr operator +(SymExpr a, SymExpr b)
    {
        var t = new SortedDictionary<string, (long, Atom[])>(a.terms, StringComparer.Ordinal);
        foreach (var (k, (c, atoms)) in b.terms) AddTerm(t, k, c, atoms);
        return new SymExpr(t);
    }

    public static SymExpr operator -(SymExpr a, SymExpr b) => a + b * -1;

    public static SymExpr operator *(SymExpr a, long k)
    {
        var t = new SortedDictionary<string, (long, Atom[])>(StringComparer.Ordinal);
        if (k != 0) foreach (var (key, (c, atoms)) in a.terms) t[key] = (checked(c * k), atoms);
        return new SymExpr(t);
    }

    public static SymExpr operator *(SymExpr a, SymExpr b)
    {
        var t = new SortedDictionary<string, (long, Atom[])>(StringComparer.Ordinal);
        foreach (var (_, (ca, aa)) in a.terms)
            foreach (var (_, (cb, ab)) in b.terms)
            {
                var atoms = aa.Concat(ab).OrderBy(x => x.Text, StringComparer.Ordinal).ToArray();
                AddTerm(t, string.Join("*", atoms.Select(x => x.Text)), checked(ca * cb), atoms);
            }
        return new SymExpr(t);
    }

    private static void AddTerm(SortedDictionary<string, (long Coef, Atom[] Atoms)> t, string key, long c, Atom[] atoms)
    {
        long sum = t.TryGetValue(key, out var old) ? checked(old.Coef + c) : c;
        if (sum == 0) t.Remove(key);
        else t[key] = (sum, atoms);
    }

    /// <summary>floor(this / k) for k &gt; 0, simplified: multiples of k leave the floor, nested floors merge.</summary>
    public SymExpr FloorDiv(long k)
    {
        if (k <= 0) throw new ArgumentOutOfRangeException(nameof(k));
        if (k == 1) return this;
        // floor((k*q*X + r*X + c)/k) = q*X + floor(c/k) + floor((r*X + c mod k)/k) for integer-valued X.
        var outside = Const(0);
        var inside = new SortedDictionary<string, (long, Atom[])>(StringComparer.Ordinal);
        foreach (var (key, (c, atoms)) in terms)
        {
            long q = Math.DivRem(c, k, out long r);
            if (r < 0) { r += k; q--; }
            if (q != 0) outside += new SymExpr(new(StringComparer.Ordinal) { [key] = (q, atoms) });
            if (r != 0) inside[key] = (r, atoms);
        }
        var rest = new SymExpr(inside);
        if (rest.IsConstant) return outside; // 0 <= remainder constant < k
        // floor((floor(e/a) + b)/k) = floor((e + a*b)/(a*k)) for integer e, a, k > 0.
        if (inside.Count <= 2)
        {
            var floors = inside.Where(kv => kv.Key.Length > 0).ToList();
            if (floors.Count == 1 && floors[0].Value.Item1 == 1 && floors[0].Value.Item2 is [{ Inner: { } e } atom])
            {
                long b = rest.ConstantTerm;
                return outside + (e + Const(checked(atom.Divisor * b))).FloorDiv(checked(atom.Divisor * k));
            }
        }
        return outside + FromAtom(new Atom(null, rest, k));
    }

    /// <summary>this / d when every term divides exactly by the monomial d; null otherwise.</summary>
    public SymExpr? ExactDiv(SymExpr d)
    {
        if (d.terms.Count != 1) return d.Equals(this) ? Const(1) : null;
        var (dk, (dc, datoms)) = d.terms.First();
        var t = new SortedDictionary<string, (long, Atom[])>(StringComparer.Ordinal);
        foreach (var (_, (c, atoms)) in terms)
        {
            if (c % dc != 0) return null;
            var left = atoms.ToList();
            foreach (var a in datoms)
            {
                int i = left.FindIndex(x => x.Text == a.Text);
                if (i < 0) return null;
                left.RemoveAt(i);
            }
            AddTerm(t, string.Join("*", left.Select(x => x.Text)), c / dc, [.. left]);
        }
        _ = dk;
        return new SymExpr(t);
    }

    public long? Evaluate(IReadOnlyDictionary<string, long> bindings)
    {
        long sum = 0;
        try
        {
            foreach (var (_, (c, atoms)) in terms)
            {
                long p = c;
                foreach (var a in atoms)
                {
                    long? v = a.Evaluate(bindings);
                    if (v is null) return null;
                    p = checked(p * v.Value);
                }
                sum = checked(sum + p);
            }
        }
        catch (OverflowException) { return null; }
        return sum;
    }

    /// <summary>Names of the symbols this expression depends on.</summary>
    public IEnumerable<string> Symbols() =>
        terms.Values.SelectMany(t => t.Atoms).SelectMany(a => a.Inner is null ? [a.Name!] : a.Inner.Symbols()).Distinct();

    public override string ToString() => text ??= Print();

    private string Print()
    {
        if (terms.Count == 0) return "0";
        var sb = new StringBuilder();
        // Symbolic terms first, constant last, so "H+1" rather than "1+H".
        foreach (var (key, (c, atoms)) in terms.Where(kv => kv.Key.Length > 0).Concat(terms.Where(kv => kv.Key.Length == 0)))
        {
            long mag = Math.Abs(c);
            if (sb.Length == 0) { if (c < 0) sb.Append('-'); }
            else sb.Append(c < 0 ? '-' : '+');
            if (atoms.Length == 0) { sb.Append(mag.ToString(CultureInfo.InvariantCulture)); continue; }
            if (mag != 1) sb.Append(mag.ToString(CultureInfo.InvariantCulture)).Append('*');
            sb.Append(key);
        }
        return sb.ToString();
    }

    public bool Equals(SymExpr? other) => other is not null && ToString() == other.ToString();
    public override bool Equals(object? obj) => Equals(obj as SymExpr);
    public override int GetHashCode() => ToString().GetHashCode(StringComparison.Ordinal);

    private sealed class Atom
    {
        public Atom(string? name, SymExpr? inner, long divisor)
        {
            Name = name;
            Inner = inner;
            Divisor = divisor;
            Text = inner is null ? QuoteName(name!)
                : inner.terms.Count == 1 && !inner.terms.ContainsKey("") && inner.terms.First().Value.Coef == 1 && inner.terms.First().Value.Atoms.Length == 1
                    ? $"floor({inner}/{divisor.ToString(CultureInfo.InvariantCulture)})"
                    : $"floor(({inner})/{divisor.ToString(CultureInfo.InvariantCulture)})";
        }

        public string? Name { get; }
        public SymExpr? Inner { get; }
        public long Divisor { get; }
        public string Text { get; }

        public long? Evaluate(IReadOnlyDictionary<string, long> bindings)
        {
            if (Inner is null) return bindings.TryGetValue(Name!, out var v) ? v : null;
            var e = Inner.Evaluate(bindings);
            return e is null ? null : FloorDivExact(e.Value, Divisor);
        }

        private static long FloorDivExact(long a, long b)
        {
            long q = Math.DivRem(a, b, out long r);
            return r != 0 && (r < 0) != (b < 0) ? q - 1 : q;
        }
    }

    internal static string QuoteName(string name)
    {
        bool plain = name.Length > 0 && !char.IsDigit(name[0]) && name != "floor"
            && name.All(ch => !char.IsWhiteSpace(ch) && "+-*/()[],".IndexOf(ch) < 0);
        return plain ? name : "[" + name + "]";
    }
}

/// <summary>Reading and evaluating the symbolic dims that <see cref="ShapeInference"/> derives (e.g. <c>floor((H+1)/2)</c>).</summary>
public static class SymbolicDim
{
    /// <summary>
    /// The value of <paramref name="dim"/> once its symbols are bound: a known dim is itself; a symbol is
    /// looked up (as a plain name first, then parsed as a derived expression). Null when something is unbound.
    /// </summary>
    public static long? Evaluate(Dim dim, IReadOnlyDictionary<string, long> bindings)
    {
        if (dim.IsKnown) return dim.Value;
        if (dim.Symbol is null) return null;
        if (bindings.TryGetValue(dim.Symbol, out var v)) return v;
        return TryParse(dim.Symbol, out var e) ? e!.Evaluate(bindings) : null;
    }

    /// <summary>The input symbols a dim depends on (a plain symbol depends on itself).</summary>
    public static IReadOnlyList<string> Symbols(Dim dim) =>
        dim.Symbol is null ? [] : TryParse(dim.Symbol, out var e) ? e!.Symbols().ToList() : [dim.Symbol];

    internal static bool TryParse(string s, out SymExpr? e)
    {
        try
        {
            var p = new Parser(s);
            e = p.Expr();
            if (p.Pos != s.Length) { e = null; return false; }
            return true;
        }
        catch (FormatException) { e = null; return false; }
        catch (OverflowException) { e = null; return false; }
    }

    internal static SymExpr Parse(string s) => TryParse(s, out var e) ? e! : throw new FormatException($"'{s}' is not a dimension expression");

    private sealed class Parser(string s)
    {
        public int Pos;

        public SymExpr Expr()
        {
            var e = Term();
            while (Pos < s.Length && (s[Pos] == '+' || s[Pos] == '-'))
            {
                bool minus = s[Pos++] == '-';
                var t = Term();
                e = minus ? e - t : e + t;
            }
            return e;
        }

        private SymExpr Term()
        {
            bool negate = false;
            if (Pos < s.Length && s[Pos] == '-') { negate = true; Pos++; }
            var e = Factor();
            while (Pos < s.Length && s[Pos] == '*') { Pos++; e *= Factor(); }
            return negate ? e * -1 : e;
        }

        private SymExpr Factor()
        {
            if (Pos >= s.Length) throw new FormatException("unexpected end");
            char ch = s[Pos];
            if (char.IsDigit(ch)) return SymExpr.Const(Int());
            if (ch == '(') { Pos++; var e = Expr(); Expect(')'); return e; }
            if (ch == '[')
            {
                int close = s.IndexOf(']', Pos);
                if (close < 0) throw new FormatException("unclosed [");
                var name = s[(Pos + 1)..close];
                Pos = close + 1;
                return SymExpr.Symbol(name);
            }
            if (string.CompareOrdinal(s, Pos, "floor(", 0, 6) == 0)
            {
                Pos += 6;
                var inner = Expr();
                Expect('/');
                long k = Int();
                Expect(')');
                if (k <= 0) throw new FormatException("divisor must be positive");
                return inner.FloorDiv(k);
            }
            int start = Pos;
            while (Pos < s.Length && !char.IsWhiteSpace(s[Pos]) && "+-*/()[],".IndexOf(s[Pos]) < 0) Pos++;
            if (Pos == start) throw new FormatException($"unexpected '{ch}'");
            return SymExpr.Symbol(s[start..Pos]);
        }

        private long Int()
        {
            int start = Pos;
            while (Pos < s.Length && char.IsDigit(s[Pos])) Pos++;
            if (Pos == start) throw new FormatException("number expected");
            return long.Parse(s.AsSpan(start, Pos - start), NumberStyles.None, CultureInfo.InvariantCulture);
        }

        private void Expect(char ch)
        {
            if (Pos >= s.Length || s[Pos] != ch) throw new FormatException($"'{ch}' expected");
            Pos++;
        }
    }
}
