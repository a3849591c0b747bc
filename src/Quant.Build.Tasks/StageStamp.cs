using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;

namespace Quant.Build.Tasks;

/// <summary>
/// A stage's stamp: the <c>Outputs</c> of its target, written (atomically) only after the tool exited with 0, and a
/// record of the artifacts it vouches for — each file's size and write time as the stage left them:
/// <code>
/// quant stage stamp v1
/// SIZE WRITE-TIME-TICKS-UTC FILE
/// </code>
/// Every build compares the artifacts with the record (<see cref="Check"/>, a few file-system stats, no reading):
/// a file missing, cut short, or rewritten by anything but its stage makes the stamp untrusted, so the stage runs again.
/// </summary>
internal static class StageStamp
{
    private const string Header = "quant stage stamp v1";

    /// <summary>Why a stamp no longer vouches for its stage; <see cref="Warn"/> when that is a surprise (not a file deleted on purpose).</summary>
    internal sealed class Problem
    {
        public Problem(string reason, bool warn, string file)
        {
            Reason = reason;
            Warn = warn;
            File = file;
        }

        public string Reason { get; }
        public bool Warn { get; }
        /// <summary>The file the problem is about (the artifact, or the stamp itself).</summary>
        public string File { get; }
    }

    public static void Write(string stampPath, IEnumerable<string> artifacts)
    {
        var text = new StringBuilder(Header).Append('\n');
        foreach (var a in artifacts)
        {
            var info = new FileInfo(a);
            if (!info.Exists) continue; // an optional artifact the stage did not write: Check reports it missing if it is required
            text.Append(info.Length.ToString(CultureInfo.InvariantCulture)).Append(' ')
                .Append(info.LastWriteTimeUtc.Ticks.ToString(CultureInfo.InvariantCulture)).Append(' ')
                .Append(Path.GetFileName(a)).Append('\n');
        }
        AtomicTaskFile.Write(stampPath, text.ToString());
    }

    /// <summary>Null when the stamp is absent (the target runs anyway) or vouches for every one of <paramref name="artifacts"/>.</summary>
    public static Problem? Check(string stampPath, IReadOnlyCollection<string> artifacts)
    {
        if (!File.Exists(stampPath)) return null;
        foreach (var a in artifacts)
            if (!File.Exists(a)) return new Problem($"{Path.GetFileName(a)} is missing", warn: false, a);
        string[] lines;
        try { lines = File.ReadAllLines(stampPath); }
        catch (IOException e) { return new Problem($"its stamp cannot be read ({e.Message})", warn: true, stampPath); }
        if (lines.Length == 0 || lines[0] != Header)
            return lines.Length > 0 && lines[0].Length > 0 && char.IsDigit(lines[0][0])
                ? new Problem("its stamp was written by an older Quant.Build", warn: false, stampPath)
                : new Problem($"its stamp {Path.GetFileName(stampPath)} is damaged (no '{Header}' header)", warn: true, stampPath);
        var recorded = new Dictionary<string, (long Size, long Ticks)>(StringComparer.Ordinal);
        foreach (var line in lines.Skip(1))
        {
            var parts = line.Split(new[] { ' ' }, 3);
            if (parts.Length != 3 || !long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out long size)
                || !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out long ticks))
                return new Problem($"its stamp {Path.GetFileName(stampPath)} is damaged (line '{line}')", warn: true, stampPath);
            recorded[parts[2]] = (size, ticks);
        }
        foreach (var a in artifacts)
        {
            if (!recorded.TryGetValue(Path.GetFileName(a), out var r))
                return new Problem($"its stamp {Path.GetFileName(stampPath)} does not record {Path.GetFileName(a)}", warn: true, stampPath);
            var info = new FileInfo(a);
            if (info.Length != r.Size)
                return new Problem($"{Path.GetFileName(a)} is {info.Length} bytes, but the stage wrote {r.Size} (cut short or changed since)", warn: true, a);
            if (info.LastWriteTimeUtc.Ticks != r.Ticks)
                return new Problem($"{Path.GetFileName(a)} was rewritten after the stage wrote it ({info.LastWriteTimeUtc:o}, the stage's was {new DateTime(r.Ticks, DateTimeKind.Utc):o})", warn: true, a);
        }
        return null;
    }
}
