using System.Diagnostics;
using Quant.TestSupport;

namespace Quant.Build.Tests;

/// <summary>
/// The packed Quant.Build package the fixture projects consume, as a user's project would: packed once per test
/// run into a fresh local folder (or taken from QUANT_BUILD_FEED, e.g. artifacts/packages after build/pack.sh),
/// restored into a package cache of the run's own so that no stale extraction of the same version is used.
/// </summary>
public sealed class PackageFeed
{
    public const string Version = "0.1.0-test";

    public string Folder { get; }
    public string PackageCache { get; }

    public PackageFeed()
    {
        var root = TestAssets.TempDir("quant-feed");
        PackageCache = Path.Combine(root, "nuget-packages");
        if (Environment.GetEnvironmentVariable("QUANT_BUILD_FEED") is { Length: > 0 } given)
        {
            Folder = given;
            return;
        }
        Folder = Path.Combine(root, "feed");
        // Both packages, as build/pack.sh makes them: Quant.Build (tasks, targets, tool) and Quant.Check (the dotnet tool).
        foreach (var project in new[] { "Quant.Build.Tasks", "Quant.Check" })
        {
            var (code, stdout, stderr) = Dotnet.Run(TestAssets.RepoRoot, TimeSpan.FromMinutes(8),
                "pack", Path.Combine(TestAssets.RepoRoot, "src", project), "-c", "Release", "-o", Folder,
                $"-p:Version={Version}", "--artifacts-path", Path.Combine(root, "pack-build"), "-nologo");
            if (code != 0) throw new InvalidOperationException($"packing {project} failed:\n{stdout}\n{stderr}");
        }
    }
}

[CollectionDefinition("msbuild")]
public sealed class MsBuildCollection : ICollectionFixture<PackageFeed>;

/// <summary>Runs the dotnet CLI with an environment free of the test host's MSBuild settings.</summary>
public static class Dotnet
{
    public static (int Code, string Stdout, string Stderr) Run(string workDir, TimeSpan timeout, params string[] args) =>
        Run(workDir, timeout, null, args);

    public static (int Code, string Stdout, string Stderr) Run(string workDir, TimeSpan timeout, IDictionary<string, string>? env, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = workDir };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // A test host started by dotnet test carries MSBuild's own variables; a nested build must not inherit them.
        foreach (var key in psi.Environment.Keys.ToList())
            if (key.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase) || key.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase))
                psi.Environment.Remove(key);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        psi.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var so = p.StandardOutput.ReadToEndAsync();
        var se = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"dotnet {string.Join(" ", args)} did not finish within {timeout}");
        }
        return (p.ExitCode, so.Result, se.Result);
    }
}
