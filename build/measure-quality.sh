#!/usr/bin/env bash
# Issue 10's quality table (docs/quality.md): task accuracy of NAME.qat.onnx in ONNX Runtime for each preset and the naive
# floor config, against float: rec line/char accuracy on ppocr-rec/dev, cls accuracy on ppocr-cls/dev, det text-map IoU
# vs float on the 4 ppocr-det photos held out from calibration. Export runs in process as the build runs it; its
# calibration cache (.cache/quality) makes reruns re-derive scales only. Maintainers' tool, not part of the build or the
# tests (benchmarks/Quant.Engine.Benchmarks/QualityTable.cs).
# Usage: bash build/measure-quality.sh DATASETS_DIR [--model rec,cls,det] [--preset performance,base,precision,upper_bound,naive]
#                                     [--config EXTRA.yaml] [--det-held-out text|last]
#        EXTRA is merged over every row's config (e.g. a node_config). det: 12 photos calibrate, 4 with text are measured
#        (003, 006, 009, 015; "last": the last four, of which three show no text)
#        DATASETS_DIR holds ppocr-det/calib, ppocr-rec/{calib,dev}, ppocr-cls/{calib,dev} as uint8 NCHW BGR .npy.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
datasets="$(cd "$1" && pwd)"; shift
bash "$repo/build/fetch-test-assets.sh" >/dev/null
exec dotnet run -c Release --project "$repo/benchmarks/Quant.Engine.Benchmarks" -- quality "$datasets" "$@"
