#!/usr/bin/env bash
# Node sensitivity speed: seconds per candidate with downstream-only re-runs and with full re-runs (every variant
# exported and run whole), their ratio and the time to the first result, on real rec/det calibration samples
# (docs/sensitivity.md). Usage: build/bench-sensitivity.sh rec|det CALIB_DIR [--samples 8] [--full K] [--mode alone|restore]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/build/fetch-test-assets.sh" >/dev/null
exec dotnet run -c Release --project "$repo/benchmarks/Quant.Engine.Benchmarks" -- sensitivity "$@"
