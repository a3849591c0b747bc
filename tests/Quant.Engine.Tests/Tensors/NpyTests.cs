using System.Text;
using Quant.Engine;
using Quant.Onnx;
using Quant.TestSupport;

namespace Quant.Engine.Tests.Tensors;

/// <summary>The one .npy reader: the header alone (what calibration data checks read) and whole arrays.</summary>
public class NpyTests
{
    [Fact]
    public void Header_of_a_real_sample_gives_type_and_shape_and_stops_at_the_data()
    {
        var file = TestAssets.Data("ppocr-cls", "cls_0000.npy");
        using var fs = File.OpenRead(file);
        var header = Npy.ReadHeader(fs, file);
        Assert.Equal(ElementType.UInt8, header.Type);
        Assert.Equal([1, 3, 48, 192], header.Shape);
        Assert.Equal(1 * 3 * 48 * 192, fs.Length - fs.Position);
        Assert.Equal(header.Shape, Npy.Read(file).Shape.ToArray());
    }

    [Theory]
    [InlineData("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", "Fortran-order")]
    [InlineData("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", "little-endian")]
    [InlineData("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", "'<c8' is not supported")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, }", "no 'shape' entry")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", "not a tuple of non-negative integers")]
    public void Bad_headers_name_the_file_and_the_problem(string dict, string fragment)
    {
        var bytes = new List<byte> { 0x93 };
        bytes.AddRange(Encoding.ASCII.GetBytes("NUMPY"));
        bytes.AddRange([1, 0, (byte)(dict.Length + 1), 0]);
        bytes.AddRange(Encoding.ASCII.GetBytes(dict + "\n"));
        bytes.AddRange(new byte[8]);
        var e = Assert.Throws<NpyFormatException>(() => Npy.ReadHeader(new MemoryStream(bytes.ToArray()), "x.npy"));
        Assert.StartsWith("x.npy: ", e.Message);
        Assert.Contains(fragment, e.Message);
    }

    [Fact]
    public void Not_npy_and_truncated_files_are_reported()
    {
        Assert.Contains("missing the \\x93NUMPY magic", Assert.Throws<NpyFormatException>(() => Npy.ReadHeader(new MemoryStream(Encoding.ASCII.GetBytes("PK\x03\x04 a zip")), "a.npy")).Message);
        Assert.Contains("truncated", Assert.Throws<NpyFormatException>(() => Npy.ReadHeader(new MemoryStream([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0, 100]), "b.npy")).Message);
    }
}
