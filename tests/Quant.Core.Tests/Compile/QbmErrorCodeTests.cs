using Quant.Core.Diagnostics;
using Quant.Runtime;

namespace Quant.Core.Tests.Compile;

/// <summary>Quant.Runtime cannot reference ErrorCode.cs, so its QbmError repeats the QB71xx numbers; they must agree.</summary>
public class QbmErrorCodeTests
{
    [Fact]
    public void Every_runtime_error_is_the_error_code_of_the_same_name_and_number()
    {
        foreach (var e in Enum.GetValues<QbmError>())
        {
            Assert.True(Enum.TryParse<ErrorCode>("Qbm" + e, out var code), $"ErrorCode has no Qbm{e}");
            Assert.Equal((int)code, (int)e);
            Assert.InRange((int)e, 7101, 7120);
        }
    }

    [Fact]
    public void Every_qbm_error_code_exists_in_the_runtime()
    {
        var runtime = Enum.GetValues<QbmError>().Select(e => "Qbm" + e).ToHashSet();
        var core = Enum.GetValues<ErrorCode>().Where(c => c.ToString().StartsWith("Qbm", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(core);
        foreach (var c in core) Assert.Contains(c.ToString(), runtime);
        Assert.All(Enum.GetValues<ErrorCode>().Where(c => (int)c is >= 7101 and <= 7120), c => Assert.True(runtime.Contains(c.ToString()) || c.ToString().StartsWith("Compile", StringComparison.Ordinal)));
    }
}
