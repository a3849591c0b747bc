using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Quant.Core.Config;
using Quant.Core.Diagnostics;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Data;

/// <summary>
/// The calibration samples of a config for one model, streamed as batches of model inputs.
/// <para>
/// A sample is one file per model input (the i-th file of each input's sorted glob matches). A stored array
/// of rank R-1 for a rank-R model input gets a leading batch axis of 1; an array of rank R keeps its leading
/// axis. Files are only opened (headers, to validate shapes and plan batches) when the set is created and read
/// when a batch is enumerated, so memory stays at one batch however many samples there are.
/// </para>
/// <para>
/// Batching: up to <c>calibration.batch_size</c> samples are concatenated on axis 0. Only samples whose
/// (preprocessed) shapes are equal on every input can share a batch, so samples are grouped by shape, in order
/// of first appearance; the last batch of a group may be smaller.
/// </para>
/// </summary>
public sealed class CalibrationDataSet
{
    private readonly QuantConfig _config;
    private readonly InputPlan[] _inputs;
    private readonly int[][] _batches;
    private string? _fingerprint;

    private sealed class InputPlan
    {
        public required ValueInfo Model { get; init; }
        public required InputConfig Config { get; init; }
        /// <summary>Per sample: file, the glob position that matched it, format, and the shape after preprocessing (NCHW).</summary>
        public required SampleFile[] Files { get; init; }
        public ElementType Output => Model.Type is ElementType.Undefined ? ElementType.Float : Model.Type;
        public bool Preprocess => Output is ElementType.Float or ElementType.Float16;
    }

    private readonly record struct SampleFile(string Path, SourcePosition Glob, SampleFiles.Format Format, StoredArray Stored, int[] Shape);

    private CalibrationDataSet(QuantConfig config, InputPlan[] inputs, int[][] batches)
    {
        _config = config;
        _inputs = inputs;
        _batches = batches;
        var files = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int s = 0; s < SampleCount; s++)
            foreach (var i in inputs)
                if (seen.Add(i.Files[s].Path)) files.Add(i.Files[s].Path);
        Files = files;
    }

    /// <summary>Model input names, in the model's order.</summary>
    public IReadOnlyList<string> InputNames => _inputs.Select(i => i.Model.Name).ToArray();

    public int SampleCount => _inputs.Length == 0 ? 0 : _inputs[0].Files.Length;

    /// <summary>Every data file the set reads (full paths, first use order): the dependency list for incremental builds.</summary>
    public IReadOnlyList<string> Files { get; }

    /// <summary>The sample indices of each batch, in enumeration order.</summary>
    public IReadOnlyList<IReadOnlyList<int>> BatchSamples => _batches;

    /// <summary>A short name per sample (the first input's file relative to the config folder) for reports.</summary>
    public string SampleLabel(int sample) => Relative(_inputs[0].Files[sample].Path);

    /// <summary>
    /// Plans the data set for a model's runtime inputs: expands globs, checks every sample's stored type and
    /// shape against the model input and groups samples into batches. Errors are <see cref="QuantException"/>s
    /// positioned in the config (QB1008/QB1009 input names, QB2001 empty glob, QB2002 shape, QB2003 type,
    /// QB2004 unreadable file).
    /// </summary>
    public static CalibrationDataSet Create(QuantConfig config, IEnumerable<ValueInfo> modelInputs)
    {
        var model = modelInputs.ToList();
        foreach (var (name, ic) in config.Inputs)
            if (!model.Any(m => m.Name == name))
            {
                var near = YamlReader.Nearest(name, model.Select(m => m.Name));
                throw new QuantException(ErrorCode.ConfigUnknownInput, ic.Position,
                    $"inputs.{name}: the model has no input '{name}'" + (near is null ? "" : $"; did you mean '{near}'?") +
                    $" Model inputs: {string.Join(", ", model.Select(m => m.Name))}");
            }
        foreach (var m in model)
            if (!config.Inputs.ContainsKey(m.Name))
                throw new QuantException(ErrorCode.ConfigMissingInput, SourcePosition.InFile(config.SourceFile),
                    $"model input '{m.Name}' ({m}) has no calibration data; add inputs: {{{m.Name}: {{data: \"calib/*.npy\"}}}}");

        var matched = model.Select(m => Expand(config, config.Inputs[m.Name])).ToList();
        if (matched.Count == 0) return new CalibrationDataSet(config, [], []);
        for (int i = 1; i < matched.Count; i++)
            if (matched[i].Count != matched[0].Count)
                throw new QuantException(ErrorCode.ConfigInvalidValue, config.Inputs[model[i].Name].Position,
                    $"inputs.{model[i].Name} matches {matched[i].Count} files but inputs.{model[0].Name} matches {matched[0].Count}; a sample takes one file per input");
        int count = Math.Min(matched[0].Count, config.Calibration.Samples ?? int.MaxValue);

        var plans = new InputPlan[model.Count];
        for (int i = 0; i < model.Count; i++)
        {
            var ic = config.Inputs[model[i].Name];
            var files = new SampleFile[count];
            for (int s = 0; s < count; s++) files[s] = Inspect(config, model[i], ic, matched[i][s].Path, matched[i][s].Glob);
            plans[i] = new InputPlan { Model = model[i], Config = ic, Files = files };
            if (count > 0) CheckPreprocessing(plans[i]);
        }
        return new CalibrationDataSet(config, plans, PlanBatches(config, plans, count));
    }

    private static List<(string Path, SourcePosition Glob)> Expand(QuantConfig config, InputConfig ic)
    {
        var result = new List<(string, SourcePosition)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int g = 0; g < ic.Data.Count; g++)
        {
            var at = g < ic.DataPositions.Count ? ic.DataPositions[g] : ic.Position;
            var files = FileGlob.Expand(config.BaseDirectory, ic.Data[g]);
            if (files.Count == 0)
                throw new QuantException(ErrorCode.DataGlobMatchesNothing, at,
                    $"inputs.{ic.Name}.data: '{ic.Data[g]}' matches no file (relative to {config.BaseDirectory})");
            foreach (var f in files)
                if (seen.Add(f)) result.Add((f, at));
        }
        return result;
    }

    private static SampleFile Inspect(QuantConfig config, ValueInfo model, InputConfig ic, string path, SourcePosition at)
    {
        var rel = Relative(config, path);
        var format = SampleFiles.FormatOf(path) ?? throw new QuantException(ErrorCode.DataUnreadable, at,
            $"inputs.{ic.Name}.data matches '{rel}', which is not .npy, .npz, .bin or an image ({string.Join(", ", ImageFiles.Extensions)}); narrow the glob");
        if (format == SampleFiles.Format.Bin && (ic.StoredType is null || ic.Shape is null))
            throw new QuantException(ErrorCode.ConfigInvalidValue, at,
                $"inputs.{ic.Name}.data matches the raw file '{rel}': give inputs.{ic.Name}.dtype and inputs.{ic.Name}.shape (raw files have no header)");
        CheckImageKeys(ic, format, rel, at);
        StoredArray stored;
        if (format == SampleFiles.Format.Image)
            stored = ImageCall(rel, at, () => new StoredArray(ElementType.UInt8, ImagePipeline.Shape(ic.Image, ImageFiles.Peek(path, $"'{rel}'"), $"'{rel}'")));
        else try { stored = SampleFiles.Peek(path, format, ic.Name, ic.StoredType, ic.Shape); }
        catch (SampleSizeException e) { throw new QuantException(ErrorCode.DataShapeMismatch, at, $"'{rel}': {e.Message}", e); }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or FormatException or NpyFormatException)
        {
            throw new QuantException(ErrorCode.DataUnreadable, at, $"cannot read '{rel}': {e.Message}", e);
        }

        var output = model.Type is ElementType.Undefined ? ElementType.Float : model.Type;
        bool preprocess = output is ElementType.Float or ElementType.Float16;
        if (ic.StoredType is { } declared && declared != stored.Type)
            throw new QuantException(ErrorCode.DataTypeMismatch, at,
                $"'{rel}' stores {stored.Type.DTypeName()} but inputs.{ic.Name}.dtype says {declared.DTypeName()}");
        if (!preprocess && stored.Type != output)
            throw new QuantException(ErrorCode.DataTypeMismatch, at,
                $"'{rel}' stores {stored.Type.DTypeName()} but model input '{model.Name}' is {output.DTypeName()} (only float inputs are converted)");
        if (preprocess && stored.Type is ElementType.String or ElementType.Bool)
            throw new QuantException(ErrorCode.DataTypeMismatch, at,
                $"'{rel}' stores {stored.Type.DTypeName()}, which cannot become the float input '{model.Name}'");

        var shape = stored.Shape;
        var expected = model.Shape;
        if (expected is not null && shape.Length == expected.Length - 1) shape = [1, .. shape];
        // Batches stack samples on axis 0, which a 0-d array does not have (found by build/fuzz.sh: an .npz scalar crashed the batching).
        if (shape.Length == 0)
            throw new QuantException(ErrorCode.DataShapeMismatch, at,
                $"'{rel}' holds a single {stored.Type.DTypeName()} value (shape []), not a sample; save the array with its axes (e.g. [1, 3, 48, 192])");
        if (ic.Layout == DataLayout.NHWC)
        {
            if (shape.Length < 3)
                throw new QuantException(ErrorCode.DataShapeMismatch, at, $"'{rel}' has shape [{Join(stored.Shape)}]; layout NHWC needs at least a batch, a spatial and a channel axis");
            shape = [shape[0], shape[^1], .. shape[1..^1]];
        }
        if (expected is not null)
        {
            string Problem()
            {
                if (shape.Length != expected.Length) return $"rank {shape.Length}, expected {expected.Length}";
                for (int d = 1; d < shape.Length; d++)
                    if (expected[d].IsKnown && expected[d].Value != shape[d]) return $"dim {d} is {shape[d]}, expected {expected[d].Value}";
                return "";
            }
            var problem = Problem();
            if (problem.Length > 0)
            {
                var after = ic.Layout == DataLayout.NHWC ? $" (NCHW [{Join(shape)}] after the NHWC transpose)" : "";
                throw new QuantException(ErrorCode.DataShapeMismatch, at,
                    $"'{rel}' holds {stored.Type.DTypeName()} [{Join(stored.Shape)}]{after}, which does not fit model input '{model.Name}' [{string.Join(",", expected)}]: {problem}");
            }
        }
        return new SampleFile(path, at, format, stored, shape);
    }

    /// <summary>
    /// Image keys need image files and image files need <c>color</c>, so an input's files are all arrays or all
    /// images; layout and shape describe stored arrays and are rejected for images.
    /// </summary>
    private static void CheckImageKeys(InputConfig ic, SampleFiles.Format format, string rel, SourcePosition at)
    {
        var image = ic.Image;
        if (format != SampleFiles.Format.Image)
        {
            if (image.Any)
                throw new QuantException(ErrorCode.ConfigInvalidValue, image.FirstKeyPosition,
                    $"inputs.{ic.Name}: color, resize, interpolation, crop and pad apply to image files, but inputs.{ic.Name}.data matches the array file '{rel}'; " +
                    "remove them (arrays are used as stored) or point data at images only");
            return;
        }
        if (image.Color is null)
            throw new QuantException(ErrorCode.ConfigInvalidValue, at,
                $"inputs.{ic.Name}.data matches the image '{rel}': give inputs.{ic.Name}.color (bgr, rgb or gray), the channel order the model expects");
        if (ic.LayoutPosition.Line > 0)
            throw new QuantException(ErrorCode.ConfigInvalidValue, ic.LayoutPosition,
                $"inputs.{ic.Name}.layout describes stored arrays, but '{rel}' is an image (decoded HWC, always given to the model as NCHW); remove layout");
        if (ic.ShapePosition.Line > 0)
            throw new QuantException(ErrorCode.ConfigInvalidValue, ic.ShapePosition,
                $"inputs.{ic.Name}.shape describes raw .bin files, but '{rel}' is an image (its size comes from the file, resize, crop and pad); remove shape");
    }

    /// <summary>Runs an image read, turning its problems into QB2004 (unreadable) and QB2002 (size) at the glob.</summary>
    private static T ImageCall<T>(string rel, SourcePosition at, Func<T> read)
    {
        try { return read(); }
        catch (SampleSizeException e) { throw new QuantException(ErrorCode.DataShapeMismatch, at, e.Message, e); }
        catch (InvalidDataException e) { throw new QuantException(ErrorCode.DataUnreadable, at, e.Message, e); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new QuantException(ErrorCode.DataUnreadable, at, $"cannot read '{rel}': {e.Message}", e);
        }
    }

    /// <summary>Checks preprocessing settings against the (first) sample's channel count; all samples share it by the model check.</summary>
    private static void CheckPreprocessing(InputPlan p)
    {
        var ic = p.Config;
        if (!p.Preprocess)
        {
            if (ic.HasPreprocessing || ic.Layout != DataLayout.NCHW)
            {
                var at = ic.ScalePosition.Line > 0 ? ic.ScalePosition : ic.MeanPosition.Line > 0 ? ic.MeanPosition : ic.StdPosition.Line > 0 ? ic.StdPosition
                    : ic.ChannelOrderPosition.Line > 0 ? ic.ChannelOrderPosition : ic.LayoutPosition.Line > 0 ? ic.LayoutPosition : ic.Position;
                throw new QuantException(ErrorCode.ConfigInvalidValue, at,
                    $"inputs.{ic.Name}: model input '{p.Model.Name}' is {p.Output.DTypeName()}; scale, mean, std, channel_order and layout only apply to float inputs");
            }
            return;
        }
        foreach (var f in p.Files)
        {
            int channels = f.Shape.Length > 1 ? f.Shape[1] : 1;
            if (ic.Mean is { Length: > 1 } mean && mean.Length != channels)
                throw new QuantException(ErrorCode.ConfigInvalidValue, ic.MeanPosition,
                    $"inputs.{ic.Name}.mean has {mean.Length} values but '{Path.GetFileName(f.Path)}' has {channels} channels");
            if (ic.Std is { Length: > 1 } std && std.Length != channels)
                throw new QuantException(ErrorCode.ConfigInvalidValue, ic.StdPosition,
                    $"inputs.{ic.Name}.std has {std.Length} values but '{Path.GetFileName(f.Path)}' has {channels} channels");
            if (ic.ChannelOrder != ChannelOrder.Keep && channels != 3)
                throw new QuantException(ErrorCode.ConfigInvalidValue, ic.ChannelOrderPosition,
                    $"inputs.{ic.Name}.channel_order swaps B and R but '{Path.GetFileName(f.Path)}' has {channels} channels, not 3");
        }
    }

    private static int[][] PlanBatches(QuantConfig config, InputPlan[] inputs, int count)
    {
        int size = config.Calibration.BatchSize;
        var groups = new List<(string Key, List<int> Samples)>();
        for (int s = 0; s < count; s++)
        {
            var key = string.Join(";", inputs.Select(i => Join(i.Files[s].Shape)));
            var g = groups.FindIndex(x => x.Key == key);
            if (g < 0) groups.Add((key, [s]));
            else groups[g].Samples.Add(s);
        }
        var batches = groups.SelectMany(g => g.Samples.Chunk(size)).ToArray();
        foreach (var i in inputs)
        {
            if (i.Model.Shape is not { Length: > 0 } shape || !shape[0].IsKnown) continue;
            foreach (var b in batches)
            {
                long total = b.Sum(s => (long)i.Files[s].Shape[0]);
                if (total != shape[0].Value)
                {
                    var at = config.Calibration.BatchSizePosition.Line > 0 ? config.Calibration.BatchSizePosition : i.Files[b[0]].Glob;
                    throw new QuantException(ErrorCode.DataShapeMismatch, at,
                        $"model input '{i.Model.Name}' has a fixed batch of {shape[0].Value}, but a batch of {b.Length} sample(s) " +
                        $"({string.Join(", ", b.Select(s => Relative(config, i.Files[s].Path)))}) stacks to {total}; set calibration.batch_size so they match");
                }
            }
        }
        return batches;
    }

    /// <summary>The batches, read lazily: each enumeration step reads only that batch's files.</summary>
    public IEnumerable<IReadOnlyDictionary<string, Tensor>> Batches()
    {
        foreach (var b in _batches) yield return ReadBatch(b);
    }

    /// <summary>Every sample on its own (a batch of one), in sample order, e.g. for per-sample accuracy tables.</summary>
    public IEnumerable<IReadOnlyDictionary<string, Tensor>> Samples()
    {
        for (int s = 0; s < SampleCount; s++) yield return ReadBatch([s]);
    }

    private Dictionary<string, Tensor> ReadBatch(int[] samples)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var p in _inputs)
        {
            var first = p.Files[samples[0]].Shape;
            int[] shape = [samples.Sum(s => p.Files[s].Shape[0]), .. first[1..]];
            // Allocated once the first sample's data has been read: the sizes so far are the headers' claims, and a file
            // that claims more than it holds must fail before the batch is made for it (found by build/fuzz.sh).
            Tensor? batch = null;
            int offset = 0;
            foreach (var s in samples)
            {
                var f = p.Files[s];
                Tensor stored;
                if (f.Format == SampleFiles.Format.Image)
                    stored = ImageCall(Relative(f.Path), f.Glob, () => ImagePipeline.Read(f.Path, $"'{Relative(f.Path)}'", p.Config.Image));
                else try { stored = SampleFiles.Read(f.Path, f.Format, p.Config.Name, p.Config.StoredType, p.Config.Shape); }
                catch (SampleSizeException e) { throw new QuantException(ErrorCode.DataShapeMismatch, f.Glob, $"'{Relative(f.Path)}': {e.Message}", e); }
                catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or NpyFormatException)
                {
                    throw new QuantException(ErrorCode.DataUnreadable, f.Glob, $"cannot read '{Relative(f.Path)}': {e.Message}", e);
                }
                if (stored.Type != f.Stored.Type || !stored.Shape.AsSpan().SequenceEqual(f.Stored.Shape))
                    throw new QuantException(ErrorCode.DataUnreadable, f.Glob, $"'{Relative(f.Path)}' changed while calibration was reading the data set");
                batch ??= BatchBuffer(p, shape, samples.Length, f.Glob);
                int n = Tensor.ElementCount(f.Shape);
                if (p.Output == ElementType.Float)
                    Preprocessor.Apply(stored, p.Config, f.Shape, batch.Span<float>().Slice(offset, n));
                else if (p.Output == ElementType.Float16)
                {
                    var tmp = new float[n];
                    Preprocessor.Apply(stored, p.Config, f.Shape, tmp);
                    var dst = batch.Span<Half>().Slice(offset, n);
                    for (int k = 0; k < n; k++) dst[k] = (Half)tmp[k];
                }
                else
                {
                    int bytes = n * p.Output.SizeOf();
                    stored.Bytes().CopyTo(batch.Bytes().Slice(offset * p.Output.SizeOf(), bytes));
                }
                offset += n;
            }
            result[p.Model.Name] = batch!;
        }
        return result;
    }

    private Tensor BatchBuffer(InputPlan p, int[] shape, int samples, SourcePosition glob)
    {
        try { return Tensor.Zeros(p.Output, shape); }
        catch (ArgumentException)
        {
            var at = _config.Calibration.BatchSizePosition.Line > 0 ? _config.Calibration.BatchSizePosition : glob;
            throw new QuantException(ErrorCode.DataShapeMismatch, at,
                $"a batch of {samples} sample(s) of input '{p.Model.Name}' stacks to [{Join(shape)}], more elements than one tensor holds (2^31 - 1); lower calibration.batch_size");
        }
    }

    /// <summary>
    /// SHA-256 (hex) over each input's preprocessing settings (with the image keys and the decoder's version) and,
    /// for every file read, its path relative to the config folder, its size and its contents: the calibration cache
    /// key's data part. Computed once (reads every file).
    /// </summary>
    public string Fingerprint()
    {
        if (_fingerprint is not null) return _fingerprint;
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string s) => hash.AppendData(Encoding.UTF8.GetBytes(s + "\n"));
        Add("quant-calibration-data v1");
        foreach (var p in _inputs.OrderBy(p => p.Model.Name, StringComparer.Ordinal))
        {
            var c = p.Config;
            Add(FormattableString.Invariant(
                $"input {c.Name} dtype={c.StoredType?.DTypeName()} shape={(c.Shape is null ? "" : Join(c.Shape))} layout={c.Layout} scale={c.Scale:R}/{c.ScaleDivisor:R} mean={Floats(c.Mean)} std={Floats(c.Std)} order={c.ChannelOrder} out={p.Output.DTypeName()}"));
            if (c.Image.Any) Add(ImagePipeline.Describe(c.Image));
            foreach (var f in p.Files) Add($"sample {Relative(f.Path)}");
        }
        var buffer = new byte[1 << 16];
        foreach (var file in Files)
        {
            using var fs = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read);
            Add(FormattableString.Invariant($"file {Relative(file)} {fs.Length}"));
            int read;
            while ((read = fs.Read(buffer)) > 0) hash.AppendData(buffer, 0, read);
        }
        return _fingerprint = Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static string Floats(float[]? v) => v is null ? "" : string.Join(",", v.Select(x => x.ToString("R", CultureInfo.InvariantCulture)));

    private string Relative(string path) => Relative(_config, path);

    private static string Relative(QuantConfig config, string path) => Path.GetRelativePath(config.BaseDirectory, path).Replace('\\', '/');

    private static string Join(int[] shape) => string.Join(",", shape);
}

internal static class DTypeNames
{
    /// <summary>The element type as the config's dtype spells it (float32, float64; ONNX says float, double).</summary>
    public static string DTypeName(this ElementType t) => t switch
    {
        ElementType.Float => "float32",
        ElementType.Double => "float64",
        _ => t.OnnxName(),
    };
}
