namespace Quant.Build.Tests;

/// <summary>The Quant.Check package as a user installs it: a local dotnet tool from the packed feed.</summary>
[Collection("msbuild")]
public class LocalToolTests(PackageFeed feed)
{
    [Fact]
    public void Installed_local_tool_lists_its_commands()
    {
        var dir = Quant.TestSupport.TestAssets.TempDir("local-tool");
        var env = new Dictionary<string, string> { ["NUGET_PACKAGES"] = feed.PackageCache };
        var (code, stdout, stderr) = Dotnet.Run(dir, TimeSpan.FromMinutes(2), env, "new", "tool-manifest");
        Assert.True(code == 0, stdout + stderr);
        (code, stdout, stderr) = Dotnet.Run(dir, TimeSpan.FromMinutes(3), env,
            "tool", "install", "--local", "Quant.Check", "--version", PackageFeed.Version, "--add-source", feed.Folder);
        Assert.True(code == 0, stdout + stderr);
        (code, stdout, stderr) = Dotnet.Run(dir, TimeSpan.FromMinutes(2), env, "quant-check", "--help");
        Assert.True(code == 0, stdout + stderr);
        foreach (var command in new[] { "infer", "export", "check", "baseline" })
            Assert.Contains(command, stdout);
    }
}
