#!/usr/bin/env bash
# The tuning loop's speed on the real models (issue 11): per model, in one run on the committed samples, the float run,
# the fake-quant (qat) run and one calibration sample, with the ratios qat / float and calibration / float; --compare
# adds the qat run with the separate Q and DQ kernels (same output bits, checked first). Fetches the pinned assets first.
# Usage: build/bench-loop.sh [--repeat N] [--models det,rec,cls] [--threads N] [--preset P] [--compare]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/build/fetch-test-assets.sh" >/dev/null
exec dotnet run -c Release --project "$repo/benchmarks/Quant.Engine.Benchmarks" -- loop "$@"
