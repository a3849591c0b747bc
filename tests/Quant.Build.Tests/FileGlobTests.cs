extern alias core;
using Quant.TestSupport;
using CoreGlob = core::Quant.Core.Data.FileGlob;
using TaskGlob = Quant.Core.Data.FileGlob;

namespace Quant.Build.Tests;

/// <summary>
/// One glob: the MSBuild task (netstandard2.0, deciding whether calibration data changed) and the tool (net10.0,
/// reading the data) expand every pattern to the same files — the files listed here by hand.
/// </summary>
public class FileGlobTests
{
    private static readonly string[] Files =
        ["data/a1.npy", "data/a2.npy", "data/b1.npy", "data/notes.txt", "data/sub/a3.npy", "data/sub/deep/a4.npy", "other/x.npy", "cfg/local.npy"];

    /// <summary>Pattern (relative to cfg/; ROOT is the tree's absolute path) and the files it must match.</summary>
    public static TheoryData<string, string[]> Patterns => new()
    {
        { "../data/*.npy", ["data/a1.npy", "data/a2.npy", "data/b1.npy"] },
        { "../data/**/*.npy", ["data/a1.npy", "data/a2.npy", "data/b1.npy", "data/sub/a3.npy", "data/sub/deep/a4.npy"] },
        { "../data/**", ["data/a1.npy", "data/a2.npy", "data/b1.npy", "data/notes.txt", "data/sub/a3.npy", "data/sub/deep/a4.npy"] },
        { "../data/a*.npy", ["data/a1.npy", "data/a2.npy"] },
        { "../data/*1.*", ["data/a1.npy", "data/b1.npy"] },
        // '?' is an ordinary character (FileSystemGlobbing's rules, and docs/config-reference.md's): no file is named "a?.npy".
        { "../data/a?.npy", [] },
        { "../*/a*.npy", ["data/a1.npy", "data/a2.npy"] },
        { "../**/a*.npy", ["data/a1.npy", "data/a2.npy", "data/sub/a3.npy", "data/sub/deep/a4.npy"] },
        { "*.npy", ["cfg/local.npy"] },
        { "local.npy", ["cfg/local.npy"] },
        { "../data/b1.npy", ["data/b1.npy"] },
        { "ROOT/data/sub/**/*.npy", ["data/sub/a3.npy", "data/sub/deep/a4.npy"] },
        { "ROOT/other/*.npy", ["other/x.npy"] },
        { "ROOT/data/../other/x.npy", ["other/x.npy"] },
        { "..\\data\\sub\\*.npy", ["data/sub/a3.npy"] },
        { "../missing/*.npy", [] },
        { "../data/*.onnx", [] },
    };

    [Theory]
    [MemberData(nameof(Patterns))]
    public void Task_and_tool_expand_a_glob_to_the_same_files(string pattern, string[] expected)
    {
        var root = TestAssets.TempDir("glob");
        foreach (var f in Files)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(root, f))!);
            File.WriteAllText(Path.Combine(root, f), "");
        }
        var cfg = Path.Combine(root, "cfg");
        var glob = pattern.Replace("ROOT", root.Replace('\\', '/'));
        string[] Rel(List<string> files) => files.Select(p => Path.GetRelativePath(root, p).Replace('\\', '/')).ToArray();

        var task = TaskGlob.Expand(cfg, glob);
        Assert.Equal(expected, Rel(task));
        Assert.Equal(task, CoreGlob.Expand(cfg, glob));
        Assert.All(task, f => Assert.True(Path.IsPathFullyQualified(f), f));
    }

    [Fact]
    public void Split_gives_the_folder_the_glob_starts_from()
    {
        var root = TestAssets.TempDir("glob-split");
        Assert.Equal((Path.GetFullPath(Path.Combine(root, "..", "data")), "**/*.npy"), TaskGlob.Split(root, "../data/**/*.npy"));
        Assert.Equal((Path.GetFullPath(root), "*.npy"), TaskGlob.Split(root, "*.npy"));
        Assert.Equal((Path.GetFullPath("/abs/x"), "y.npy"), TaskGlob.Split(root, "/abs/x/y.npy"));
    }
}
