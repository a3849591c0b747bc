using Quant.Core.DeploymentRuntime;
using Quant.Core.Stages;
using Quant.Runtime;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Check.Commands;

/// <summary>
/// The two runtimes a command can run a model in: Quant.Build's engine and ONNX Runtime (the deployment runtime,
/// through <see cref="OrtRunner"/>), behind one small surface so a command's output does not depend on which.
/// </summary>
internal static class ModelRunners
{
    public const string Engine = "engine";
    public const string OnnxRuntime = "onnxruntime";

    /// <summary>Which runtime, and ONNX Runtime's optimization level when it is that one.</summary>
    public sealed record Choice(string Runtime, OrtOptimization Optimization);

    /// <summary>Validates <c>--runtime</c> and <c>--optimization</c> (one clear error each; <c>--optimization</c> only means something for ONNX Runtime).</summary>
    public static Choice Parse(string runtime, string optimization, bool optimizationGiven)
    {
        var name = runtime.ToLowerInvariant();
        if (name is not (Engine or OnnxRuntime))
            throw new CliUsageException($"--runtime '{runtime}': expected {Engine} (Quant.Build's engine) or {OnnxRuntime} (ONNX Runtime)");
        var level = OrtRunner.ParseOptimization(optimization)
            ?? throw new CliUsageException($"--optimization '{optimization}': expected disabled, basic, extended or all");
        if (optimizationGiven && name == Engine)
            throw new CliUsageException($"--optimization sets ONNX Runtime's graph optimizations; add --runtime {OnnxRuntime} or drop it");
        return new Choice(name, level);
    }

    /// <summary>A .qbm runs in Quant.Runtime, as deployed; an .onnx model (qat, quantized or float) in the engine or ONNX Runtime.</summary>
    public static IModelRunner Open(string modelPath, Choice choice, int threads)
    {
        if (IsCompiled(modelPath))
        {
            if (choice.Runtime == OnnxRuntime)
                throw new CliUsageException($"--runtime {OnnxRuntime}: '{Path.GetFileName(modelPath)}' is a compiled program, which only Quant.Runtime runs; drop --runtime");
            return new CompiledRunner(modelPath);
        }
        return choice.Runtime == OnnxRuntime ? new Ort(new OrtRunner(modelPath, choice.Optimization, threads)) : new EngineRunner(modelPath, threads);
    }

    public static bool IsCompiled(string modelPath) => modelPath.EndsWith(CompileCommand.QbmSuffix, StringComparison.OrdinalIgnoreCase);

    private sealed class EngineRunner : IModelRunner
    {
        private readonly InferenceSession _session;

        public EngineRunner(string modelPath, int threads)
        {
            _session = new InferenceSession(OnnxModelReader.Load(modelPath), new SessionOptions { Threads = threads });
            InputNames = _session.Inputs.Select(i => i.Name).ToList();
        }

        public IReadOnlyList<string> InputNames { get; }
        public IReadOnlyList<string> OutputNames => _session.OutputNames;
        public string Description => "Quant.Build engine";
        public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs) => _session.Run(inputs);
        public void Dispose() { }
    }

    private sealed class CompiledRunner(string path) : IModelRunner
    {
        private readonly QbmModel _model = CompiledModels.Load(path);

        public IReadOnlyList<string> InputNames => _model.InputNames;
        public IReadOnlyList<string> OutputNames => _model.OutputNames;
        public string Description => "Quant.Runtime (compiled program)";
        public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs) => CompiledModels.Run(_model, inputs, path);
        public void Dispose() { }
    }

    private sealed class Ort(OrtRunner runner) : IModelRunner
    {
        public IReadOnlyList<string> InputNames => runner.InputNames;
        public IReadOnlyList<string> OutputNames => runner.OutputNames;
        public string Description => $"ONNX Runtime {OrtRunner.Version}, optimizations {runner.Optimization.ToString().ToLowerInvariant()}";
        public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs) => runner.Run(inputs);
        public void Dispose() => runner.Dispose();
    }
}

/// <summary>A model loaded in one runtime, ready to run on named tensors.</summary>
internal interface IModelRunner : IDisposable
{
    IReadOnlyList<string> InputNames { get; }
    IReadOnlyList<string> OutputNames { get; }
    /// <summary>Which runtime, as the CLI prints it.</summary>
    string Description { get; }
    IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs);
}
