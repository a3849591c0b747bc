using System.Text;
using Quant.Engine;

namespace PaddleOcr;

/// <summary>
/// PaddleOCR rec's text read-out and its metrics as the dataset README defines them (ppocr-rec/dev): greedy CTC decoding
/// and the edit distance behind character accuracy. The one copy: the rec evaluator (this folder) compiles it, and so do
/// the tests' support library (the oracle test) and the quality table, by link.
/// </summary>
public static class OcrText
{
    /// <summary>
    /// Greedy CTC decoding of one line's [1,T,C] probabilities: argmax per time step, repeats merged, blank (class 0)
    /// dropped; class k in 1..N is line k of <paramref name="keys"/> (the model pack's ppocr_keys_v1.txt), N+1 a space.
    /// </summary>
    public static string CtcGreedy(Tensor probs, IReadOnlyList<string> keys)
    {
        int steps = probs.Shape[1], classes = probs.Shape[2];
        var p = probs.ReadOnlySpan<float>();
        var sb = new StringBuilder();
        int prev = 0;
        for (int t = 0; t < steps; t++)
        {
            var row = p.Slice(t * classes, classes);
            int best = 0;
            for (int c = 1; c < classes; c++) if (row[c] > row[best]) best = c;
            if (best != 0 && best != prev) sb.Append(best <= keys.Count ? keys[best - 1] : " ");
            prev = best;
        }
        return sb.ToString();
    }

    /// <summary>Levenshtein distance over Unicode scalar values (a CJK character outside the BMP counts once).</summary>
    public static int EditDistance(string a, string b)
    {
        var x = a.EnumerateRunes().ToArray();
        var y = b.EnumerateRunes().ToArray();
        var prev = new int[y.Length + 1];
        var cur = new int[y.Length + 1];
        for (int j = 0; j <= y.Length; j++) prev[j] = j;
        for (int i = 1; i <= x.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= y.Length; j++)
                cur[j] = Math.Min(Math.Min(prev[j] + 1, cur[j - 1] + 1), prev[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[y.Length];
    }

    /// <summary>Length in Unicode scalar values, the unit of <see cref="EditDistance"/>.</summary>
    public static int Length(string s) => s.EnumerateRunes().Count();
}
