using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using OrtSession = Microsoft.ML.OnnxRuntime.InferenceSession;
using SessionOptions = Microsoft.ML.OnnxRuntime.SessionOptions;
using Quant.Core.Diagnostics;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.DeploymentRuntime;

/// <summary>How much of its graph rewriting ONNX Runtime does before running a model.</summary>
public enum OrtOptimization
{
    /// <summary>The model as written, plain kernels: the reference mode (QDQ pairs run as Q and DQ).</summary>
    Disabled,
    Basic,
    Extended,
    /// <summary>What users' deployments run: Q/DQ groups become fused integer kernels (QLinearConv, ...).</summary>
    All,
}

/// <summary>
/// The one way the toolchain and its tests run ONNX Runtime (the users' deployment runtime and our oracle),
/// in process through the Microsoft.ML.OnnxRuntime package. One session per model; runs are sequential and
/// single-inter-op-threaded so results do not depend on scheduling. Failures become positioned QB3xxx diagnostics
/// naming the model file.
/// </summary>
public sealed class OrtRunner : IDisposable
{
    private readonly OrtSession _session;
    private readonly string _path;

    /// <param name="modelPath">An .onnx file (external data beside it is found by ONNX Runtime).</param>
    /// <param name="optimization">Graph optimization level.</param>
    /// <param name="threads">Intra-op threads (0: ONNX Runtime's default).</param>
    public OrtRunner(string modelPath, OrtOptimization optimization = OrtOptimization.All, int threads = 1)
    {
        _path = modelPath;
        if (!File.Exists(modelPath))
            throw new QuantException(ErrorCode.ModelUnreadable, SourcePosition.InFile(modelPath), "model file not found");
        EnsureLoaded(modelPath);
        using var options = new SessionOptions
        {
            GraphOptimizationLevel = optimization switch
            {
                OrtOptimization.Disabled => GraphOptimizationLevel.ORT_DISABLE_ALL,
                OrtOptimization.Basic => GraphOptimizationLevel.ORT_ENABLE_BASIC,
                OrtOptimization.Extended => GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                _ => GraphOptimizationLevel.ORT_ENABLE_ALL,
            },
            IntraOpNumThreads = Math.Max(0, threads),
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        try { _session = new OrtSession(modelPath, options); }
        catch (OnnxRuntimeException e)
        {
            throw new QuantException(ErrorCode.ModelUnreadable, SourcePosition.InFile(modelPath), $"ONNX Runtime cannot load the model: {OneLine(e.Message)}", e);
        }
        InputNames = _session.InputNames.ToArray();
        OutputNames = _session.OutputNames.ToArray();
        Optimization = optimization;
    }

    public IReadOnlyList<string> InputNames { get; }
    public IReadOnlyList<string> OutputNames { get; }
    public OrtOptimization Optimization { get; }

    /// <summary>The ONNX Runtime version loaded in this process, e.g. "1.32.0".</summary>
    public static string Version => OrtEnv.Instance().GetVersionString();

    /// <summary>Parses <c>disabled|basic|extended|all</c> (case-insensitive); null when it is none of them.</summary>
    public static OrtOptimization? ParseOptimization(string text) => text.ToLowerInvariant() switch
    {
        "disabled" => OrtOptimization.Disabled,
        "basic" => OrtOptimization.Basic,
        "extended" => OrtOptimization.Extended,
        "all" => OrtOptimization.All,
        _ => null,
    };

    /// <summary>Runs the model; returns every model output (or only <paramref name="outputs"/>), copied into engine tensors.</summary>
    public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string>? outputs = null)
    {
        var names = new List<string>(inputs.Count);
        var values = new List<OrtValue>(inputs.Count);
        try
        {
            foreach (var name in InputNames)
            {
                if (!inputs.TryGetValue(name, out var t))
                    throw new QuantException(ErrorCode.ModelRunFailed, SourcePosition.InFile(_path), $"no value given for model input '{name}'");
                names.Add(name);
                values.Add(ToOrt(t, name));
            }
            var wanted = outputs ?? OutputNames;
            using var runOptions = new Microsoft.ML.OnnxRuntime.RunOptions();
            using var results = _session.Run(runOptions, names, values, wanted);
            var map = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            for (int i = 0; i < wanted.Count; i++) map[wanted[i]] = FromOrt(results[i], wanted[i]);
            return map;
        }
        catch (OnnxRuntimeException e)
        {
            throw new QuantException(ErrorCode.ModelRunFailed, SourcePosition.InFile(_path), $"ONNX Runtime failed: {OneLine(e.Message)}", e);
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>
    /// Binds <paramref name="inputs"/> once for timing: each <see cref="TimedRun.Once"/> is one session run on those
    /// inputs (outputs produced and released), so the time is ONNX Runtime's own, without our tensor copies.
    /// </summary>
    public TimedRun BindForTiming(IReadOnlyDictionary<string, Tensor> inputs) => new(this, inputs);

    /// <summary>Inputs bound to a session for repeated, timed runs (see <see cref="BindForTiming"/>).</summary>
    public sealed class TimedRun : IDisposable
    {
        private readonly OrtRunner _runner;
        private readonly List<string> _names = [];
        private readonly List<OrtValue> _values = [];
        private readonly Microsoft.ML.OnnxRuntime.RunOptions _options = new();

        internal TimedRun(OrtRunner runner, IReadOnlyDictionary<string, Tensor> inputs)
        {
            _runner = runner;
            try
            {
                foreach (var name in runner.InputNames)
                {
                    if (!inputs.TryGetValue(name, out var t))
                        throw new QuantException(ErrorCode.ModelRunFailed, SourcePosition.InFile(runner._path), $"no value given for model input '{name}'");
                    _names.Add(name);
                    _values.Add(runner.ToOrt(t, name));
                }
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        /// <summary>One run; returns its wall time in milliseconds.</summary>
        public double Once()
        {
            long t0 = Stopwatch.GetTimestamp();
            try
            {
                using var results = _runner._session.Run(_options, _names, _values, _runner.OutputNames);
            }
            catch (OnnxRuntimeException e)
            {
                throw new QuantException(ErrorCode.ModelRunFailed, SourcePosition.InFile(_runner._path), $"ONNX Runtime failed: {OneLine(e.Message)}", e);
            }
            return Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }

        public void Dispose()
        {
            foreach (var v in _values) v.Dispose();
            _values.Clear();
            _options.Dispose();
        }
    }

    private OrtValue ToOrt(Tensor t, string name)
    {
        if (t.Type is ElementType.String)
            throw new QuantException(ErrorCode.ModelRunFailed, SourcePosition.InFile(_path), $"input '{name}': string tensors are not passed to ONNX Runtime");
        var value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, (Microsoft.ML.OnnxRuntime.Tensors.TensorElementType)(int)t.Type, t.Shape.Select(d => (long)d).ToArray());
        t.Bytes().CopyTo(value.GetTensorMutableRawData());
        return value;
    }

    private Tensor FromOrt(OrtValue value, string name)
    {
        if (!value.IsTensor)
            throw new QuantException(ErrorCode.ModelRunFailed, SourcePosition.InFile(_path), $"output '{name}' is not a tensor");
        var info = value.GetTensorTypeAndShape();
        var type = (ElementType)(int)info.ElementDataType;
        var shape = info.Shape.Select(d => checked((int)d)).ToArray();
        var t = Tensor.Zeros(type, shape);
        if (type == ElementType.String)
        {
            var strings = t.Strings();
            for (int i = 0; i < strings.Length; i++) strings[i] = value.GetStringElement(i);
        }
        else
            value.GetTensorMutableRawData().CopyTo(t.Bytes());
        return t;
    }

    /// <summary>
    /// The native library is loaded on first use; on a platform the package has no library for (the tool packages keep
    /// four, docs/msbuild.md) that is a type-initialization failure, reported as one diagnostic instead of a crash.
    /// </summary>
    private static void EnsureLoaded(string modelPath)
    {
        try { _ = OrtEnv.Instance(); }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            throw new QuantException(ErrorCode.RuntimeUnavailable, SourcePosition.InFile(modelPath),
                $"ONNX Runtime cannot be loaded on this platform ({RuntimeInformation.RuntimeIdentifier}): {FirstSentence(e.GetBaseException().Message)}; " +
                "Quant.Build carries it for linux-x64, linux-arm64, win-x64 and osx-arm64", e);
        }
    }

    /// <summary>The loader's message goes on to list every path it probed; the first sentence says what failed.</summary>
    private static string FirstSentence(string message)
    {
        var line = OneLine(message);
        int end = line.IndexOf(". ", StringComparison.Ordinal);
        return end > 0 ? line[..end] : line.TrimEnd('.');
    }

    /// <summary>ONNX Runtime's messages span lines ("for the following indices\n index: 1 Got: 4 ..."); a diagnostic is one line.</summary>
    private static string OneLine(string message) =>
        string.Join(' ', message.Split((char[])['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    public void Dispose() => _session.Dispose();
}
