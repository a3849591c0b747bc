using System.Text;

namespace Quant.Core.Diagnostics;

/// <summary>Writes text artifacts atomically (temp file in the same folder, then rename), UTF-8 without BOM, '\n' line ends.</summary>
public static class AtomicText
{
    public static void Write(string path, string text)
    {
        var full = Path.GetFullPath(path);
        var temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        try
        {
            File.WriteAllText(temp, text.ReplaceLineEndings("\n"), new UTF8Encoding(false));
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }
}
