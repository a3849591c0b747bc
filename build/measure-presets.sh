#!/usr/bin/env bash
# Measures the export stage over every preset x calibration type on PaddleOCR v4 rec and det and prints the
# markdown table of docs/export.md: float vs qat output cosine (min / avg / max over the calibration samples),
# last-bit stability, the precision mix. Maintainers' tool, not part of the build or the tests; the work is done
# in process by the benchmark program (benchmarks/Quant.Engine.Benchmarks/PresetTable.cs).
# Usage: bash build/measure-presets.sh REC_CALIB_DIR DET_CALIB_DIR   (folders of .npy samples as the
#        founders' datasets store them: uint8 NCHW BGR, rec [1,3,48,320], det [1,3,640,640])
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rec_dir="$(cd "$1" && pwd)"; det_dir="$(cd "$2" && pwd)"
bash "$repo/build/fetch-test-assets.sh" >/dev/null
exec dotnet run -c Release --project "$repo/benchmarks/Quant.Engine.Benchmarks" -- presets "$rec_dir" "$det_dir"
