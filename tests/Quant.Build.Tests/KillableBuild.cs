using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using Quant.TestSupport;

namespace Quant.Build.Tests;

/// <summary>
/// A <c>dotnet build</c> started in a process group of its own (<c>setsid</c>), so that one SIGKILL to the group takes
/// the whole tree at the same instant: the CLI, the MSBuild nodes, the C# compiler and every <c>quant-check</c> the
/// tasks started — what a power cut or an OOM kill of the build does, with no cleanup code run anywhere.
/// </summary>
public sealed class KillableBuild : IDisposable
{
    private const int SigKill = 9;
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    private KillableBuild(Process process) => _process = process;

    /// <summary>
    /// <c>setsid dotnet ARGS</c> in <paramref name="workDir"/>, with the test host's MSBuild variables dropped and every
    /// long-lived helper off (node reuse, the MSBuild server, the shared compiler server), so nothing outlives the build
    /// outside its group.
    /// </summary>
    public static KillableBuild Start(string workDir, IDictionary<string, string> env, params string[] args)
    {
        var psi = new ProcessStartInfo("setsid")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = workDir,
        };
        psi.ArgumentList.Add("dotnet");
        foreach (var a in args) psi.ArgumentList.Add(a);
        TestAssets.IsolateFromTestHost(psi);
        psi.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        psi.Environment["UseSharedCompilation"] = "false";
        foreach (var (k, v) in env) psi.Environment[k] = v;
        var p = new Process { StartInfo = psi };
        var build = new KillableBuild(p);
        p.OutputDataReceived += (_, e) => build.Append(e.Data);
        p.ErrorDataReceived += (_, e) => build.Append(e.Data);
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return build;
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_output) _output.Append(line).Append('\n');
    }

    public string Output { get { lock (_output) return _output.ToString(); } }
    public TimeSpan Elapsed => _clock.Elapsed;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    /// <summary>Waits until the build's output has a line matching <paramref name="line"/>; false when it ended or <paramref name="timeout"/> passed first.</summary>
    public bool WaitForOutput(Regex line, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (line.IsMatch(Output)) return true;
            if (_process.HasExited) return line.IsMatch(Output);
            Thread.Sleep(10);
        }
        return false;
    }

    /// <summary>Waits up to <paramref name="timeout"/>; true when the build ended by itself.</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout)) return false;
        _process.WaitForExit(); // the output readers have drained
        return true;
    }

    /// <summary>
    /// SIGKILL to the whole group; returns what was running at that instant (one short label per process). Fails when a
    /// process of the build survives or had left the group (a node that would have kept writing after the "kill").
    /// </summary>
    public IReadOnlyList<string> KillTree()
    {
        int group = _process.Id; // setsid made the child its group's leader
        var descendants = Descendants(group);
        var running = descendants.Select(p => Label(p.Pid)).ToList();
        if (kill(-group, SigKill) != 0 && Marshal.GetLastWin32Error() != 3 /* ESRCH: it all ended meanwhile */)
            throw new InvalidOperationException($"kill(-{group}, SIGKILL) failed: errno {Marshal.GetLastWin32Error()}");
        var escaped = descendants.Where(p => p.Group != group).ToList();
        foreach (var p in escaped) kill(p.Pid, SigKill);
        Assert.True(escaped.Count == 0, "processes of the build outside its process group: " + string.Join(", ", escaped.Select(p => Label(p.Pid))));
        Assert.True(_process.WaitForExit(TimeSpan.FromSeconds(30)), "the killed build did not exit");
        var deadline = Stopwatch.StartNew();
        while (Members(group).Count > 0 && deadline.Elapsed < TimeSpan.FromSeconds(30)) Thread.Sleep(50);
        Assert.True(Members(group).Count == 0, "processes of the killed build still run: " + string.Join(", ", Members(group).Select(Label)));
        return running;
    }

    public void Dispose()
    {
        if (!_process.HasExited) KillTree();
        _process.Dispose();
    }

    private readonly record struct ProcInfo(int Pid, int Parent, int Group);

    /// <summary>Every live (not zombie) process, from /proc/PID/stat.</summary>
    private static List<ProcInfo> All()
    {
        var result = new List<ProcInfo>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            string stat;
            try { stat = File.ReadAllText(Path.Combine(dir, "stat")); }
            catch (IOException) { continue; } // ended while listed
            catch (UnauthorizedAccessException) { continue; }
            // "PID (COMM) STATE PPID PGRP ...": COMM may hold spaces and parentheses, so split after the last ')'.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            if (fields[0] == "Z" || fields[0] == "X") continue;
            result.Add(new ProcInfo(pid, int.Parse(fields[1]), int.Parse(fields[2])));
        }
        return result;
    }

    private static List<int> Members(int group) => All().Where(p => p.Group == group).Select(p => p.Pid).ToList();

    /// <summary>The group's leader and everything below it by parent links, whatever group each is in.</summary>
    private static List<ProcInfo> Descendants(int root)
    {
        var all = All();
        var found = new List<ProcInfo>();
        var frontier = new HashSet<int> { root };
        while (frontier.Count > 0)
        {
            var next = all.Where(p => frontier.Contains(p.Pid) || frontier.Contains(p.Parent)).Where(p => found.All(f => f.Pid != p.Pid)).ToList();
            found.AddRange(next);
            frontier = next.Select(p => p.Pid).ToHashSet();
        }
        return found;
    }

    /// <summary>What a process is, from its command line: "quant-check export", "MSBuild node", "csc", "dotnet build".</summary>
    private static string Label(int pid)
    {
        string[] args;
        try { args = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries); }
        catch (IOException) { return "(ended)"; }
        if (args.Any(a => a.EndsWith("quant-check.dll", StringComparison.Ordinal)))
        {
            // The command is the first line of the response file the task wrote.
            var rsp = args.FirstOrDefault(a => a.StartsWith('@'));
            try { return "quant-check " + (rsp is null ? "" : File.ReadLines(rsp[1..]).FirstOrDefault()?.Trim('"')); }
            catch (IOException) { return "quant-check"; }
        }
        if (args.Any(a => a.Contains("nodemode", StringComparison.OrdinalIgnoreCase))) return "MSBuild node";
        if (args.Any(a => a.EndsWith("csc.dll", StringComparison.Ordinal))) return "csc";
        if (args.Length > 0 && args[0] == "setsid") return "setsid";
        return string.Join(' ', args.Take(2).Select(Path.GetFileName));
    }
}
