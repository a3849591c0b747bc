using System.Diagnostics;
using System.Globalization;

namespace Quant.Core.Diagnostics;

/// <summary>
/// One writer per model folder at a time: an exclusive OS lock on <c>NAME.lock</c> beside the model's artifacts,
/// held while a command reads and writes them. Two builds of the same project (an IDE and a terminal), or two
/// <c>quant-check</c> runs on one output folder, take turns instead of interleaving their writes.
/// <para>
/// The lock is the open file itself (<see cref="FileShare.None"/>: an exclusive <c>flock</c> on Unix, a sharing
/// mode on Windows), never the file's existence: the OS drops it when the process ends however it ends, so a
/// killed build leaves no stale lock behind. The file is never deleted — deleting it would let a waiter that had
/// opened the old file and a newcomer that created a new one both believe they hold the lock.
/// </para>
/// </summary>
public sealed class ModelLock : IDisposable
{
    /// <summary>Environment variable: how many seconds a command waits for another one's lock (default <see cref="DefaultTimeout"/>).</summary>
    public const string TimeoutVariable = "QUANT_LOCK_TIMEOUT";
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(10);
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(200);

    private readonly FileStream _file;
    public string Path { get; }

    private ModelLock(FileStream file, string path) { _file = file; Path = path; }

    /// <summary>The lock file of model <paramref name="name"/> in <paramref name="directory"/>.</summary>
    public static string FileOf(string directory, string name) => System.IO.Path.Combine(System.IO.Path.GetFullPath(directory), name + ".lock");

    /// <summary>
    /// Takes the lock, waiting while another process holds it: <paramref name="waiting"/> is told once, then after
    /// <paramref name="timeout"/> (null: <see cref="TimeoutFromEnvironment"/>) a QB6021 error names the lock file.
    /// </summary>
    public static ModelLock Acquire(string directory, string name, Action<string>? waiting = null, TimeSpan? timeout = null, CancellationToken cancel = default)
    {
        Directory.CreateDirectory(directory);
        var path = FileOf(directory, name);
        var limit = timeout ?? TimeoutFromEnvironment();
        var clock = Stopwatch.StartNew();
        bool told = false;
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            if (TryOpen(path) is { } file) return new ModelLock(file, path);
            if (clock.Elapsed >= limit)
                throw new QuantException(ErrorCode.BuildModelLocked, SourcePosition.InFile(path),
                    $"another build or quant-check run has held the lock of '{name}' for {limit.TotalSeconds.ToString("F0", CultureInfo.InvariantCulture)} s; " +
                    $"wait for it to finish (or stop it) and build again, or wait longer with {TimeoutVariable}=SECONDS (MSBuild: QuantLockTimeout). " +
                    "The OS releases the lock when that process exits, so a build that was killed does not hold it");
            if (!told)
            {
                waiting?.Invoke($"waiting for another build of {name} in {directory} (lock {path}); up to {limit.TotalSeconds.ToString("F0", CultureInfo.InvariantCulture)} s");
                told = true;
            }
            if (!cancel.CanBeCanceled) Thread.Sleep(Poll);
            else if (cancel.WaitHandle.WaitOne(Poll)) cancel.ThrowIfCancellationRequested();
        }
    }

    /// <summary><see cref="TimeoutVariable"/> in seconds (0 or more); unset or empty: <see cref="DefaultTimeout"/>; anything else is QB6021.</summary>
    public static TimeSpan TimeoutFromEnvironment()
    {
        var text = Environment.GetEnvironmentVariable(TimeoutVariable)?.Trim();
        if (string.IsNullOrEmpty(text)) return DefaultTimeout;
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s >= 0 && s < 1e7) return TimeSpan.FromSeconds(s);
        throw new QuantException(ErrorCode.BuildModelLocked, SourcePosition.InFile(TimeoutVariable),
            $"'{text}' is not a number of seconds to wait for another build's lock; give 0 or more (MSBuild: QuantLockTimeout), or leave it unset for {DefaultTimeout.TotalSeconds:F0}");
    }

    /// <summary>The open, locked file; null when another process holds it. Other failures (no permission, ...) are errors.</summary>
    private static FileStream? TryOpen(string path)
    {
        try
        {
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (IsHeldElsewhere(e))
        {
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new QuantException(ErrorCode.BuildModelLocked, SourcePosition.InFile(path), $"cannot open the lock file: {e.Message}", e);
        }
    }

    /// <summary>
    /// A sharing violation (Windows: ERROR_SHARING_VIOLATION / ERROR_LOCK_VIOLATION) or, on Unix, the plain IOException
    /// .NET throws when the exclusive lock is taken (its HResult is the errno, which differs between systems); a
    /// missing folder or a too-long path are IOException subclasses and stay errors.
    /// </summary>
    private static bool IsHeldElsewhere(IOException e) =>
        OperatingSystem.IsWindows() ? (e.HResult & 0xFFFF) is 32 or 33 : e.GetType() == typeof(IOException);

    public void Dispose() => _file.Dispose();
}
