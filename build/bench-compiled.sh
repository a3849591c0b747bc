#!/usr/bin/env bash
# The compiled int8 model (performance preset) against ONNX Runtime on the same qat model (optimizations all) and
# against the engine on the float model, det and rec, 1 and 2 threads, same run and inputs (docs/performance.md).
# Exports, converts and compiles each model first. Options: --repeat N, --models det,rec, --keep DIR.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/build/fetch-test-assets.sh" >/dev/null
exec dotnet run -c Release --project "$repo/benchmarks/Quant.Engine.Benchmarks" -- compiled "$@"
