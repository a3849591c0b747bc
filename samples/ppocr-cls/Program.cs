// The app side of the sample: the build put the quantized model next to this program.
var qat = Path.Combine(AppContext.BaseDirectory, "cls.qat.onnx");
if (!File.Exists(qat))
{
    Console.Error.WriteLine($"{qat} is missing: build with Quant.Build (QuantBuildEnabled=true)");
    return 1;
}
Console.WriteLine($"quantized model: {qat} ({new FileInfo(qat).Length:N0} bytes)");
return 0;
