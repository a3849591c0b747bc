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
    /// <summary>
    /// The packages' version: a fresh one for each run that packs them (QUANT_BUILD_FEED's packages are 0.1.0-test).
    /// The SDK remembers where it last found a local tool of an id and version (~/.dotnet/toolResolverCache) and does
    /// not look again, so with one fixed version a later run's `dotnet quant-check` went to an earlier run's package
    /// cache, which is gone once that run's temp folder is swept ("Run dotnet tool restore").
    /// </summary>
    public static string Version { get; } = Environment.GetEnvironmentVariable("QUANT_BUILD_FEED") is { Length: > 0 }
        ? "0.1.0-test" : $"0.1.0-test.run{Guid.NewGuid():N}"[..26];

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

    public static (int Code, string Stdout, string Stderr) Run(string workDir, TimeSpan timeout, IDictionary<string, string>? env, params string[] args) =>
        TestAssets.Run("dotnet", args, timeout, env, workDir, isolateFromTestHost: true);
}
