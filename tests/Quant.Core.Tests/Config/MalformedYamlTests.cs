using System.Text;
using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.TestSupport;

namespace Quant.Core.Tests.Configuration;

/// <summary>
/// Whatever text a user saves as a config, the loader answers with a config or one positioned QuantException —
/// never a parser exception with a stack trace, never a stack overflow.
/// </summary>
public sealed class MalformedYamlTests
{
    private static readonly string SampleConfig = Path.Combine(TestAssets.RepoRoot, "samples", "ppocr-cls", "models", "cls.quant.yaml");

    /// <summary>Malformed texts, each with the 1-based line the error must point at and a fragment of the message.</summary>
    public static TheoryData<string, string, int, string> Malformed => new()
    {
        // The example from the issue (YamlDotNet 16.3 reports it as a YamlException; other exception types are wrapped too).
        { "unclosed flow mapping", "inputs:\n  x:\n    data: { \"calib/*.npy\"\n", 4, "not valid YAML/JSON" },
        { "unclosed flow sequence", "op_config:\n  Softmax: {qtype: [int8, int16}\n", 2, "not valid YAML/JSON" },
        { "unclosed flow sequence at end", "model_config:\n  activation:\n    calibration_type: [max, kl\n", 4, "not valid YAML/JSON" },
        { "bad indentation", "model_config:\n  activation:\n    num_bin: 1024\n   per_channel: true\n", 4, "not valid YAML/JSON" },
        // The library reports these two without a position (the old diagnostic said line 1, column 1).
        { "tab indentation", "model_config:\n\tactivation:\n\t\tnum_bin: 1024\n", 2, "not valid YAML/JSON" },
        { "duplicate key", "calibration:\n  batch_size: 2\n  batch_size: 4\n", 3, "Duplicate key" },
        { "unterminated quote", "inputs:\n  x:\n    data: \"calib/*.npy\n    scale: 1/255\n", 3, "not valid YAML/JSON" },
        { "lone document marker with garbage", "---\n] } :\n", 2, "not valid YAML/JSON" },
        // Before the depth guard, 100,000 brackets ended the process with a stack overflow (nothing can catch that).
        { "deep flow nesting", "a: " + new string('[', 100_000) + new string(']', 100_000) + "\n", 1, "more than 64 levels" },
        { "deep block nesting", string.Concat(Enumerable.Range(0, 80).Select(i => new string(' ', i) + "k" + i + ":\n")), 65, "more than 64 levels" },
        { "alias to nothing", "model_config: *missing\n", 1, "not valid YAML/JSON" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void Malformed_yaml_is_one_positioned_QB1001(string what, string yaml, int line, string fragment)
    {
        var e = Assert.Throws<QuantException>(() => QuantConfigLoader.Parse(yaml, "/cfg/bad.quant.yaml"));
        Assert.True(e.Code == ErrorCode.ConfigSyntax, $"{what}: {e.ToDiagnostic()}");
        Assert.True(e.Where.File == "/cfg/bad.quant.yaml" && e.Where.Line == line && e.Where.Column > 0, $"{what}: {e.ToDiagnostic()}");
        Assert.Contains(fragment, e.Message);
        Assert.DoesNotContain("(Line:", e.Message);
        Assert.DoesNotContain('\n', e.ToDiagnostic());
    }

    /// <summary>
    /// 300 deterministic mutations of the sample's real config (characters replaced, inserted, deleted; lines
    /// deleted, duplicated, swapped, re-indented; the text cut short): each loads or fails with a QuantException.
    /// </summary>
    [Fact]
    public void Mutated_sample_config_loads_or_fails_with_a_QuantException()
    {
        var original = File.ReadAllText(SampleConfig).ReplaceLineEndings("\n");
        var random = new Random(20261205);
        const string Specials = "{}[]:,-#&*!|>'\"%@`? \t\n\\";
        int loaded = 0, failed = 0;
        var unexpected = new List<string>();
        for (int k = 0; k < 300; k++)
        {
            var text = Mutate(original, random, Specials);
            try
            {
                QuantConfigLoader.Parse(text, SampleConfig);
                loaded++;
            }
            catch (QuantException e)
            {
                Assert.DoesNotContain('\n', e.ToDiagnostic());
                failed++;
            }
            catch (Exception e)
            {
                unexpected.Add($"mutation {k}: {e.GetType().Name}: {e.Message}\n---\n{text}\n---");
            }
        }
        Assert.True(unexpected.Count == 0, string.Join("\n", unexpected.Take(3)));
        // Both outcomes occur: the mutations neither all break the file nor all miss it.
        Assert.True(loaded > 10 && failed > 100, $"loaded {loaded}, failed {failed}");
    }

    private static string Mutate(string text, Random random, string specials)
    {
        var lines = text.Split('\n').ToList();
        int times = 1 + random.Next(3);
        for (int t = 0; t < times; t++)
        {
            int line = random.Next(lines.Count);
            switch (random.Next(8))
            {
                case 0: // replace a character
                case 1: // insert a character
                case 2: // delete a character
                {
                    var sb = new StringBuilder(lines[line]);
                    int at = sb.Length == 0 ? 0 : random.Next(sb.Length);
                    char c = random.Next(4) == 0 ? (char)random.Next(1, 256) : specials[random.Next(specials.Length)];
                    if (sb.Length > 0 && random.Next(3) == 2) sb.Remove(at, 1);
                    else if (sb.Length > 0 && random.Next(2) == 0) sb[at] = c;
                    else sb.Insert(at, c);
                    lines[line] = sb.ToString();
                    break;
                }
                case 3: lines.RemoveAt(line); if (lines.Count == 0) lines.Add(""); break;
                case 4: lines.Insert(line, lines[line]); break;
                case 5:
                {
                    int other = random.Next(lines.Count);
                    (lines[line], lines[other]) = (lines[other], lines[line]);
                    break;
                }
                case 6: lines[line] = new string(' ', random.Next(6)) + lines[line].TrimStart(); break;
                default:
                {
                    var joined = string.Join('\n', lines);
                    return joined[..random.Next(joined.Length + 1)];
                }
            }
        }
        return string.Join('\n', lines);
    }
}
