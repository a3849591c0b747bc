namespace Quant.Onnx;

/// <summary>
/// External-data locations are relative paths inside the model's folder. Anything that would read
/// outside it (absolute paths, "..", links pointing out) is refused: a model file must not be able
/// to make the toolchain read arbitrary files.
/// </summary>
public static class ExternalDataPath
{
    public static string Resolve(string modelDirectory, string location, string modelName, string where)
    {
        var root = Path.GetFullPath(modelDirectory);
        if (location.Length == 0 || Path.IsPathRooted(location) || location.Contains('\0') || location.Contains(':'))
            throw Escape(modelName, where, location);
        var full = Path.GetFullPath(Path.Combine(root, location));
        if (!IsUnder(full, root))
            throw Escape(modelName, where, location);
        // A link anywhere on the way (the file itself or a folder) may still point out of the folder,
        // so compare the fully resolved paths; the model folder itself may legitimately be reached through a link.
        string realRoot, realFull;
        try
        {
            realRoot = RealPath(root);
            realFull = RealPath(full);
        }
        catch (IOException e)
        {
            throw new OnnxFormatException($"{modelName}: {where} external data '{location}' cannot be resolved: {e.Message}", e);
        }
        if (!IsUnder(realFull, realRoot))
            throw Escape(modelName, where, location);
        if (!File.Exists(full))
            throw new OnnxFormatException($"{modelName}: {where} is stored in '{location}', which does not exist next to the model; copy the data file into the model's folder");
        return full;
    }

    private static bool IsUnder(string path, string root)
    {
        var rootWithSep = root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar;
        return path.StartsWith(rootWithSep, StringComparison.Ordinal);
    }

    /// <summary>The path with every symbolic link along it resolved (components that do not exist are kept as they are).</summary>
    private static string RealPath(string path, int depth = 0)
    {
        // Bounded: a link loop must not hang or overflow the stack.
        if (depth > 32) throw new IOException($"too many levels of symbolic links resolving '{path}'");
        var full = Path.GetFullPath(path);
        var rootPart = Path.GetPathRoot(full)!;
        var parts = full[rootPart.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        var current = rootPart;
        foreach (var part in parts)
        {
            var next = Path.Combine(current, part);
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            if (info.LinkTarget is { } target)
            {
                // Relative targets are relative to the link's folder; the target may itself sit under links.
                next = RealPath(Path.GetFullPath(Path.Combine(current, target)), depth + 1);
            }
            current = next;
        }
        return current;
    }

    private static OnnxFormatException Escape(string modelName, string where, string location) =>
        new($"{modelName}: {where} points to external data '{location}' outside the model's folder; external data files must sit in the model's folder or below it");
}
