#!/usr/bin/env bash
# Issue 9's consistency table (docs/quantized-model.md, "Measured"): det, rec and cls under performance, base and upper_bound,
# float -> qat -> quantized -> compiled on held-out samples; per output float->qat and quantized->qat cosine and
# compiled->quantized max |diff|. Maintainers' tool, not part of the build or the tests (benchmarks/.../ChainTable.cs).
# Usage: bash build/measure-chain.sh DATASETS_DIR [--samples N] [--models det,rec,cls] [--presets performance,base,upper_bound]
#        DATASETS_DIR holds ppocr-det/calib, ppocr-rec/{calib,dev}, ppocr-cls/{calib,dev} as uint8 NCHW BGR .npy.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
datasets="$(cd "$1" && pwd)"; shift
bash "$repo/build/fetch-test-assets.sh" >/dev/null
exec dotnet run -c Release --project "$repo/benchmarks/Quant.Engine.Benchmarks" -- chain "$datasets" "$@"
