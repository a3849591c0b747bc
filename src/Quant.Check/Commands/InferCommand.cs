using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Quant.Core.Diagnostics;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Check.Commands;

/// <summary><c>quant-check infer</c>: run a model on .npy inputs with the engine (or ONNX Runtime) and write the outputs as .npy.</summary>
internal static class InferCommand
{
    public static Command Create()
    {
        var model = new Argument<FileInfo>("model") { Description = "The model to run: an .onnx model (float, qat or quantized), or a compiled .qbm (run by Quant.Runtime)" };
        var inputs = new Option<string[]>("--input", "-i")
        {
            Description = "NAME=FILE.npy for each model input (FILE.npy alone when the model has one input)",
            Arity = ArgumentArity.OneOrMore,
            AllowMultipleArgumentsPerToken = true,
            Required = true,
        };
        var outDir = new Option<DirectoryInfo>("--out", "-o") { Description = "Folder for the outputs (<output name>.npy each)", Required = true };
        var threads = new Option<int>("--threads") { Description = "Threads per kernel (default: all cores)", DefaultValueFactory = _ => Environment.ProcessorCount };
        var repeat = new Option<int>("--repeat") { Description = "Runs to time; latency is reported as median and min", DefaultValueFactory = _ => 1 };
        var runtime = new Option<string>("--runtime") { Description = "engine (Quant.Build's own) or onnxruntime (the deployment runtime, in process)", DefaultValueFactory = _ => "engine" };
        var optimization = new Option<string>("--optimization") { Description = "ONNX Runtime graph optimizations: disabled, basic, extended or all", DefaultValueFactory = _ => "all" };

        var cmd = new Command("infer", "Run a model with the Quant.Build engine or ONNX Runtime (a .qbm with Quant.Runtime) on .npy inputs") { model, inputs, outDir, threads, repeat, runtime, optimization };
        cmd.SetAction(parse =>
        {
            try
            {
                var run = ModelRunners.Parse(parse.GetValue(runtime)!, parse.GetValue(optimization)!, parse.GetResult(optimization) is { Implicit: false });
                return Run(parse.GetValue(model)!, parse.GetValue(inputs)!, parse.GetValue(outDir)!, parse.GetValue(threads), parse.GetValue(repeat), run);
            }
            catch (Exception e) when (CliErrors.IsUserError(e))
            {
                return CliErrors.Report(e);
            }
        });
        return cmd;
    }

    private static int Run(FileInfo modelFile, string[] inputSpecs, DirectoryInfo outDir, int threads, int repeat, ModelRunners.Choice runtime)
    {
        if (threads < 1) throw new CliUsageException("--threads must be at least 1");
        if (repeat < 1) throw new CliUsageException("--repeat must be at least 1");
        using var runner = ModelRunners.Open(modelFile.FullName, runtime, threads);
        var feeds = ReadInputs(runner.InputNames, inputSpecs);

        var times = new List<double>();
        IReadOnlyDictionary<string, Tensor> outputs = null!;
        for (int i = 0; i < repeat; i++)
        {
            var sw = Stopwatch.StartNew();
            outputs = runner.Run(feeds);
            times.Add(sw.Elapsed.TotalMilliseconds);
        }

        Directory.CreateDirectory(outDir.FullName);
        var used = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var name in runner.OutputNames)
        {
            var file = Path.Combine(outDir.FullName, UniqueFileName(name, used) + ".npy");
            AtomicFile.Write(file, s => Npy.Write(s, outputs[name]));
            Console.WriteLine($"{name}: {outputs[name]} -> {file}{SmallValues(outputs[name])}");
        }
        times.Sort();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"latency: median {times[(times.Count - 1) / 2]:F2} ms, min {times[0]:F2} ms over {times.Count} run(s), {threads} thread(s), {runner.Description}"));
        return 0;
    }

    internal static Dictionary<string, Tensor> ReadInputs(IReadOnlyList<string> names, string[] specs)
    {
        var feeds = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var spec in specs)
        {
            int eq = spec.IndexOf('=');
            string name, file;
            if (eq > 0 && !File.Exists(spec)) { name = spec[..eq]; file = spec[(eq + 1)..]; }
            else if (names.Count == 1) { name = names[0]; file = spec; }
            else throw new CliUsageException($"--input '{spec}': say which input it is as NAME=FILE.npy; the model's inputs are {string.Join(", ", names)}");
            if (!names.Contains(name))
                throw new CliUsageException($"--input '{spec}': the model has no input '{name}'; its inputs are {string.Join(", ", names)}");
            if (feeds.ContainsKey(name)) throw new CliUsageException($"--input: '{name}' is given twice");
            feeds[name] = Npy.Read(file);
        }
        var missing = names.Where(n => !feeds.ContainsKey(n)).ToList();
        if (missing.Count > 0) throw new CliUsageException($"no --input for {string.Join(", ", missing)}");
        return feeds;
    }

    /// <summary>Small outputs (class scores and the like) are worth seeing without opening the file.</summary>
    private static string SmallValues(Tensor t) =>
        t.Type == ElementType.Float && t.Length <= 16
            ? " = [" + string.Join(", ", t.ReadOnlySpan<float>().ToArray().Select(v => v.ToString("G6", CultureInfo.InvariantCulture))) + "]"
            : "";

    /// <summary>Output names may contain '/', ':' and the like; files get a safe, unique version of the name.</summary>
    internal static string UniqueFileName(string name, HashSet<string> used)
    {
        var safe = new string(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '_').ToArray());
        if (safe.Length == 0 || safe.Trim('.').Length == 0) safe = "output";
        var candidate = safe;
        for (int k = 2; !used.Add(candidate); k++) candidate = $"{safe}_{k}";
        return candidate;
    }
}
