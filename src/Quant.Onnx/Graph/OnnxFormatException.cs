namespace Quant.Onnx;

/// <summary>
/// A model file that cannot be read or is not valid ONNX. The message names the file and,
/// where there is one, the node or tensor at fault, and says what would fix it.
/// </summary>
public sealed class OnnxFormatException : Exception
{
    public OnnxFormatException(string message, Exception? inner = null) : base(message, inner) { }
}
