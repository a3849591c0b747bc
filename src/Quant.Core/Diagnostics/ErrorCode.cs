using System.Globalization;

namespace Quant.Core.Diagnostics;

// This file is also compiled into the netstandard2.0 MSBuild task assembly (Quant.Build.Tasks links it),
// which cannot reference Quant.Core: there the types are internal, so they never clash with Quant.Core's.

/// <summary>
/// Every diagnostic the toolchain reports, one range per area. The numbers are part of the
/// user-facing contract (MSBuild shows them; docs/error-codes.md lists them): never renumber.
/// </summary>
#if QUANT_BUILD_TASKS
internal
#else
public
#endif
enum ErrorCode
{
    // QB1xxx: quantization config (yaml/json)
    ConfigSyntax = 1001,
    ConfigUnknownKey = 1002,
    ConfigWrongType = 1003,
    ConfigInvalidValue = 1004,
    ConfigUnknownNode = 1005,
    ConfigUnknownOpType = 1006,
    ConfigSubgraphUnreachable = 1007,
    ConfigUnknownInput = 1008,
    ConfigMissingInput = 1009,
    ConfigFileNotFound = 1010,

    // QB2xxx: calibration data
    DataGlobMatchesNothing = 2001,
    DataShapeMismatch = 2002,
    DataTypeMismatch = 2003,
    DataUnreadable = 2004,

    // QB3xxx: model
    ModelUnreadable = 3001,
    ModelUnsupportedOp = 3002,
    ModelRunFailed = 3003,
    RuntimeUnavailable = 3004,

    // QB4xxx: calibration and export
    CalibrationFailed = 4001,
    ExportFailed = 4002,
    CalibrationCacheDamaged = 4003,
    ExportQatInputUnsupported = 4021,
    ExportQatInputContradiction = 4022,

    // QB5xxx: accuracy checks
    CheckFailed = 5001,
    CheckBaselineRegression = 5002,
    CheckEvaluatorFailed = 5003,
    CheckUnknownOutput = 5004,
    CheckBaselineUnreadable = 5005,
    CheckStageUnavailable = 5006,
    CheckRuntimeDisagrees = 5007,
    CheckCompiledNotBitExact = 5008,
    CheckQuantizedDisagrees = 5009,

    // QB6xxx: MSBuild integration (reported by the Quant.Build tasks, which compile this file in)
    BuildModelNotFound = 6001,
    BuildConfigNotFound = 6002,
    BuildDuplicateOutputName = 6003,
    BuildUnknownStage = 6004,
    BuildUnknownCopyToOutput = 6005,
    BuildToolNotFound = 6006,
    BuildPackIncomplete = 6007,
    BuildInvalidPack = 6008,
    BuildStageRecordMismatch = 6009,
    // QB6021-6029: concurrent builds (docs/msbuild.md "Concurrent builds"); reported by quant-check
    BuildModelLocked = 6021,

    // QB7001-7009: convert (NAME.qat.onnx -> NAME.quantized.onnx, docs/quantization-spec.md §3.6)
    ConvertQOperatorModel = 7001,
    ConvertUnsupportedQuantType = 7002,
    ConvertPerChannelActivation = 7003,
    ConvertAsymmetricWeight = 7004,
    ConvertWeightAxis = 7005,
    ConvertBiasOverflow = 7006,
    ConvertMalformedQdq = 7007,
    ConvertInvalidScale = 7008,

    // QB71xx: compile and compiled models (.qbm). QB7101-7117 are also Quant.Runtime's QbmError (the runtime
    // cannot reference this enum): same numbers, names without the Qbm prefix; a test keeps them in sync.
    QbmNotAQbm = 7101,
    QbmUnsupportedVersion = 7102,
    QbmTruncated = 7103,
    QbmHashMismatch = 7104,
    QbmBadSectionTable = 7105,
    QbmSectionOverrun = 7106,
    QbmBadString = 7107,
    QbmBadValue = 7108,
    QbmBadValueReference = 7109,
    QbmBadConstant = 7110,
    QbmBadAttribute = 7111,
    QbmBadIo = 7112,
    QbmBadMemoryPlan = 7113,
    QbmMemoryPlanOverlap = 7114,
    QbmBadCost = 7115,
    QbmUnrunnable = 7116,
    QbmUnreadable = 7117,
    CompileUnsupportedModel = 7118,
    CompileInvalidInputShape = 7119,
    QbmBadPackedWeights = 7120, // also Quant.Runtime's QbmError.BadPackedWeights

    // QB8xxx: accuracy debugging. QB8001-8019: sensitivity and the threshold sweep (quant-check sensitivity, docs/sensitivity.md)
    SensitivityUnknownOutput = 8001,
    SensitivityUnknownNode = 8002,
    SensitivityUnknownMetric = 8003,
    SensitivitySampleCount = 8004,
    SensitivityNotACandidate = 8005,
    SweepInvalidThreshold = 8006,
    SweepInvalidTarget = 8007,
    // QB8021-8039: quant-check tune, automatic mixed precision (docs/tuning.md)
    TuneNoTargets = 8021,
    TuneInvalidTarget = 8022,
    TuneUnknownOutput = 8023,
    TuneInvalidSetting = 8024,
    TuneEvaluatorFailed = 8025,
    TuneTargetMissed = 8026,
    // QB8041-8059: compare (layer-wise float vs qat / quantized / compiled)
    CompareInputsDiffer = 8041,
    CompareNotFromFloat = 8042,
    CompareStageNotFromQat = 8043,
    CompareInvalidSampleCount = 8044,
    // QB8061-8079: quant-check report (the HTML report)
    ReportModelCheckMissing = 8061,
    ReportInputMalformed = 8062,
    ReportInputFormat = 8063,
    ReportCalibrationUnreadable = 8064,
    ReportInvalidSetting = 8065,
}

/// <summary>The spelling users see: <c>QB1001</c>.</summary>
#if QUANT_BUILD_TASKS
internal
#else
public
#endif
static class ErrorCodeText
{
    public static string Text(this ErrorCode code) => "QB" + ((int)code).ToString("D4", CultureInfo.InvariantCulture);
}
