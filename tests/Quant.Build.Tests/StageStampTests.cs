using Quant.Build.Tasks;
using Quant.TestSupport;

namespace Quant.Build.Tests;

/// <summary>
/// The stamp's record of its stage's artifacts (<see cref="StageStamp"/>): intact artifacts are trusted; one deleted is a
/// plain re-run, one cut short or rewritten, or a damaged stamp, a re-run with a warning naming the file — never a crash.
/// </summary>
public class StageStampTests
{
    private static (string Stamp, string[] Artifacts) Stage()
    {
        var dir = TestAssets.TempDir("stamp");
        var qbm = Path.Combine(dir, "cls.qbm");
        var json = Path.Combine(dir, "cls.compile.json");
        File.WriteAllBytes(qbm, Enumerable.Range(0, 4096).Select(i => (byte)i).ToArray());
        File.WriteAllText(json, "{\"program\": \"cls.qbm\"}\n");
        var stamp = Path.Combine(dir, "compile.stamp");
        StageStamp.Write(stamp, [qbm, json]);
        return (stamp, [qbm, json]);
    }

    [Fact]
    public void Intact_artifacts_are_trusted_and_the_stamp_is_written_whole_with_no_temporary_file_left()
    {
        var (stamp, artifacts) = Stage();
        Assert.Null(StageStamp.Check(stamp, artifacts));
        var lines = File.ReadAllLines(stamp);
        Assert.Equal("quant stage stamp v1", lines[0]);
        Assert.Equal("4096", lines[1].Split(' ')[0]);
        Assert.EndsWith(" cls.qbm", lines[1]);
        Assert.Equal(["cls.compile.json", "cls.qbm", "compile.stamp"], Directory.GetFiles(Path.GetDirectoryName(stamp)!).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Null(StageStamp.Check(Path.Combine(Path.GetDirectoryName(stamp)!, "absent.stamp"), artifacts)); // no stamp: the target runs anyway
    }

    [Fact]
    public void A_truncated_qbm_is_not_trusted_and_the_problem_names_it_with_both_sizes()
    {
        var (stamp, artifacts) = Stage();
        var time = File.GetLastWriteTimeUtc(artifacts[0]);
        using (var f = new FileStream(artifacts[0], FileMode.Open)) f.SetLength(1000);
        File.SetLastWriteTimeUtc(artifacts[0], time); // even with its old time: the size gives it away
        var problem = StageStamp.Check(stamp, artifacts)!;
        Assert.True(problem.Warn);
        Assert.Equal(artifacts[0], problem.File);
        Assert.Contains("cls.qbm is 1000 bytes, but the stage wrote 4096", problem.Reason);
    }

    [Fact]
    public void An_artifact_rewritten_after_its_stage_is_not_trusted()
    {
        var (stamp, artifacts) = Stage();
        File.WriteAllText(artifacts[1], "{\"program\": \"cls.qbX\"}\n"); // same size, new content
        File.SetLastWriteTimeUtc(artifacts[1], File.GetLastWriteTimeUtc(artifacts[1]).AddSeconds(5));
        var problem = StageStamp.Check(stamp, artifacts)!;
        Assert.True(problem.Warn);
        Assert.Contains("cls.compile.json was rewritten after the stage wrote it", problem.Reason);
    }

    [Fact]
    public void A_deleted_artifact_reruns_the_stage_without_a_warning()
    {
        var (stamp, artifacts) = Stage();
        File.Delete(artifacts[0]);
        var problem = StageStamp.Check(stamp, artifacts)!;
        Assert.False(problem.Warn);
        Assert.Equal("cls.qbm is missing", problem.Reason);
    }

    public static TheoryData<string, bool, string> Stamps => new()
    {
        { "", true, "is damaged" },                                                      // created, nothing written
        { "quant stage st", true, "is damaged" },                                        // cut in the header
        { "quant stage stamp v1\n40", true, "is damaged (line '40')" },                  // cut in a line
        { "quant stage stamp v1\n", true, "does not record cls.qbm" },                   // cut after the header
        { "\0\0\0\0\0\0", true, "is damaged" },                                          // zeros a crashed file system left
        { "2026-12-05T21:09:49.0000000Z\n", false, "written by an older Quant.Build" }, // the format before the record
    };

    [Theory]
    [MemberData(nameof(Stamps))]
    public void A_damaged_or_older_stamp_reruns_the_stage(string content, bool warn, string reason)
    {
        var (stamp, artifacts) = Stage();
        File.WriteAllText(stamp, content);
        var problem = StageStamp.Check(stamp, artifacts)!;
        Assert.Equal(warn, problem.Warn);
        Assert.Contains(reason, problem.Reason);
        if (warn) Assert.True(problem.File == stamp || problem.Reason.Contains("does not record"), problem.Reason);
    }
}
