using System.Diagnostics;
using Quant.Core.Calibration;
using Quant.Core.Checks;
using Quant.Core.Config;
using Quant.Core.Data;
using Quant.Core.Export;
using Quant.Core.Passes;
using Quant.Core.Precision;
using Quant.Engine;
using Quant.Onnx;

namespace Quant.Core.Stages;

/// <summary>The float side of an export: the prepared model, its float session, the data and the calibration statistics.</summary>
public sealed class CalibratedModel
{
    public required string ModelPath { get; init; }
    /// <summary>The model as read (a QDQ input model's float graph).</summary>
    public required OnnxModel Original { get; init; }
    public required QatInput? QatInput { get; init; }
    public required PreparedModel Prepared { get; init; }
    /// <summary>The prepared float model every plan is made for.</summary>
    public OnnxModel Model => Prepared.Model;
    public required SessionOptions SessionOptions { get; init; }
    public required InferenceSession FloatSession { get; init; }
    public required CalibrationDataSet Data { get; init; }
    public required string FloatSha256 { get; init; }
    /// <summary>The external-data files the model's weights were read from (inputs of the export like the model file).</summary>
    public IReadOnlyList<string> ExternalDataFiles { get; init; } = [];
    public required string DataFingerprint { get; init; }
    public required CalibrationRun Run { get; init; }
    public required TimeSpan CalibrationTime { get; init; }
}

/// <summary>What a config makes of a calibrated model: the plan, the chosen activation parameters, the weights, the QDQ model.</summary>
public sealed class QuantizedModel
{
    /// <summary>The config the plan was made from.</summary>
    public required QuantConfig Config { get; init; }
    public required PrecisionPlan Plan { get; init; }
    public required QatInputPlan? QatPlan { get; init; }
    public required CalibrationContext Context { get; init; }
    public required CalibrationOutcome Outcome { get; init; }
    public IReadOnlyDictionary<string, QuantParams> Activations => Outcome.Activations;
    public required IReadOnlyDictionary<string, QuantParams> Weights { get; init; }
    /// <summary>The exported QDQ model (bias correction applied when the config asks for it).</summary>
    public required OnnxModel QatModel { get; init; }
    public required BiasCorrection.Result? BiasCorrection { get; init; }
}

// The two halves of the export, callable on their own so that the debugging commands (sensitivity, the threshold
// sweep) get exactly what an export would, from the same statistics cache, without writing artifacts.
public static partial class ExportStage
{
    /// <summary>
    /// Loads and prepares the model, opens the calibration data and gets the statistics (from the cache in
    /// <paramref name="cacheDirectory"/> when model, data and statistics settings are unchanged).
    /// </summary>
    public static CalibratedModel Calibrate(ExportRequest request, QuantConfig config, string cacheDirectory, string name,
        IProgress<StageProgress>? progress, CancellationToken cancel)
    {
        var original = StageModels.Load(request.ModelPath);
        var loaded = original; // as read, with the external-data files its weights came from
        // A model that already carries Q/DQ (QAT export, quantize_static): export its float graph, keep its scales.
        var qatInput = QatInput.Read(original, request.ModelPath);
        if (qatInput is not null) original = qatInput.FloatModel;

        var prepared = GraphPreparation.Prepare(original, new PreparationOptions { Equalize = config.Model.Weight.Equalization });
        var model = prepared.Model;
        var sessionOptions = new SessionOptions { Threads = request.Threads };
        var floatSession = StageModels.Session(model, sessionOptions, request.ModelPath);
        CalibrationDataOverride.Apply(config, request.CalibrationData, model.Graph.RuntimeInputs, "--calibration-data");
        var data = CalibrationDataSet.Create(config, model.Graph.RuntimeInputs);

        // Calibration statistics (CalibrationPass): from the cache when model, data and statistics settings are unchanged.
        var activation = config.Model.Activation;
        // Hashed once: the calibration cache and the float-vs-qat cache both key on it.
        string floatSha256 = FloatVsQatCache.ModelSha256(request.ModelPath, loaded);
        string dataFingerprint = data.Fingerprint();
        var calibrationTime = Stopwatch.StartNew();
        // Equalization rescales channels, so statistics of the unequalized graph do not apply (and vice versa); and the
        // statistics are per tensor of the prepared graph, which a newer Quant.Build may prepare differently.
        string statisticsKey = $"model={floatSha256};data={dataFingerprint};graph={PreparedGraphHash(model)}"
            + (config.Model.Weight.Equalization ? ";equalization=true" : "");
        var run = CalibrationPass.Run(floatSession, request.ModelPath, data, cacheDirectory, name, statisticsKey,
            activation.NumBinCandidates, activation.PerChannel.Contains(true), request.SelectionSamples, request.Threads,
            (done, count) => progress?.Report(new StageProgress("calibration", done, count)), cancel);
        calibrationTime.Stop();
        return new CalibratedModel
        {
            ModelPath = request.ModelPath, Original = original, QatInput = qatInput, Prepared = prepared, SessionOptions = sessionOptions,
            FloatSession = floatSession, Data = data, FloatSha256 = floatSha256, DataFingerprint = dataFingerprint, Run = run,
            CalibrationTime = calibrationTime.Elapsed, ExternalDataFiles = loaded.ExternalDataFiles,
        };
    }

    /// <summary>
    /// The config's precision plan, the calibration choice (<see cref="CalibrationChoice"/>) and the QDQ model, as the
    /// export makes them. <paramref name="config"/> may differ from the one <see cref="Calibrate"/> read in its precision
    /// settings (node_config, op_config, preset ...); the statistics settings must be the same.
    /// </summary>
    public static QuantizedModel Quantize(CalibratedModel cal, QuantConfig config, IProgress<StageProgress>? progress, CancellationToken cancel)
    {
        var model = cal.Model;
        var plan = PrecisionPlanner.Plan(model, config, FusedPairs(model, cal.Prepared));
        var qatPlan = cal.QatInput is null ? null : QatInputPlan.Apply(cal.QatInput, plan, config, cal.ModelPath);
        var tensorTypes = ActivationTensors(plan);
        var fixedParams = FixedParams(config, plan);
        var weights = WeightParams(model, plan, config.Model.Weight.PerChannel);
        // A QDQ input model's own scales win over calibration (QatInputPlan warns where the config asks otherwise).
        if (qatPlan is not null) (fixedParams, weights) = qatPlan.Overlay(tensorTypes, fixedParams, weights);
        // The candidates of `default` and the search lists, scored on held-out samples (CalibrationChoice).
        var context = new CalibrationContext(model, plan, tensorTypes, fixedParams, weights, cal.SessionOptions, cal.ModelPath);
        var outcome = CalibrationChoice.Choose(context, cal.Run, CalibrationCandidates.Of(config.Model.Activation), cal.FloatSession, config.Model.LayerwiseSearch,
            (phase, done, total) => progress?.Report(new StageProgress(phase, done, total)), cancel);

        var qatModel = QdqExporter.Export(model, plan, outcome.Activations, weights);
        BiasCorrection.Result? biasCorrection = null;
        if (config.Model.Weight.BiasCorrection)
        {
            progress?.Report(new StageProgress("bias correction", 0, 1));
            biasCorrection = BiasCorrection.Run(model, plan, qatModel, config.Model.Weight, cal.Data.SampleCount, cal.Data.Samples(), cal.SessionOptions);
            qatModel = biasCorrection.Apply(qatModel);
            progress?.Report(new StageProgress("bias correction", 1, 1));
        }
        return new QuantizedModel
        {
            Config = config, Plan = plan, QatPlan = qatPlan, Context = context, Outcome = outcome, Weights = weights, QatModel = qatModel, BiasCorrection = biasCorrection,
        };
    }
}
