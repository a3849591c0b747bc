using Spectre.Console;

namespace Quant.Check.Output;

/// <summary>
/// Who reads quant-check's output. A person at a terminal gets live progress bars and drawn tables; anything else
/// (a redirected stream: a log file, a pipe, MSBuild's ToolTask, which reads the tool's lines to find its
/// diagnostics) or a CI job (the <c>CI</c> variable) gets plain text lines that read well in a log.
/// Diagnostics never go through here: they are written as single canonical lines (CliErrors), whatever the mode.
/// </summary>
internal static class Terminal
{
    /// <summary>Plain tables do not wrap at the 80 columns Spectre assumes for a redirected stream.</summary>
    private const int PlainWidth = 400;

    private static readonly Lazy<IAnsiConsole> _out = new(() => Create(Console.Out, StdoutInteractive));
    private static readonly Lazy<IAnsiConsole> _error = new(() => Create(Console.Error, StderrInteractive));

    /// <summary>CI systems set <c>CI</c> (to true, 1 or a name); an empty, 0 or false value does not count.</summary>
    public static bool IsCi(string? value) =>
        value is { Length: > 0 } v && v != "0" && !v.Equals("false", StringComparison.OrdinalIgnoreCase);

    public static bool StdoutInteractive => !Console.IsOutputRedirected && !IsCi(Environment.GetEnvironmentVariable("CI"));
    public static bool StderrInteractive => !Console.IsErrorRedirected && !IsCi(Environment.GetEnvironmentVariable("CI"));

    /// <summary>Results: stdout.</summary>
    public static IAnsiConsole Out => _out.Value;

    /// <summary>Progress: stderr, so that stdout holds only results.</summary>
    public static IAnsiConsole Error => _error.Value;

    public static IAnsiConsole Create(TextWriter writer, bool interactive)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = interactive ? InteractionSupport.Yes : InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        if (!interactive) console.Profile.Width = PlainWidth;
        return console;
    }
}
