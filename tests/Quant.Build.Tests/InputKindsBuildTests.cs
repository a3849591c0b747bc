using System.Buffers.Binary;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Build.Tests;

/// <summary>
/// Every kind of file an artifact depends on is an input of the stage that reads it, in real <c>dotnet build</c>s:
/// the model, its external-data file, a calibration file's content, an evaluator's script and the baseline each
/// re-run exactly the stages that read them (what ran is the tool's own record, runs.log). Config edits and
/// properties are in <see cref="IncrementalBuildTests"/>.
/// </summary>
[Collection("msbuild")]
public class InputKindsBuildTests(PackageFeed feed)
{
    private static readonly string[] Collected = FixtureProject.Chain();
    /// <summary>Every tensor of 1 KiB or more in NAME.onnx.data; the cls model holds its weights in Constant nodes, so those too.</summary>
    private static readonly OnnxWriteOptions ExternalData = new() { ExternalData = true, ExternalAttributeTensors = true };
    private static readonly string[] FromCache = ["export cls calibration=cache", "convert cls", "compile cls", "check cls"];

    private static void AssertNewRuns(FixtureProject p, int before, params string[] expected) =>
        Assert.Equal(expected, p.Runs().Skip(before).ToArray());

    [Fact]
    public void Each_kind_of_input_reruns_exactly_the_stages_that_read_it()
    {
        var p = new FixtureProject(feed, "inputs");
        // The model with its weights in cls.onnx.data, as large models ship, written by our own ONNX writer.
        var model = Path.Combine(p.Dir, "models", "cls.onnx");
        var weights = model + ".data";
        OnnxModelWriter.Save(OnnxModelReader.Load(model), model, ExternalData);
        Assert.True(File.Exists(weights), "the writer put the large tensors in cls.onnx.data");
        // An evaluator whose script is a file next to the config.
        Directory.CreateDirectory(Path.Combine(p.Dir, "eval"));
        var script = Path.Combine(p.Dir, "eval", "score.sh");
        File.WriteAllText(script, "echo '{\"score\": 1}'\n");
        p.EditConfig("    cosine: {min: 0.99}", "    cosine: {min: 0.99}\n  scored:\n    evaluator: {command: \"sh eval/score.sh '{outputs}'\", metric: score, min: 0}");

        p.Build().AssertSucceeded();
        AssertNewRuns(p, 0, Collected);
        Assert.Contains($"file {weights}", File.ReadAllLines(Path.Combine(p.Intermediate, "cls", "deps")));
        Assert.Contains($"file {script}", File.ReadAllLines(Path.Combine(p.Intermediate, "cls", "check.deps")));
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 4);

        // New weights in cls.onnx.data, cls.onnx byte for byte the same: a new model, calibrated afresh (not from the cache).
        var qat = Path.Combine(p.Intermediate, "cls", "cls.qat.onnx");
        var qatBefore = File.ReadAllBytes(qat);
        var onnxBefore = File.ReadAllBytes(model);
        ReplaceWeights(model);
        Assert.Equal(onnxBefore, File.ReadAllBytes(model));
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 4, Collected);
        Assert.False(qatBefore.AsSpan().SequenceEqual(File.ReadAllBytes(qat)), "the new weights reach the qat model");

        // The model file touched (a checkout): the whole chain again; the same bytes, so calibration comes from the cache.
        File.SetLastWriteTimeUtc(model, DateTime.UtcNow);
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 8, FromCache);

        // A calibration file's content replaced under the same name, by a copy that keeps its source's older time (as
        // cp -p or an unpacked archive do; File.Copy does too): not newer than the artifacts, still calibrated afresh.
        var replaced = Path.Combine(p.Dir, "calib", "sample_01.npy");
        File.Copy(Path.Combine(p.Dir, "calib", "sample_02.npy"), replaced, overwrite: true);
        File.SetLastWriteTimeUtc(replaced, DateTime.UtcNow.AddDays(-1));
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 12, Collected);

        // The evaluator's script edited: only the check, which runs it.
        File.WriteAllText(script, "echo '{\"score\": 2}'\n");
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 16, "check cls");

        // A baseline (this check's own report): the check, and again when the file changes.
        var baseline = Path.Combine(p.Dir, "baseline.json");
        File.Copy(Path.Combine(p.Intermediate, "cls", "cls.check.json"), baseline);
        p.EditProject("OutputName=\"cls\"", "OutputName=\"cls\" Baseline=\"baseline.json\"");
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 17, "check cls");
        File.AppendAllText(baseline, "\n");
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 18, "check cls");
        p.Build().AssertSucceeded();
        AssertNewRuns(p, 19);
    }

    /// <summary>Rewrites <paramref name="model"/>'s external-data file with its largest weight scaled by 0.9; the .onnx stays as it was.</summary>
    private static void ReplaceWeights(string model)
    {
        var m = OnnxModelReader.Load(model);
        var largest = m.Graph.Initializers.Values.Concat(m.Graph.Nodes.SelectMany(n => n.Attributes.Values).Select(a => a.Tensor).OfType<TensorData>())
            .Where(t => t.Type == ElementType.Float).MaxBy(t => t.Raw.Length)!;
        for (int i = 0; i + 4 <= largest.Raw.Length; i += 4)
            BinaryPrimitives.WriteSingleLittleEndian(largest.Raw.AsSpan(i), 0.9f * BinaryPrimitives.ReadSingleLittleEndian(largest.Raw.AsSpan(i)));
        var scratch = TestAssets.TempDir("quant-new-weights");
        var rewritten = Path.Combine(scratch, Path.GetFileName(model));
        OnnxModelWriter.Save(m, rewritten, ExternalData);
        File.Copy(rewritten + ".data", model + ".data", overwrite: true);
    }
}
