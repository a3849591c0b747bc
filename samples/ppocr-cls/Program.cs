// The app side of the sample: the build put the quantized models next to this program — cls.qat.onnx for
// ONNX Runtime and cls.qbm, the compiled program Quant.Runtime loads.
int missing = 0;
foreach (var file in new[] { "cls.qat.onnx", "cls.qbm" })
{
    var path = Path.Combine(AppContext.BaseDirectory, file);
    if (File.Exists(path))
    {
        Console.WriteLine($"quantized model: {path} ({new FileInfo(path).Length:N0} bytes)");
        continue;
    }
    Console.Error.WriteLine($"{path} is missing: build with Quant.Build (QuantBuildEnabled=true)");
    missing++;
}
return missing == 0 ? 0 : 1;
