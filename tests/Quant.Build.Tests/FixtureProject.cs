using System.Diagnostics;
using Quant.TestSupport;

namespace Quant.Build.Tests;

/// <summary>
/// A throw-away project in a temp folder that references the packed Quant.Build and quantizes the real
/// PaddleOCR mobile cls model (small: a full export + check takes a few seconds).
/// </summary>
public sealed class FixtureProject
{
    public const string Yaml = """
        inputs:
          x:
            data: "calib/*.npy"
            scale: 1/255
            mean: 0.5
            std: 0.5
        calibration:
          batch_size: 2
        quant_config:
          model_config:
            all_node_type: int8
            activation:
              calibration_type: max
          op_config:
            Softmax: {qtype: float16}
        checks:
          direction:
            stage: qat_vs_float
            output: "*"
            cosine: {min: 0.99}
        """;

    private readonly PackageFeed _feed;
    public string Dir { get; }
    public string ConfigPath => Path.Combine(Dir, "cls.quant.yaml");
    public string Intermediate => Path.Combine(Dir, "obj", "Debug", "net10.0", "quant");
    public string OutDir => Path.Combine(Dir, "bin", "Debug", "net10.0");

    public string ProjectFile { get; }
    private readonly List<(string Name, string Folder)> _sources = [];

    public FixtureProject(PackageFeed feed, string name, string[]? outputNames = null, int calibrationFiles = 3, string itemMetadata = "", string properties = "")
    {
        _feed = feed;
        Dir = TestAssets.TempDir("quant-build-" + name);
        outputNames ??= ["cls"];
        var model = Path.Combine(TestAssets.RepoRoot, "samples", "ppocr-cls", "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx");
        Directory.CreateDirectory(Path.Combine(Dir, "models"));
        File.Copy(model, Path.Combine(Dir, "models", "cls.onnx"));
        Directory.CreateDirectory(Path.Combine(Dir, "calib"));
        for (int i = 0; i < calibrationFiles; i++) AddCalibrationFile(i);
        File.WriteAllText(ConfigPath, Yaml);
        var items = string.Join("\n    ", outputNames.Select(n => $"""<QuantModel Include="models/cls.onnx" QConfig="cls.quant.yaml" OutputName="{n}" {itemMetadata}/>"""));
        ProjectFile = Path.Combine(Dir, name + ".csproj");
        File.WriteAllText(ProjectFile, $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <TargetFramework>net10.0</TargetFramework>
                {properties}
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Quant.Build" Version="{PackageFeed.Version}" PrivateAssets="all" />
                {items}
              </ItemGroup>
            </Project>
            """);
        WriteNugetConfig();
    }

    /// <summary>Adds a package source (a local folder) to the project's nuget.config, after the Quant.Build feed.</summary>
    public void AddPackageSource(string name, string folder)
    {
        _sources.Add((name, folder));
        WriteNugetConfig();
    }

    private void WriteNugetConfig()
    {
        var more = string.Concat(_sources.Select(s => $"\n    <add key=\"{s.Name}\" value=\"{s.Folder}\" />"));
        File.WriteAllText(Path.Combine(Dir, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="quant-test" value="{_feed.Folder}" />{more}
              </packageSources>
            </configuration>
            """);
    }

    public void EditProject(string from, string to)
    {
        var text = File.ReadAllText(ProjectFile);
        Assert.Contains(from, text);
        File.WriteAllText(ProjectFile, text.Replace(from, to));
    }

    public void AddCalibrationFile(int index)
    {
        var files = Directory.GetFiles(TestAssets.Data("ppocr-cls"), "cls_*.npy").Order(StringComparer.Ordinal).ToArray();
        var target = Path.Combine(Dir, "calib", $"sample_{index:D2}.npy");
        File.Copy(files[index % files.Length], target);
        File.SetAttributes(target, FileAttributes.Normal);
    }

    public void EditConfig(string from, string to)
    {
        var text = File.ReadAllText(ConfigPath);
        Assert.Contains(from, text);
        File.WriteAllText(ConfigPath, text.Replace(from, to));
    }

    public BuildResult Build(params string[] extra) => RunDotnet("build", extra);

    /// <summary>
    /// <c>dotnet pack</c> into <paramref name="outputFolder"/> (a local package source), in the Debug configuration
    /// the builds use (pack's own default is Release), so the artifacts are where <see cref="Intermediate"/> says.
    /// </summary>
    public BuildResult Pack(string outputFolder, params string[] extra) => RunDotnet("pack", ["-o", outputFolder, "-c", "Debug", .. extra]);

    private BuildResult RunDotnet(string command, string[] extra)
    {
        var clock = Stopwatch.StartNew();
        var (code, stdout, stderr) = Dotnet.Run(Dir, TimeSpan.FromMinutes(5), new Dictionary<string, string> { ["NUGET_PACKAGES"] = _feed.PackageCache },
            [command, "-nologo", "-nodeReuse:false", "-v:n", .. extra]);
        return new BuildResult(code, stdout + stderr, clock.Elapsed);
    }

    /// <summary>The runs of a first build with the default Stages: the whole chain, calibration collected.</summary>
    public static string[] Chain(string name = "cls") => [$"export {name} calibration=collected", $"convert {name}", $"compile {name}", $"check {name}"];

    /// <summary>The tool's record of what ran for one model: "export cls calibration=collected ...", "check cls ...".</summary>
    public string[] Runs(string name = "cls")
    {
        var log = Path.Combine(Intermediate, name, "runs.log");
        return File.Exists(log) ? File.ReadAllLines(log).Select(l => string.Join(' ', l.Split(' ').Where(w => !char.IsDigit(w.FirstOrDefault())))).ToArray() : [];
    }
}

public sealed record BuildResult(int Code, string Output, TimeSpan Time)
{
    public void AssertSucceeded() => Assert.True(Code == 0, Output);
}
