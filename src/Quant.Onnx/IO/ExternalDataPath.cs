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
        if (Path.IsPathRooted(location) || location.Contains('\0'))
            throw Escape(modelName, where, location);
        var full = Path.GetFullPath(Path.Combine(root, location));
        var rootWithSep = root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar;
        if (!full.StartsWith(rootWithSep, StringComparison.Ordinal))
            throw Escape(modelName, where, location);
        // A link inside the folder may still point out of it.
        var target = new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName;
        if (target is not null && !Path.GetFullPath(target).StartsWith(rootWithSep, StringComparison.Ordinal))
            throw Escape(modelName, where, location);
        if (!File.Exists(full))
            throw new OnnxFormatException($"{modelName}: {where} is stored in '{location}', which does not exist next to the model; copy the data file into the model's folder");
        return full;
    }

    private static OnnxFormatException Escape(string modelName, string where, string location) =>
        new($"{modelName}: {where} points to external data '{location}' outside the model's folder; external data files must sit in the model's folder or below it");
}
