using Quant.Fuzz;
using Quant.TestSupport;

namespace Quant.Core.Tests.Fuzz;

/// <summary>
/// Replays every input build/fuzz.sh found to crash, hang or over-allocate (tests/data/fuzz/LOADER/*.bin) through the
/// same entry point the fuzzer used: each must now end in the loader's documented error (or load), within 5 s and the
/// target's allocation bound (FuzzOracle, docs/limits.md).
/// </summary>
public sealed class FuzzRegressionTests
{
    public static TheoryData<string, string> Inputs()
    {
        var data = new TheoryData<string, string>();
        var root = Path.Combine(TestAssets.RepoRoot, "tests", "data", "fuzz");
        foreach (var dir in Directory.GetDirectories(root).Order(StringComparer.Ordinal))
            foreach (var file in Directory.GetFiles(dir, "*.bin").Order(StringComparer.Ordinal))
                data.Add(Path.GetFileName(dir), Path.GetFileName(file));
        return data;
    }

    [Theory]
    [MemberData(nameof(Inputs))]
    public void Found_input_gives_the_documented_error_quickly_and_within_the_allocation_bound(string loader, string file)
    {
        var target = FuzzTarget.Get(loader);
        target.Prepare(TestAssets.TempDir($"fuzz-{loader}"));
        var input = File.ReadAllBytes(Path.Combine(TestAssets.RepoRoot, "tests", "data", "fuzz", loader, file));
        var outcome = FuzzOracle.Execute(target, input);
        Assert.False(outcome.Finding, outcome.ToString());
        Assert.NotNull(outcome.Error); // every committed input is a bad file: it must be refused, not accepted
        Assert.True(outcome.Elapsed < TimeSpan.FromSeconds(5), $"took {outcome.Elapsed}");
    }

    [Fact]
    public void Every_loader_has_committed_regressions_or_none_were_found()
    {
        // A folder per loader that had findings; each name must be a fuzz target (a renamed target would silently skip its inputs).
        var root = Path.Combine(TestAssets.RepoRoot, "tests", "data", "fuzz");
        var known = FuzzTarget.All().Select(t => t.Name).ToHashSet();
        foreach (var dir in Directory.GetDirectories(root))
            Assert.Contains(Path.GetFileName(dir), known);
    }
}
