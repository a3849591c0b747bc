using System.IO.Compression;
using Quant.Engine;
using Quant.TestSupport;

namespace Quant.Build.Tests;

/// <summary>The Quant.Check package as a user installs it: a local dotnet tool from the packed feed.</summary>
[Collection("msbuild")]
public class LocalToolTests(PackageFeed feed)
{
    /// <summary>The platforms whose ONNX Runtime natives both packages carry (docs/msbuild.md, packages).</summary>
    private static readonly string[] NativeRids = ["linux-arm64", "linux-x64", "osx-arm64", "win-x64"];
    // SkiaSharp (image decoding) ships macOS as one universal folder.
    private static readonly string[] AllNativeRids = ["linux-arm64", "linux-x64", "osx", "osx-arm64", "win-x64"];

    [Fact]
    public void Installed_local_tool_lists_its_commands_and_runs_onnx_runtime()
    {
        var dir = TestAssets.TempDir("local-tool");
        var env = new Dictionary<string, string> { ["NUGET_PACKAGES"] = feed.PackageCache };
        var (code, stdout, stderr) = Dotnet.Run(dir, TimeSpan.FromMinutes(2), env, "new", "tool-manifest");
        Assert.True(code == 0, stdout + stderr);
        (code, stdout, stderr) = Dotnet.Run(dir, TimeSpan.FromMinutes(3), env,
            "tool", "install", "--local", "Quant.Check", "--version", PackageFeed.Version, "--add-source", feed.Folder);
        Assert.True(code == 0, stdout + stderr);
        (code, stdout, stderr) = Dotnet.Run(dir, TimeSpan.FromMinutes(2), env, "quant-check", "--help");
        Assert.True(code == 0, stdout + stderr);
        foreach (var command in new[] { "infer", "bench", "export", "check", "baseline" })
            Assert.Contains(command, stdout);

        // ONNX Runtime's native library loads from the installed package: the tool's output equals the oracle's.
        var model = Path.Combine(TestAssets.RepoRoot, "samples", "ppocr-cls", "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx");
        var input = Path.Combine(TestAssets.RepoRoot, "samples", "ppocr-cls", "inputs", "cls_0003.x.npy");
        var outDir = Path.Combine(dir, "out");
        (code, stdout, stderr) = Dotnet.Run(dir, TimeSpan.FromMinutes(2), env,
            "quant-check", "infer", model, "--input", input, "--out", outDir, "--runtime", "onnxruntime", "--threads", "1");
        Assert.True(code == 0, stdout + stderr);
        Assert.Matches(@"ONNX Runtime 1\.32\.\d+, optimizations all", stdout);
        var ours = Npy.Read(Path.Combine(outDir, "softmax_0.tmp_0.npy"));
        var reference = OrtOracle.Run(model, new Dictionary<string, Tensor> { ["x"] = Npy.Read(input) }).Outputs["softmax_0.tmp_0"];
        Assert.True(TensorAssert.MaxAbsDiff(reference, ours) <= 1e-6, $"installed tool vs in-process ONNX Runtime differ by {TensorAssert.MaxAbsDiff(reference, ours)}");
    }

    [Theory]
    [InlineData("Quant.Check", "tools/net10.0/any/runtimes/")]
    [InlineData("Quant.Build", "tools/net10.0/runtimes/")]
    public void Packages_carry_onnx_runtime_and_skia_natives_for_the_tool_platforms_only(string package, string runtimes)
    {
        using var zip = ZipFile.OpenRead(Path.Combine(feed.Folder, $"{package}.{PackageFeed.Version}.nupkg"));
        var natives = zip.Entries.Select(e => e.FullName).Where(n => n.StartsWith(runtimes, StringComparison.Ordinal) && n.Contains("/native/")).ToList();
        Assert.Equal(AllNativeRids, natives.Select(n => n[runtimes.Length..].Split('/')[0]).Distinct().Order());
        Assert.All(natives, n => Assert.Matches(@"/native/(lib)?(onnxruntime(_providers_shared)?|SkiaSharp)\.(so|dll|dylib)$", n));
        foreach (var rid in new[] { "linux-x64", "linux-arm64", "win-x64", "osx" })
            Assert.Contains(natives, n => n.StartsWith($"{runtimes}{rid}/native/") && Path.GetFileName(n) is "libSkiaSharp.so" or "libSkiaSharp.dll" or "libSkiaSharp.dylib");
        foreach (var rid in NativeRids)
            Assert.Contains(natives, n => n.StartsWith($"{runtimes}{rid}/native/") && Path.GetFileName(n) is "libonnxruntime.so" or "onnxruntime.dll" or "libonnxruntime.dylib");
    }
}
