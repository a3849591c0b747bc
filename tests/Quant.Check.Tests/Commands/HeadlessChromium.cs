using System.Text.RegularExpressions;
using Quant.TestSupport;

namespace Quant.Check.Tests.Commands;

/// <summary>
/// Debian's <c>chromium</c> in headless mode (build/fetch-test-assets.sh installs it): loads a local page, runs its
/// scripts, and returns the DOM after load, the browser's console messages and, when asked, a screenshot.
/// Console messages come from <c>--enable-logging=stderr --v=0</c>, which logs each as an
/// <c>INFO:CONSOLE</c> line (uncaught exceptions and Content-Security-Policy refusals included).
/// </summary>
public static partial class HeadlessChromium
{
    public sealed record Page(string Dom, IReadOnlyList<string> ConsoleMessages, string Stderr);

    public static string Executable =>
        new[] { Environment.GetEnvironmentVariable("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser" }
            .FirstOrDefault(p => !string.IsNullOrEmpty(p) && File.Exists(p))
        ?? throw new InvalidOperationException("chromium is not installed: run build/fetch-test-assets.sh (it installs Debian's chromium) or set CHROMIUM to its path");

    /// <summary>Loads <paramref name="htmlFile"/> and dumps its DOM; with <paramref name="screenshot"/>, a second load writes a PNG of a window of <paramref name="windowSize"/>.</summary>
    public static Page Load(string htmlFile, string? screenshot = null, string windowSize = "1280,4000")
    {
        var url = new Uri(Path.GetFullPath(htmlFile)).AbsoluteUri;
        var profile = TestAssets.TempDir("chromium-profile");
        string[] common = ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions", $"--user-data-dir={profile}",
            "--enable-logging=stderr", "--v=0"];
        string dom, stderr;
        try
        {
            (int code, dom, stderr) = TestAssets.Run(Executable, [.. common, "--dump-dom", url], TimeSpan.FromMinutes(2));
            if (code != 0) throw new InvalidOperationException($"chromium --dump-dom exited with {code}:\n{stderr}");
            if (screenshot is not null)
            {
                var (sc, _, se) = TestAssets.Run(Executable, [.. common, $"--screenshot={screenshot}", $"--window-size={windowSize}", "--hide-scrollbars", url], TimeSpan.FromMinutes(2));
                if (sc != 0 || !File.Exists(screenshot)) throw new InvalidOperationException($"chromium --screenshot exited with {sc}:\n{se}");
                stderr += se;
            }
        }
        finally
        {
            // A browser profile is tens of MB; the shared temp folder is not the place to keep it.
            try { Directory.Delete(profile, recursive: true); } catch (IOException) { }
        }
        var console = ConsoleLine().Matches(stderr).Select(m => m.Groups[1].Value).ToList();
        return new Page(dom, console, stderr);
    }

    [GeneratedRegex(@"INFO:CONSOLE[^\]]*\]\s*(.*)")]
    private static partial Regex ConsoleLine();
}
