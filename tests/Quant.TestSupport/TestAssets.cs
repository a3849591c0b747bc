using System.Diagnostics;

namespace Quant.TestSupport;

/// <summary>
/// Where the pinned test assets are. build/fetch-test-assets.sh puts them there (the test command
/// runs it first); a missing asset fails the test with the command that fetches it — never a skip.
/// </summary>
public static class TestAssets
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Cache => Environment.GetEnvironmentVariable("QUANT_ASSETS") is { Length: > 0 } p ? p : Path.Combine(RepoRoot, ".cache", "assets");

    public static string OcrModel(string file) => Require(Path.Combine(Cache, "ocr-models", file));
    public static string DetModel => OcrModel("ch_PP-OCRv4_det_infer.onnx");
    public static string RecModel => OcrModel("ch_PP-OCRv4_rec_infer.onnx");
    public static string ClsModel => OcrModel("ch_ppocr_mobile_v2.0_cls_infer.onnx");

    public static string OnnxNodeTests => Require("/usr/share/libonnx-testdata/data/node");

    /// <summary>Small real samples committed under tests/data.</summary>
    public static string Data(params string[] parts) => Require(Path.Combine([RepoRoot, "tests", "data", .. parts]));

    public static string Require(string path)
    {
        if (File.Exists(path) || Directory.Exists(path)) return path;
        throw new FileNotFoundException($"test asset '{path}' is missing; run build/fetch-test-assets.sh (the test command does)");
    }

    private static string FindRepoRoot()
    {
        var dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "Quant.Build.sln"))) dir = Path.GetDirectoryName(dir);
        if (dir is not null) return dir;
        var built = typeof(TestAssets).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
            .Cast<System.Reflection.AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "QuantRepoRoot")?.Value;
        if (built is not null && File.Exists(Path.Combine(built, "Quant.Build.sln"))) return Path.GetFullPath(built);
        throw new InvalidOperationException("cannot find Quant.Build.sln above the test assembly or where it was built");
    }

    private static readonly string TempRoot = Path.Combine(Path.GetTempPath(), "quant-tests");
    private static readonly Lazy<bool> LeftoversSwept = new(SweepLeftovers);

    /// <summary>
    /// A fresh empty directory under the system temp folder. It outlives the test (to look at after a failure) until the
    /// next test process starts: that one deletes the directories of test processes that are gone, so repeated runs do
    /// not fill the disk (a whole-suite run leaves several GB: exports, packages, feeds).
    /// </summary>
    public static string TempDir(string prefix)
    {
        _ = LeftoversSwept.Value;
        var d = Path.Combine(TempRoot, $"{prefix}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(d);
        return d;
    }

    /// <summary>Deletes <c>PREFIX-PID-GUID</c> directories whose process no longer runs (never another live run's).</summary>
    private static bool SweepLeftovers()
    {
        if (!Directory.Exists(TempRoot)) return true;
        foreach (var dir in Directory.EnumerateDirectories(TempRoot))
        {
            var parts = Path.GetFileName(dir).Split('-');
            if (parts.Length < 3 || !int.TryParse(parts[^2], out int pid) || pid == Environment.ProcessId || IsRunning(pid)) continue;
            try { Directory.Delete(dir, recursive: true); }
            catch (IOException) { } // another test process sweeping the same leftover, or a file still open: the next run gets it
            catch (UnauthorizedAccessException) { }
        }
        return true;
    }

    private static bool IsRunning(int pid)
    {
        try { using var p = Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    /// <summary>Drops the MSBuild/VSTest variables a test host carries (and node reuse), so a nested <c>dotnet</c> behaves as from a user's shell.</summary>
    public static void IsolateFromTestHost(ProcessStartInfo psi)
    {
        foreach (var key in psi.Environment.Keys.ToList())
            if (key.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase) || key.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase))
                psi.Environment.Remove(key);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        psi.Environment["MSBUILDDISABLENODEREUSE"] = "1";
    }

    /// <summary>
    /// Runs a process to completion with a time limit; returns exit code, stdout, stderr.
    /// <paramref name="isolateFromTestHost"/> drops the MSBuild/VSTest variables a test host carries, so a nested
    /// <c>dotnet build</c> behaves as it would from a user's shell.
    /// </summary>
    public static (int Code, string Stdout, string Stderr) Run(string file, IEnumerable<string> args, TimeSpan timeout, IDictionary<string, string>? env = null,
        string? workDir = null, bool isolateFromTestHost = false)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = workDir ?? RepoRoot };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (isolateFromTestHost) IsolateFromTestHost(psi);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var so = p.StandardOutput.ReadToEndAsync();
        var se = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(" ", args)} did not finish within {timeout}");
        }
        return (p.ExitCode, so.Result, se.Result);
    }
}
