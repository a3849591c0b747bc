using Quant.Engine;
using Quant.Onnx;

namespace Quant.TestSupport;

/// <summary>The committed real samples, preprocessed as the dataset READMEs say (tests/data/README.md).</summary>
public static class OcrSamples
{
    private static readonly float[] DetMean = [0.485f, 0.456f, 0.406f];
    private static readonly float[] DetStd = [0.229f, 0.224f, 0.225f];

    public static readonly string[] DetFiles = ["000_imageTextN.npy", "005_scenetext01.npy"];
    public static readonly string[] RecFiles = ["calib_0000.npy", "calib_0001.npy", "calib_0002.npy", "calib_0003.npy"];
    public static readonly string[] ClsFiles = ["cls_0000.npy", "cls_0001.npy", "cls_0002.npy", "cls_0003.npy"];

    /// <summary>Det input [1,3,H,W] from sample <paramref name="file"/>, optionally cropped to the top-left HxW.</summary>
    public static Tensor Det(string file, int height = 640, int width = 640) =>
        Normalize(Crop(Npy.Read(TestAssets.Data("ppocr-det", file)), height, width), DetMean, DetStd);

    public static Tensor Rec(string file) => Normalize(Npy.Read(TestAssets.Data("ppocr-rec", file)), [0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f]);
    /// <summary>A dataset sample outside tests/data (maintainers' measurements), preprocessed like <see cref="Det"/>, <see cref="Rec"/>, <see cref="Cls"/>.</summary>
    public static Tensor FromPath(string model, string path) => model switch
    {
        "det" => Normalize(Npy.Read(path), DetMean, DetStd),
        "rec" or "cls" => Normalize(Npy.Read(path), [0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f]),
        _ => throw new ArgumentException($"unknown model {model} (det, rec or cls)"),
    };

    public static Tensor Cls(string file) => Normalize(Npy.Read(TestAssets.Data("ppocr-cls", file)), [0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f]);

    /// <summary>Concatenates [1,...] tensors along the batch axis.</summary>
    public static Tensor Batch(params Tensor[] items)
    {
        var shape = (int[])items[0].Shape.Clone();
        shape[0] = items.Sum(t => t.Shape[0]);
        var data = new float[items.Sum(t => t.Length)];
        int offset = 0;
        foreach (var t in items)
        {
            if (!t.Shape.AsSpan(1).SequenceEqual(items[0].Shape.AsSpan(1))) throw new ArgumentException("batch items differ in shape");
            t.ReadOnlySpan<float>().CopyTo(data.AsSpan(offset));
            offset += t.Length;
        }
        return Tensor.From(data, shape);
    }

    private static Tensor Crop(Tensor u8, int height, int width)
    {
        int c = u8.Shape[1], h = u8.Shape[2], w = u8.Shape[3];
        if (height == h && width == w) return u8;
        var src = u8.ReadOnlySpan<byte>();
        var dst = new byte[c * height * width];
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < height; y++)
                src.Slice((ch * h + y) * w, width).CopyTo(dst.AsSpan((ch * height + y) * width));
        return Tensor.From(dst, 1, c, height, width);
    }

    private static Tensor Normalize(Tensor u8, float[] mean, float[] std)
    {
        if (u8.Type != ElementType.UInt8) throw new ArgumentException("samples are uint8");
        var src = u8.ReadOnlySpan<byte>();
        var dst = new float[src.Length];
        int plane = u8.Shape[2] * u8.Shape[3];
        for (int i = 0; i < src.Length; i++)
        {
            int ch = i / plane % u8.Shape[1];
            dst[i] = (src[i] / 255f - mean[ch]) / std[ch];
        }
        return Tensor.From(dst, u8.Shape);
    }
}
